"""Label selectors (docs/selectors.md), to pick a DUT of the file view without asking a controller."""

import re

__all__ = ["Requirement", "SelectorError", "parse_selector", "selector_matches"]

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
_KEY_RE = re.compile(r"(?:[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?/)?" + _NAME)
_VALUE_RE = re.compile("(?:" + _NAME + ")?")
_TOKEN_RE = re.compile(r"\s*(==|!=|=|\(|\)|,|!|[^\s=!(),]+)")
_MAX_SELECTOR = 4096
_MAX_REQUIREMENTS = 128


class SelectorError(ValueError):
    """A selector that does not parse; the message names the byte column, counted from 1."""


class Requirement:
    __slots__ = ("key", "op", "values")

    def __init__(self, key, op, values=()):
        self.key = key
        self.op = op  # "=", "!=", "in", "notin", "exists", "!"
        self.values = frozenset(values)

    def matches(self, labels):
        have = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return have and value in self.values
        if self.op in ("!=", "notin"):
            return not have or value not in self.values
        if self.op == "exists":
            return have
        return not have  # "!"

    def __repr__(self):
        return "Requirement(%r, %r, %r)" % (self.key, self.op, sorted(self.values))


def _tokens(text):
    pos = 0
    out = []
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            break  # only white space is left
        out.append((m.group(1), m.start(1) + 1))
        pos = m.end()
    out.append((None, len(text.rstrip()) + 1))
    return out


def parse_selector(text):
    """Parses a selector into a list of Requirements; raises SelectorError naming the column."""
    if not isinstance(text, str):
        raise SelectorError("a selector is a string, not %s" % type(text).__name__)
    if len(text.encode()) > _MAX_SELECTOR:
        raise SelectorError("a selector is at most %d bytes" % _MAX_SELECTOR)
    toks = _tokens(text)
    i = 0
    reqs = []

    def peek():
        return toks[i]

    def error(what, tok):
        found = "end of input" if tok[0] is None else '"%s"' % tok[0]
        raise SelectorError("column %d: %s, found %s" % (tok[1], what, found))

    def key_at(tok):
        if tok[0] is None or not _KEY_RE.fullmatch(tok[0]):
            error('expected a key or "!"', tok)
        return tok[0]

    def value_at(tok):
        if tok[0] in (",", ")", None):
            return ""  # an empty value is written as nothing
        if not _VALUE_RE.fullmatch(tok[0]):
            error("expected a value", tok)
        return tok[0]

    if toks[0][0] is None:
        return reqs
    while True:
        tok = peek()
        if tok[0] == "!":
            i += 1
            reqs.append(Requirement(key_at(peek()), "!"))
            i += 1
        else:
            key = key_at(tok)
            i += 1
            op = peek()
            if op[0] in ("=", "==", "!="):
                i += 1
                v = value_at(peek())
                if v:
                    i += 1
                reqs.append(Requirement(key, "!=" if op[0] == "!=" else "=", [v]))
            elif op[0] in ("in", "notin"):
                i += 1
                if peek()[0] != "(":
                    error('expected "(" after "%s"' % op[0], peek())
                paren = peek()
                i += 1
                values = []
                if peek()[0] == ")":
                    raise SelectorError('column %d: empty value set after "%s"' % (paren[1], op[0]))
                while True:
                    v = value_at(peek())
                    if v:
                        i += 1
                    values.append(v)
                    if peek()[0] == ",":
                        i += 1
                        continue
                    if peek()[0] == ")":
                        i += 1
                        break
                    error('expected "," or ")"', peek())
                reqs.append(Requirement(key, op[0], values))
            else:
                reqs.append(Requirement(key, "exists"))
        if len(reqs) > _MAX_REQUIREMENTS:
            raise SelectorError("a selector has at most %d requirements" % _MAX_REQUIREMENTS)
        tok = peek()
        if tok[0] is None:
            return reqs
        if tok[0] != ",":
            error('expected ","', tok)
        i += 1


def selector_matches(selector, labels):
    """Whether a DUT with these labels (a dict) matches the selector (a string or parsed list)."""
    reqs = parse_selector(selector) if isinstance(selector, str) else selector
    return all(r.matches(labels) for r in reqs)
