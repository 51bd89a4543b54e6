#!/usr/bin/env bash
# Placeholder: replaced by the gpio drivers work.
echo "not written yet"
exit 1
