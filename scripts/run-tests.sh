#!/usr/bin/env bash
# Install everything the tests need (venv, package + extension build, chromium) and run them all:
# lint, unit and in-process IPython tests, real-kernel tests, notebooks under nbval, browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
. .venv/bin/activate
export CHROMIUM=${CHROMIUM:-$(command -v chromium)}
echo "==> ruff"
ruff check hamilton_nb tests benchmarks
set +e
python -m pytest -q -p no:cacheprovider tests "notebooks" --nbval-lax "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit $status
