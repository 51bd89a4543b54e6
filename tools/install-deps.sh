#!/usr/bin/env bash
# Installs what building, running and testing Jumpstarter needs, from Debian 12's archive.
set -euo pipefail

PACKAGES=(
        meson ninja-build pkg-config gcc clang libclang-rt-14-dev valgrind
        libsystemd-dev libfuse3-dev fuse3 libjansson-dev libyaml-dev
        socat python3-serial python3-pytest picocom tio util-linux mount e2fsprogs procps coreutils curl
        libserialport-dev libgpiod-dev gpiod libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev
        zlib1g-dev liblzma-dev libzstd-dev libssl-dev libjwt-dev xz-utils zstd gzip cpio
        ser2net pdudaemon bmap-tools busybox-static qemu-system-x86
        prometheus
)

missing=()
for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
        exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages (${missing[*]}); run as root to install them." >&2
        exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
