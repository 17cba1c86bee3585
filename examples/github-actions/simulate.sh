#!/usr/bin/env bash
# Run this repository's action.yml the way a GitHub runner would, without GitHub: for testing the
# step against a local checkout whose `origin` is a local (bare) repository.
#
#   examples/github-actions/simulate.sh [--workspace DIR] [--git-baton PATH] [--ref REF] [INPUT=VALUE]...
#
#   --workspace DIR   the checkout (actions/checkout's result); default: the current directory
#   --git-baton PATH  the binary; default: git-baton on PATH. It becomes the `git-baton-path`
#                     input, so the fingerprint/cache/install steps are skipped, as on GitHub.
#   --ref REF         GITHUB_REF; default: refs/heads/<the workspace's branch>
#   INPUT=VALUE       an action input, e.g. max-ticks=5 fail-on-error=true
#
# The steps of action.yml are read with PyYAML and run in order: `if:` conditions of the form
# `inputs.X == ''` / `!= ''` are evaluated, `${{ ... }}` expressions (inputs, step outputs, `||`,
# github.*/runner.* paths) are expanded, run steps execute with `bash --noprofile --norc -eo
# pipefail` in the working directory with their `env:`, each with its own $GITHUB_OUTPUT, and
# $GITHUB_PATH is honoured between steps. A `uses:` step that would run is an error: it cannot
# be simulated. The action's `outputs:` are written to $GITHUB_OUTPUT at the end, as the caller's
# step outputs. Without PyYAML it falls back to running scripts/action-step.sh with INPUT_*
# variables.
#
# GITHUB_STEP_SUMMARY, GITHUB_OUTPUT, RUNNER_TEMP and the other GITHUB_* variables are taken from
# the environment when set, otherwise made up (files in a temporary directory, printed at the
# end). Exit status: the failing step's, or 0.
set -euo pipefail

action_path=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
workspace=${GITHUB_WORKSPACE:-$PWD}
baton=""
ref=""
inputs=()
while [ $# -gt 0 ]; do
  case $1 in
    --workspace) workspace=$2; shift 2 ;;
    --git-baton) baton=$2; shift 2 ;;
    --ref) ref=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *=*) inputs+=("$1"); shift ;;
    *) echo "simulate.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
workspace=$(cd "$workspace" && pwd)
if [ -z "$baton" ]; then
  baton=$(command -v git-baton) || { echo "simulate.sh: git-baton is not on PATH; pass --git-baton PATH" >&2; exit 2; }
fi
baton=$(cd "$(dirname "$baton")" && pwd)/$(basename "$baton")
if [ -z "$ref" ]; then
  branch=$(git -C "$workspace" symbolic-ref --quiet --short HEAD || echo main)
  ref=refs/heads/$branch
fi

sim=$(mktemp -d "${TMPDIR:-/tmp}/baton-actions-sim.XXXXXX")
export GITHUB_ACTIONS=true CI=true
export GITHUB_WORKSPACE=$workspace
export GITHUB_ACTION_PATH=$action_path
export GITHUB_REF=$ref
export GITHUB_REF_NAME=${ref#refs/heads/}
export GITHUB_REF_TYPE=branch
export GITHUB_EVENT_NAME=${GITHUB_EVENT_NAME:-push}
export GITHUB_REPOSITORY=${GITHUB_REPOSITORY:-local/simulated}
export GITHUB_SHA=${GITHUB_SHA:-$(git -C "$workspace" rev-parse HEAD)}
export GITHUB_RUN_ID=${GITHUB_RUN_ID:-1} GITHUB_RUN_NUMBER=${GITHUB_RUN_NUMBER:-1}
export RUNNER_OS=${RUNNER_OS:-Linux} RUNNER_ARCH=${RUNNER_ARCH:-X64}
export RUNNER_TEMP=${RUNNER_TEMP:-$sim/runner-temp}
export GITHUB_STEP_SUMMARY=${GITHUB_STEP_SUMMARY:-$sim/step-summary.md}
export GITHUB_OUTPUT=${GITHUB_OUTPUT:-$sim/output}
export GITHUB_ENV=${GITHUB_ENV:-$sim/env}
export GITHUB_PATH=${GITHUB_PATH:-$sim/path}
mkdir -p "$RUNNER_TEMP"
touch "$GITHUB_STEP_SUMMARY" "$GITHUB_OUTPUT" "$GITHUB_ENV" "$GITHUB_PATH"
export SIM_DIR=$sim SIM_GIT_BATON=$baton

status=0
if python3 -c 'import yaml' 2>/dev/null; then
  python3 - "$action_path/action.yml" ${inputs[@]+"${inputs[@]}"} <<'PY' || status=$?
import os, re, subprocess, sys, yaml

action_file, pairs = sys.argv[1], sys.argv[2:]
with open(action_file, encoding="utf-8") as f:
    action = yaml.safe_load(f)
if (action.get("runs") or {}).get("using") != "composite":
    sys.exit("simulate.sh: action.yml is not a composite action")

declared = action.get("inputs") or {}
inputs = {name: "" if spec.get("default") is None else str(spec["default"]) for name, spec in declared.items()}
inputs["git-baton-path"] = os.environ["SIM_GIT_BATON"]
for pair in pairs:
    name, value = pair.split("=", 1)
    if name not in declared:
        sys.exit(f"simulate.sh: action.yml has no input {name!r}")
    inputs[name] = value

env = dict(os.environ)
contexts = {
    "github.action_path": env["GITHUB_ACTION_PATH"],
    "github.workspace": env["GITHUB_WORKSPACE"],
    "github.ref": env["GITHUB_REF"],
    "github.ref_name": env["GITHUB_REF_NAME"],
    "github.event_name": env["GITHUB_EVENT_NAME"],
    "github.repository": env["GITHUB_REPOSITORY"],
    "github.sha": env["GITHUB_SHA"],
    "github.token": "",
    "runner.temp": env["RUNNER_TEMP"],
    "runner.os": env["RUNNER_OS"],
    "runner.arch": env["RUNNER_ARCH"],
}
outputs = {}  # step id -> {name: value}


def operand(term):
    term = term.strip()
    if term in ("''", '""'):
        return ""
    if re.fullmatch(r"'[^']*'", term):
        return term[1:-1]
    if term.startswith("inputs."):
        name = term[len("inputs."):]
        if name not in declared:
            sys.exit(f"simulate.sh: expression uses undeclared input {name!r}")
        return inputs[name]
    m = re.fullmatch(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)", term)
    if m:
        return outputs.get(m.group(1), {}).get(m.group(2), "")
    if term in contexts:
        return contexts[term]
    sys.exit(f"simulate.sh: cannot evaluate {term!r}")


def evaluate(expr):
    expr = expr.strip()
    if expr.startswith("${{") and expr.endswith("}}"):
        expr = expr[3:-2].strip()
    for alt in expr.split("||"):  # a || b: the first non-empty
        m = re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", alt.strip())
        if m:
            same = operand(m.group(1)) == operand(m.group(3))
            value = "true" if same == (m.group(2) == "==") else ""
        else:
            value = operand(alt)
        if value:
            return value
    return ""


def expand(text):
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: evaluate(m.group(1)), str(text))


def read_file_commands(path):
    """`name=value` lines and `name<<DELIM` blocks, as GitHub reads $GITHUB_OUTPUT/$GITHUB_ENV."""
    result = {}
    if not os.path.exists(path):
        return result
    lines = open(path, encoding="utf-8").read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            value = []
            while i < len(lines) and lines[i] != delim:
                value.append(lines[i])
                i += 1
            i += 1
            result[name] = "\n".join(value)
        elif "=" in line:
            name, value = line.split("=", 1)
            result[name] = value
    return result


status = 0
for n, step in enumerate(action["runs"]["steps"], 1):
    sid = step.get("id") or f"__step{n}"
    title = step.get("name") or step.get("uses") or sid
    cond = step.get("if")
    if cond is not None and evaluate(str(cond)) in ("", "false"):
        print(f"simulate: skipped: {title}", file=sys.stderr)
        continue
    if "uses" in step:
        sys.exit(f"simulate.sh: step {title!r} uses {step['uses']}, which cannot be simulated")
    if step.get("shell") != "bash":
        sys.exit(f"simulate.sh: step {title!r} must say shell: bash")
    print(f"simulate: running: {title}", file=sys.stderr)
    step_output = os.path.join(env["SIM_DIR"], f"step-{n}-output")
    open(step_output, "w").close()
    step_env = dict(env, GITHUB_OUTPUT=step_output)
    for k, v in (step.get("env") or {}).items():
        step_env[k] = expand(v)
    script = os.path.join(env["SIM_DIR"], f"step-{n}.sh")
    with open(script, "w", encoding="utf-8") as f:
        f.write(expand(step["run"]))
    cwd = os.path.join(env["GITHUB_WORKSPACE"], expand(step.get("working-directory", ".")))
    path_before = os.path.getsize(env["GITHUB_PATH"])
    rc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", script], cwd=cwd, env=step_env, stdin=subprocess.DEVNULL).returncode
    outputs[sid] = read_file_commands(step_output)
    with open(env["GITHUB_PATH"], encoding="utf-8") as f:
        f.seek(path_before)
        for p in reversed([l for l in f.read().splitlines() if l]):
            env["PATH"] = p + os.pathsep + env["PATH"]
    env.update(read_file_commands(env["GITHUB_ENV"]))
    if rc != 0:
        print(f"simulate: step {title!r} failed with exit status {rc}", file=sys.stderr)
        status = rc
        break

with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as f:
    for name, spec in (action.get("outputs") or {}).items():
        value = expand(spec.get("value", ""))
        if "\n" in value:
            f.write(f"{name}<<__SIM_EOF__\n{value}\n__SIM_EOF__\n")
        else:
            f.write(f"{name}={value}\n")
sys.exit(status)
PY
else
  echo "simulate.sh: PyYAML is not installed; running scripts/action-step.sh directly" >&2
  for pair in ${inputs[@]+"${inputs[@]}"}; do
    name=$(printf '%s' "${pair%%=*}" | tr 'a-z-' 'A-Z_')
    export "INPUT_$name=${pair#*=}"
  done
  export INPUT_GIT_BATON_PATH=$baton
  (cd "$workspace" && bash --noprofile --norc -eo pipefail "$action_path/scripts/action-step.sh") || status=$?
fi

if [ "$GITHUB_STEP_SUMMARY" = "$sim/step-summary.md" ]; then
  echo "simulate: step summary ($GITHUB_STEP_SUMMARY):" >&2
  cat "$GITHUB_STEP_SUMMARY" >&2
fi
if [ "$GITHUB_OUTPUT" = "$sim/output" ]; then
  echo "simulate: outputs ($GITHUB_OUTPUT):" >&2
  cat "$GITHUB_OUTPUT" >&2
fi
exit "$status"
