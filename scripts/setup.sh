#!/usr/bin/env bash
# Shared set-up for a fresh machine: a virtualenv in .venv with hamilton_nb installed (the
# JupyterLab extension is built by node during the install) and, with --browser, Debian's
# chromium for the browser tests. Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
[[ "${1:-}" == "--browser" ]] && want_browser=1

if (( want_browser )) && ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (Debian package) for the browser tests"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# The extension build runs yarn (jlpm); make it fetch from the registry npm is configured with,
# which is the one this machine is known to reach.
if command -v npm >/dev/null 2>&1 && [[ -z "${YARN_NPM_REGISTRY_SERVER:-}" ]]; then
  registry=$(npm config get registry 2>/dev/null || true)
  [[ -n "$registry" ]] && export YARN_NPM_REGISTRY_SERVER="${registry%/}"
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip
echo "==> installing hamilton_nb with its test, dask and ray extras (builds the JupyterLab extension)"
python -m pip install -q -e ".[test,dask,ray]"
