#!/usr/bin/env bash
# The translation pipeline: bash scripts/iwslt14.sh SETTING [options], the same as
# selfteach-translation-pipeline SETTING [options] (selfteach_pipeline/translate_cli.py; --help lists
# the options: --out --archive --url --seqkd --cpu --debs --seeds --sweep --sweep-grid --teacher-cache
# --fp16/--no-fp16 --world-size --anydepth --quality-floor --only-data --data-bin --set --settings
# --dry-run --executor). This runs it in the project's .venv (scripts/setup_env.sh creates or updates
# it); SELFTEACH_PYTHON_ENV=current uses the Python environment on PATH instead (it must have the
# package installed: pip install -e .).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=python
if [ "${SELFTEACH_PYTHON_ENV:-}" != current ]; then
  bash "$root/scripts/setup_env.sh"
  python="${VENV:-$root/.venv}/bin/python"
fi
exec "$python" -m selfteach_pipeline.translate_cli "$@"
