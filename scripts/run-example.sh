#!/usr/bin/env bash
# The main job: execute notebooks/quickstart.ipynb with hamilton_nb active in a real kernel and
# save the executed notebook to build/quickstart.executed.ipynb (it prints its summary too).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m jupyter nbconvert --to notebook --execute notebooks/quickstart.ipynb \
  --output-dir build --output quickstart.executed.ipynb --ExecutePreprocessor.timeout=600
python - <<'PY'
import nbformat
nb = nbformat.read("build/quickstart.executed.ipynb", as_version=4)
for cell in nb.cells:
    for out in cell.get("outputs", []):
        text = out.get("text") or out.get("data", {}).get("text/plain", "")
        if text:
            print(text if isinstance(text, str) else "".join(text))
print("\nExecuted notebook saved to build/quickstart.executed.ipynb")
PY
