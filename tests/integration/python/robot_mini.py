"""A tiny runner for the Robot Framework suites of examples/hardware_tests/, since Robot Framework is
not in Debian 12: it reads the plain-text format (settings, test cases, `${var}=` assignments,
[Teardown], named arguments, Robot's backslash escapes) and calls JumpstarterLibrary's keywords,
plus the few BuiltIn ones the examples use. It checks that the suites call real keywords with
arguments the library takes, and runs them against a real DUT.

    robot_mini.py SUITE.robot   ->  one "PASS name" / "FAIL name: error" line a test; exit 1 on failure
"""

import inspect
import os
import re
import sys
import traceback

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", " ": " "}


def unescape(cell):
    out, i = [], 0
    while i < len(cell):
        c = cell[i]
        if c == "\\" and i + 1 < len(cell):
            n = cell[i + 1]
            out.append(_ESCAPES.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def cells(line):
    line = line.rstrip("\n")
    if line.lstrip().startswith("#"):
        return []
    return [c for c in re.split(r"\t| {2,}", line)]


def parse(path):
    settings, tests, section, current = [], [], None, None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            if not raw.strip():
                continue
            m = re.match(r"\*+\s*([A-Za-z ]+?)\s*\*+", raw)
            if m:
                section = m.group(1).lower()
                continue
            row = cells(raw)
            if not row:
                continue
            if section == "settings":
                if row[0] == "...":
                    continue
                settings.append([c for c in row if c])
            elif section == "test cases":
                if row[0]:
                    current = {"name": row[0], "steps": [], "teardown": None}
                    tests.append(current)
                    row = row[1:]
                row = [c for c in row if c]
                if not row or row[0] == "...":
                    continue
                if row[0].lower() == "[teardown]":
                    current["teardown"] = row[1:]
                elif row[0].startswith("["):
                    continue
                else:
                    current["steps"].append(row)
    return settings, tests


class Runner:
    def __init__(self, path):
        self.path = path
        self.vars = {"CURDIR": os.path.dirname(os.path.abspath(path))}
        self.libraries = []

    def subst(self, text):
        def var(m):
            name = m.group(1)
            if name not in self.vars:
                raise NameError("variable ${%s} not found" % name)
            return str(self.vars[name])
        return re.sub(r"(?<!\\)\$\{([^}]+)\}", var, text)

    def builtin(self, name, args):
        if name == "shouldcontain":
            if args[1] not in str(args[0]):
                raise AssertionError("%r does not contain %r" % (args[0], args[1]))
        elif name == "shouldbeequal":
            if str(args[0]) != str(args[1]):
                raise AssertionError("%r != %r" % (args[0], args[1]))
        elif name == "log":
            print("LOG", *args)
        else:
            return False
        return True

    def call(self, row):
        assign = None
        if re.fullmatch(r"\$\{[^}]+\}=?", row[0].strip()):
            assign = row[0].strip().rstrip("=")[2:-1]
            row = row[1:]
        name = row[0].replace(" ", "").replace("_", "").lower()
        args = [unescape(self.subst(c)) for c in row[1:]]
        result = None
        if self.builtin(name, args):
            pass
        else:
            for lib in self.libraries:
                method = next((getattr(lib, m) for m in dir(lib)
                               if not m.startswith("_") and m.replace("_", "").lower() == name
                               and callable(getattr(lib, m))), None)
                if method:
                    break
            else:
                raise NameError("no keyword named %r" % row[0])
            params = inspect.signature(method).parameters
            pos, kw = [], {}
            for a in args:
                k, eq, v = a.partition("=")
                if eq and k in params:
                    kw[k] = v
                elif kw:
                    raise TypeError("positional argument %r after named ones" % a)
                else:
                    pos.append(a)
            inspect.signature(method).bind(*pos, **kw)  # a wrong argument fails as Robot would
            result = method(*pos, **kw)
        if assign:
            self.vars[assign] = result

    def run(self):
        settings, tests = parse(self.path)
        setup = teardown = None
        for row in settings:
            key = row[0].lower()
            if key == "library":
                module = __import__(row[1])
                self.libraries.append(getattr(module, row[1].split(".")[-1])(*row[2:]))
            elif key == "suite setup":
                setup = row[1:]
            elif key == "suite teardown":
                teardown = row[1:]
        failed = 0
        try:
            if setup:
                self.call(setup)
            for t in tests:
                try:
                    for step in t["steps"]:
                        self.call(step)
                    print("PASS %s" % t["name"])
                except Exception as e:  # a failing keyword fails the test, as in Robot
                    failed += 1
                    print("FAIL %s: %s: %s" % (t["name"], type(e).__name__, e))
                    traceback.print_exc()
                finally:
                    if t["teardown"]:
                        self.call(t["teardown"])
        finally:
            if teardown:
                self.call(teardown)
        print("%d tests, %d passed, %d failed" % (len(tests), len(tests) - failed, failed))
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(Runner(sys.argv[1]).run())
