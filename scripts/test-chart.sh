#!/usr/bin/env bash
# Render, lint and check the Helm chart with the real Helm engine (PyPI: helm-python-sdk),
# plus deploy/ and the Dockerfile. Needs only python3 and PyPI.
#
#   scripts/test-chart.sh            check (used by `make test`); exits non-zero on failure
#   scripts/test-chart.sh --update   first sync crds/ into the chart and regenerate deploy/
#   scripts/test-chart.sh -- ARGS    pass ARGS to pytest (e.g. -- -k webhooks -x)
#   scripts/test-chart.sh --venv-only  only create/refresh .venv (scripts/e2e-cluster.sh uses it)
#
# The virtual environment lives in .venv/ (git-ignored; CHART_TEST_VENV overrides) and is
# reused while tests/chart/requirements.txt is unchanged.
set -euo pipefail

cd "$(dirname "$0")/.."
venv=${CHART_TEST_VENV:-.venv}
requirements=tests/chart/requirements.txt
update=0
venv_only=0
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --update) update=1 ;;
    --venv-only) venv_only=1 ;;
    --) shift; pytest_args=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "test-chart: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "test-chart: $python not found; install Python 3.10 or newer" >&2
  exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "test-chart: creating virtual environment $venv"
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian/Ubuntu without python3-venv: fall back to virtualenv from PyPI.
    rm -rf "$venv"
    "$python" -m pip install --quiet --user virtualenv
    "$python" -m virtualenv --quiet "$venv"
  fi
fi

stamp="$venv/.chart-requirements.sha256"
if command -v sha256sum >/dev/null 2>&1; then
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
else
  want=$(shasum -a 256 "$requirements" | cut -d' ' -f1)
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
   || ! "$venv/bin/python" -c "import helm_python, cel, yaml, pytest" >/dev/null 2>&1; then
  echo "test-chart: installing $requirements into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi

[ "$venv_only" = 1 ] && exit 0
export PYTHONDONTWRITEBYTECODE=1

if [ "$update" = 1 ]; then
  scripts/sync-crds.sh
  "$venv/bin/python" scripts/render-deploy.py
fi

status=0
scripts/sync-crds.sh --check || status=1
"$venv/bin/python" -m pytest -q tests/chart ${pytest_args[@]+"${pytest_args[@]}"} || status=$?
if [ "$status" -ne 0 ]; then
  echo "test-chart: FAILED (chart/CRD/deploy out of date? try scripts/test-chart.sh --update)" >&2
fi
exit "$status"
