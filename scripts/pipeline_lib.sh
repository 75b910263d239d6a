# Shared by the pipelines (scripts/iwslt14.sh, scripts/glue.sh); sourced, not run. The caller sets
# $out (the run folder) and $script (its name, for messages) before calling these.

# read_settings TABLE SETTING: the table's column for SETTING as shell assignments, one per row, to
# eval; an unknown setting becomes a message naming the table's settings and exit 2
read_settings() {
  awk -F'\t' -v want="$2" -v script="$script" '
    /^#/ { next }
    $1 == "setting" { for (i = 2; i <= NF; i++) { names = names " " $i; if ($i == want) col = i }; next }
    col { printf "%s=%s\n", $1, $col }
    END { if (!col) { printf "echo \"%s: unknown setting %s; %s has:%s\" >&2; exit 2\n", script, want, FILENAME, names } }
  ' "$1"
}

# use_project_env: the project's .venv (created or updated by setup_env.sh) first on PATH, unless
# SELFTEACH_PYTHON_ENV=current asks for the Python environment already on PATH
use_project_env() {
  local root=$1
  if [ "${SELFTEACH_PYTHON_ENV:-}" != current ]; then
    bash "$root/scripts/setup_env.sh"
    export PATH="${VENV:-$root/.venv}/bin:$PATH"
  fi
  export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
}

# stage NAME COMMAND...: run once; the marker (seconds taken) is written atomically, only on success
stage() {
  local name=$1; shift
  if [ -f "$out/stages/$name.done" ]; then echo "== $name: done earlier, skipped"; return 0; fi
  echo "== $name"
  local t0=$SECONDS
  "$@"
  echo $((SECONDS - t0)) > "$out/stages/$name.done.tmp"
  mv "$out/stages/$name.done.tmp" "$out/stages/$name.done"
}

# run_training NAME fairseq-train ARGS...: into models/NAME, logging to logs/NAME.train.log; resumes
# from checkpoint_last.pt (fairseq's own resume). A training that had finished before its stage marker
# was written is not resumed: fairseq would take one more update.
run_training() {
  local name=$1 log="$out/logs/$1.train.log"; shift
  if [ -f "$out/models/$name/checkpoint_last.pt" ] && tail -n 1 "$log" 2>/dev/null | grep -q "done training"; then
    echo "   $name: training had finished (checkpoint_last.pt, $log); not resumed"
    return 0
  fi
  if ! "$@" --save-dir "$out/models/$name" >> "$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "$script: training $name failed; full log: $log" >&2
    return 1
  fi
}
