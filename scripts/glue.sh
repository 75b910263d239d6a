#!/usr/bin/env bash
# The GLUE pipeline: bash scripts/glue.sh SETTING [options], the same as selfteach-glue-pipeline SETTING
# [options] (selfteach_pipeline/glue_cli.py; --help lists the options: --out --bert-dir --glue-dir
# --mirror --archives --sdist --data-bin --heldout-every --only-data --student-depths --gradual-schedule
# --teacher-layers --seeds --sweep --sweep-grid --teacher-cache --quality-floor --set --settings --cpu
# --fp16/--no-fp16 --world-size --cores --dry-run --executor). This runs it in the project's .venv
# (scripts/setup_env.sh creates or updates it); SELFTEACH_PYTHON_ENV=current uses the Python environment
# on PATH instead (it must have the package installed: pip install -e .).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=python
if [ "${SELFTEACH_PYTHON_ENV:-}" != current ]; then
  bash "$root/scripts/setup_env.sh"
  python="${VENV:-$root/.venv}/bin/python"
fi
exec "$python" -m selfteach_pipeline.glue_cli "$@"
