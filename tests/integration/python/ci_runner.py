"""Runs the shell steps of a CI example (examples/ci/) in order, as its runner would, on this host.

    ci_runner.py github|gitlab|tekton FILE [NAME=VALUE]...

NAME=VALUE: GitHub secrets (secrets.NAME), GitLab variables, Tekton params and workspace paths
(params.NAME, workspaces.NAME.path). Steps run in the current directory (the checkout). Prints
"RUN name", "SKIP name", "FAIL name (exit N)" a step and exits 1 when the pipeline failed.

It reads YAML with a tiny reader of the subset the examples use (block mappings and sequences,
`|` block scalars, quoted and plain scalars, `[a, b]` lists, comments): Debian's python3 has no YAML.
"""

import os
import re
import subprocess
import sys
import tempfile


# --- the tiny YAML reader --------------------------------------------------------------------------

def _scalar(text):
    text = text.strip()
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return bytes(text[1:-1], "utf-8").decode("unicode_escape")
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("''", "'")
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(x) for x in inner.split(",")] if inner else []
    return text


def _strip_comment(line):
    out, quote = [], None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'" and (i == 0 or line[i - 1] in " :[,-"):
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(c)
    return "".join(out).rstrip()


def load_yaml(text):
    lines = text.splitlines()
    pos = 0

    def skip():
        nonlocal pos
        while pos < len(lines) and (not _strip_comment(lines[pos]).strip() or lines[pos].strip() == "---"):
            pos += 1

    def indent_of(line):
        return len(line) - len(line.lstrip(" "))

    def block_scalar(parent_indent):
        nonlocal pos
        body, ind = [], None
        while pos < len(lines):
            line = lines[pos]
            if line.strip() and indent_of(line) <= parent_indent:
                break
            if line.strip() and ind is None:
                ind = indent_of(line)
            body.append(line[ind:] if ind is not None and line.strip() else "")
            pos += 1
        while body and not body[-1]:
            body.pop()
        return "\n".join(body) + "\n"

    def value_after(rest, ind):
        nonlocal pos
        rest = rest.strip()
        if rest in ("|", "|-", ">"):
            pos += 1
            v = block_scalar(ind)
            return v.rstrip("\n") if rest == "|-" else v
        if rest:
            pos += 1
            return _scalar(rest)
        pos += 1
        skip()
        if pos < len(lines) and indent_of(lines[pos]) > ind or (
                pos < len(lines) and indent_of(lines[pos]) == ind and lines[pos].lstrip().startswith("- ")):
            return node(indent_of(lines[pos]))
        return None

    def node(ind):
        nonlocal pos
        skip()
        line = _strip_comment(lines[pos])
        if line.lstrip().startswith("- ") or line.strip() == "-":
            seq = []
            while True:
                skip()
                if pos >= len(lines):
                    break
                line = _strip_comment(lines[pos])
                if indent_of(line) != ind or not (line.lstrip().startswith("- ") or line.strip() == "-"):
                    break
                item = line.strip()[1:].strip()
                if re.match(r"^[^\s\"'\[][^:]*:(\s|$)", item):
                    # "- key: value": a mapping whose first key sits after the dash.
                    lines[pos] = " " * (ind + 2) + item
                    seq.append(node(ind + 2))
                else:
                    seq.append(value_after(item, ind))
            return seq
        mapping = {}
        while True:
            skip()
            if pos >= len(lines):
                break
            line = _strip_comment(lines[pos])
            if indent_of(line) != ind:
                break
            m = re.match(r"^\s*([^:]+?):(\s+(.*))?$", line)
            if not m:
                raise ValueError("line %d: cannot read %r" % (pos + 1, lines[pos]))
            mapping[_scalar(m.group(1))] = value_after(m.group(3) or "", ind)
        return mapping

    skip()
    return node(indent_of(lines[pos])) if pos < len(lines) else None


# --- the runners ----------------------------------------------------------------------------------

def sh(script, env, shell=("bash", "--noprofile", "--norc", "-eo", "pipefail")):
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    try:
        if script.startswith("#!"):
            os.chmod(f.name, 0o700)
            return subprocess.call([f.name], env=env)
        return subprocess.call(list(shell) + [f.name], env=env)
    finally:
        os.unlink(f.name)


def run_github(doc, values):
    failed = False
    (job_name, job), = doc["jobs"].items()
    env = dict(os.environ)
    tmp = tempfile.mkdtemp(prefix="runner-temp.")
    env.update(RUNNER_TEMP=tmp, GITHUB_WORKSPACE=os.getcwd(), CI="true", GITHUB_ACTIONS="true")

    def expr(text):
        def one(m):
            e = m.group(1).strip()
            k = e[len("secrets."):] if e.startswith("secrets.") else None
            if k is None or k not in values:
                raise KeyError("no value for ${{ %s }}" % e)
            return values[k]
        return re.sub(r"\$\{\{(.*?)\}\}", one, str(text))

    env.update({k: expr(v) for k, v in (job.get("env") or {}).items()})
    for step in job["steps"]:
        name = step.get("name") or step.get("uses") or step.get("run", "").splitlines()[0]
        cond = (step.get("if") or "success()").replace("${{", "").replace("}}", "").strip()
        if cond not in ("success()", "always()", "failure()"):
            raise ValueError("step %r: cannot evaluate if: %s" % (name, cond))
        if (cond == "success()" and failed) or (cond == "failure()" and not failed):
            print("SKIP %s" % name, flush=True)
            continue
        if "uses" in step:
            print("SKIP %s (an action: the checkout is the current directory)" % name, flush=True)
            continue
        genv = os.path.join(tmp, "github-env")
        open(genv, "w").close()
        step_env = dict(env, GITHUB_ENV=genv)
        step_env.update({k: expr(v) for k, v in (step.get("env") or {}).items()})
        print("RUN %s" % name, flush=True)
        rc = sh(expr(step["run"]), step_env)
        with open(genv) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    env[k] = v
        if rc != 0:
            print("FAIL %s (exit %d)" % (name, rc), flush=True)
            failed = True
    return failed


def run_gitlab(doc, values):
    jobs = {k: v for k, v in doc.items() if isinstance(v, dict) and "script" in v}
    failed = False
    for name, job in jobs.items():
        env = dict(os.environ, CI="true", GITLAB_CI="true", CI_PROJECT_DIR=os.getcwd())
        env.update({k: str(v) for k, v in (doc.get("variables") or {}).items()})
        env.update({k: str(v) for k, v in (job.get("variables") or {}).items()})
        env.update(values)
        print("RUN %s: script" % name, flush=True)
        # The runner runs the lines in one shell and stops at the first that fails.
        rc = sh("\n".join(job["script"]) + "\n", env)
        if rc != 0:
            print("FAIL %s: script (exit %d)" % (name, rc), flush=True)
            failed = True
        if job.get("after_script"):
            print("RUN %s: after_script" % name, flush=True)
            rc = sh("\n".join(job["after_script"]) + "\n", env)
            if rc != 0:
                print("FAIL %s: after_script (exit %d)" % (name, rc), flush=True)  # does not fail the job
    return failed


def run_tekton(doc, values):
    spec = doc["spec"]
    subst = {"params.%s" % p["name"]: str(p["default"]) for p in spec.get("params", []) if "default" in p}
    subst.update(values)

    def fill(text):
        def one(m):
            if m.group(1) not in subst:
                raise KeyError("no value for $(%s)" % m.group(1))
            return subst[m.group(1)]
        return re.sub(r"\$\(([a-z0-9.-]+)\)", one, str(text))

    failed = False
    for step in spec["steps"]:
        name = step["name"]
        if failed:
            print("SKIP %s" % name, flush=True)
            continue
        env = dict(os.environ)
        env.update({e["name"]: fill(e["value"]) for e in step.get("env", [])})
        print("RUN %s" % name, flush=True)
        cwd = fill(step.get("workingDir", os.getcwd()))
        old = os.getcwd()
        os.chdir(cwd)
        try:
            rc = sh(fill(step["script"]), env)
        finally:
            os.chdir(old)
        if rc != 0:
            print("FAIL %s (exit %d)" % (name, rc), flush=True)
            if step.get("onError") != "continue":
                failed = True
    return failed


def main(argv):
    kind, path = argv[1], argv[2]
    values = dict(a.split("=", 1) for a in argv[3:])
    with open(path, encoding="utf-8") as f:
        doc = load_yaml(f.read())
    failed = {"github": run_github, "gitlab": run_gitlab, "tekton": run_tekton}[kind](doc, values)
    print("pipeline %s" % ("failed" if failed else "succeeded"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
