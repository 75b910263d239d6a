#!/usr/bin/env bash
# Creates or updates the project's virtual environment (.venv by default; VENV overrides) and installs
# the project into it (`pip install -e .`: the package, its console scripts, no sys.path tricks).
# Idempotent: reinstalls only when requirements.txt or pyproject.toml changed since the last install.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "setup_env: creating $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want=$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup_env: installing requirements.txt and the project (pip install -e .) into $venv" >&2
  "$venv/bin/pip" install --quiet --no-deps -r "$root/requirements.txt"
  # the venv's own setuptools builds the editable install: nothing is fetched for the build
  "$venv/bin/pip" install --quiet --no-deps --no-build-isolation -e "$root"
  # the stamp is written only after a complete install (temporary name, then rename)
  echo "$want" > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"
fi
