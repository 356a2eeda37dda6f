#!/bin/sh
# The command of every dvc.yaml stage: `sh tasks/run.sh <stage> [args]` = `python -m tasks.<stage> [args]`
# with the project's interpreter, whether or not its virtualenv is activated (DVC runs a stage's cmd
# with whatever is first on PATH, and a bare `python` there has no torch). The interpreter is:
#   $RLHF_PYTHON when set (`rlhf run` sets it to its own interpreter);
#   else the project's .venv (next to tasks/, or in $DVC_ROOT: `dvc exp run --temp` runs a copy);
#   else python3 (or python) on PATH, e.g. an activated conda environment.
set -e
if [ $# -lt 1 ]; then
  echo "usage: sh tasks/run.sh <stage> [args]" >&2
  exit 2
fi
stage=$1
shift
case $0 in  # the directory of this script, without external commands (PATH may hold none)
  */*) here=${0%/*} ;;
  *) here=. ;;
esac
project=$(cd "$here/.." && pwd)
if [ -n "${RLHF_PYTHON:-}" ]; then
  python=$RLHF_PYTHON
elif [ -x "$project/.venv/bin/python" ]; then
  python=$project/.venv/bin/python
elif [ -n "${DVC_ROOT:-}" ] && [ -x "$DVC_ROOT/.venv/bin/python" ]; then
  python=$DVC_ROOT/.venv/bin/python
else
  python=$(command -v python3 || command -v python || true)
fi
if [ -z "$python" ]; then
  echo "error: $stage: no Python interpreter: create the project's .venv (make venv) or set RLHF_PYTHON" >&2
  exit 1
fi
exec "$python" -m "tasks.$stage" "$@"
