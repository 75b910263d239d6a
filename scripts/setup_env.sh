#!/usr/bin/env bash
# Creates or updates the project's virtual environment (.venv by default; VENV overrides).
# Idempotent: reinstalls only when requirements.txt changed since the last successful install.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "setup_env: creating $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$root/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup_env: installing requirements.txt into $venv" >&2
  "$venv/bin/pip" install --quiet --no-deps -r "$root/requirements.txt"
  # the stamp is written only after a complete install (temporary name, then rename)
  echo "$want" > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"
fi
