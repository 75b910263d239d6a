#!/usr/bin/env bash
# Runs the test suite (sets up .venv first; idempotent). Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` to skip the end-to-end trainings.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup_env.sh"
cd "$root"
exec "${VENV:-$root/.venv}/bin/python" -m pytest "$@"
