#!/bin/bash
# Regenerate the reference tables from both references (each in its own venv), then the reduced
# tables_reduced.json that tests/test_paramwise.py reads (the full tables stay untracked).
# Needs: /work/ref/venv (mmengine-lite 0.10.7) and /work/ref/venv_mmcv (mmcv 1.7.2, MMCV_WITH_OPS=0);
# override with MMENGINE_PY=... MMCV_PY=...
set -euo pipefail
cd "$(dirname "$0")"
"${MMENGINE_PY:-/work/ref/venv/bin/python}" make_tables_mmengine.py
PYTHONPATH=_stubs "${MMCV_PY:-/work/ref/venv_mmcv/bin/python}" make_tables_mmcv.py
python3 - <<'PY'
import json
a = json.load(open('tables_mmengine.json')); b = json.load(open('tables_mmcv.json'))
json.dump(a + b, open('tables.json', 'w'), indent=1)
print('tables.json:', len(a) + len(b), 'cases')
PY
python3 reduce_tables.py
