# The bash stage library of the recorded studies (docs/results/*/run.sh); sourced, not run: settings,
# environment, run folder, stages (resume), trainings, exports, scoring and parallel lanes. The
# pipelines themselves are Python (selfteach_pipeline/: scripts/iwslt14.sh and scripts/glue.sh run
# them); these studies keep the bash they were run with. The caller sets $root (the checkout), $script
# (its name, for messages), $table (its settings table), $setting and $out before sourcing this.
# Calculations are scripts/pipeline_helper.py's (through `helper`), never code generated and evaluated here.

# helper SUBCOMMAND ARGS...: scripts/pipeline_helper.py (settings, json-get, updates, warmup,
# trained-updates) run by python3 from PATH, the project's environment's (call use_project_env first: it
# imports the package's settings reader). Its errors are one line on stderr, exit status 2.
helper() { python3 "$root/scripts/pipeline_helper.py" --prog "$script" "$@"; }

# load_settings: the column $setting of $table as shell variables, one per row. The helper checks the
# table and prints NAME<TAB>VALUE lines; each is assigned as a plain string (printf -v), nothing is
# evaluated. An unknown setting: a message naming the table and its settings, exit 2.
load_settings() {
  local _lines _name _value
  _lines=$(helper settings "$table" "$setting") || exit $?
  [ -n "$_lines" ] || return 0
  while IFS=$'\t' read -r _name _value; do
    if ! [[ $_name =~ ^[a-z][a-z0-9_]*$ ]]; then
      echo "$script: bad row name '$_name' in $table" >&2; exit 2
    fi
    printf -v "$_name" '%s' "$_value"
  done <<< "$_lines"
}


# use_project_env: the project's .venv (created or updated by setup_env.sh, which installs the package
# with `pip install -e .`) first on PATH. SELFTEACH_PYTHON_ENV=current keeps the Python environment
# already on PATH instead: that environment must have the package installed (pip install -e .), as
# nothing here adds the checkout to PYTHONPATH.
use_project_env() {
  if [ "${SELFTEACH_PYTHON_ENV:-}" != current ]; then
    bash "$root/scripts/setup_env.sh"
    export PATH="${VENV:-$root/.venv}/bin:$PATH"
  fi
  # under the tests (their fork server, tests/conftest.py): fairseq's tools through its clients
  if [ -n "${SELFTEACH_FORKSERVER_SOCKET:-}" ]; then export PATH="$root/scripts/forkserver-bin:$PATH"; fi
}

# start_run DEFAULT_OUT [SUBFOLDER...]: $out (--out, or DEFAULT_OUT) made absolute, with its folders
# stages, logs, models, results and the SUBFOLDERs
start_run() {
  out=$(realpath -m "${out:-$1}"); shift
  local sub
  for sub in stages logs models results "$@"; do mkdir -p "$out/$sub"; done
}

# stage NAME COMMAND...: run once; the marker (seconds taken) is written atomically, only on success
stage() {
  local name=$1; shift
  if done_earlier "$name"; then return 0; fi
  local t0=$SECONDS
  "$@"
  mark_done "$name" $((SECONDS - t0))
}
done_earlier() {  # done_earlier NAME: whether the stage's marker is there (said either way)
  if [ -f "$out/stages/$1.done" ]; then echo "== $1: done earlier, skipped"; return 0; fi
  echo "== $1"
  return 1
}
mark_done() {  # mark_done NAME SECONDS: the stage's marker, written atomically
  echo "$2" > "$out/stages/$1.done.tmp"
  mv "$out/stages/$1.done.tmp" "$out/stages/$1.done"
}

# train NAME DATA MAX_UPDATE ARGS...: fairseq-train DATA --max-update MAX_UPDATE "${common[@]}" ARGS
# (the caller's array `common`) into models/NAME, logging to logs/NAME.train.log; resumes from
# checkpoint_last.pt (fairseq's own resume). A training that had finished before its stage marker was
# written is not resumed: fairseq would take one more update.
train() {
  local name=$1 data=$2 updates=$3 log="$out/logs/$1.train.log"; shift 3
  if [ -f "$out/models/$name/checkpoint_last.pt" ] && tail -n 1 "$log" 2>/dev/null | grep -q "done training"; then
    echo "   $name: training had finished (checkpoint_last.pt, $log); not resumed"
    return 0
  fi
  if ! fairseq-train "$data" --max-update "$updates" "${common[@]}" "$@" --save-dir "$out/models/$name" \
      >> "$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "$script: training $name failed; full log: $log" >&2
    return 1
  fi
}

# export_model NAME CHECKPOINT [--decoder-layers K | --encoder-layers K]: models/NAME.pt, a plain
# checkpoint of its own (the first K layers where given), now: for a model read before the trainings end
export_model() {
  python -m fairseq_selfteach.cli.export_student --checkpoint "$2" --out "$out/models/$1.pt" "${@:3}"
}

# evaluate_all MODEL:NAME:METHOD...: the stage eval_ROW for each row, where ROW is NAME with the model's
# seed suffix (_sSEED), if it has one: the file stem of the row's results (one per model and seed; a model
# may stand for two rows, e.g. a gradual stage). For each row not done earlier the caller's
# `evaluate_row JOBS MODEL NAME METHOD ROW` does what the row needs alone (translation: the decoding) and
# appends the scoring tool's options for it to the file JOBS; then the caller's `score_jobs JOBS` scores
# every row in one process (the tools' --jobs: one start-up, not one per row) and the rows' markers are
# written. A failure marks no row.
evaluate_all() {
  local row model name method suffix t0=$SECONDS jobs done_rows=()
  jobs=$(mktemp "$out/stages/eval_jobs.XXXXXX")
  for row in "$@"; do
    IFS=: read -r model name method <<< "$row"
    suffix=""
    if [[ $model =~ (_s[0-9]+)$ ]]; then suffix=${BASH_REMATCH[1]}; fi
    if done_earlier "eval_$name$suffix"; then continue; fi
    evaluate_row "$jobs" "$model" "$name" "$method" "$name$suffix" || { rm -f "$jobs"; return 1; }
    done_rows+=("eval_$name$suffix")
  done
  if [ ${#done_rows[@]} -gt 0 ]; then
    score_jobs "$jobs" || { rm -f "$jobs"; return 1; }
    for row in "${done_rows[@]}"; do mark_done "$row" $((SECONDS - t0)); done
  fi
  rm -f "$jobs"
}

# run_in_lanes LANES THREADS FUNCTION ITEM...: FUNCTION over the ITEMs, which are split into LANES
# runs of consecutive items (the earlier runs one longer where they do not divide evenly), run side by
# side, each lane with THREADS threads (OMP_NUM_THREADS, MKL_NUM_THREADS); waits for every lane and
# fails if any failed. With LANES 1, FUNCTION gets every item, here, with the threads as they are.
run_in_lanes() {
  local lanes=$1 threads=$2 fn=$3; shift 3
  if [ "$lanes" -le 1 ]; then "$fn" "$@"; return; fi
  local size=$(( ($# + lanes - 1) / lanes )) start pid rc=0 pids=()
  for (( start = 1; start <= $#; start += size )); do
    ( export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads; "$fn" "${@:start:size}" ) & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  if [ $rc != 0 ]; then echo "$script: a lane of $fn failed (see above)" >&2; fi
  return $rc
}

# run_queue LANES THREADS ITEM...: each ITEM ("FUNCTION ARG", split on the space, never evaluated) run
# once, by LANES lanes side by side (THREADS threads each) that each take the next unclaimed item when
# they come free; a claim is a mkdir (atomic) in a queue folder of this run. Waits for every lane and
# fails if any item failed.
run_queue() {
  local lanes=$1 threads=$2; shift 2
  local queue="$out/queue.$$" lane pid rc=0 pids=()
  rm -rf "$queue" && mkdir -p "$queue"
  for (( lane = 1; lane <= lanes; lane++ )); do
    (
      export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
      i=0
      for item in "$@"; do
        i=$((i + 1))
        mkdir "$queue/$i" 2>/dev/null || continue
        read -r fn arg <<< "$item"
        "$fn" "$arg" || exit 1
      done
    ) & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  rm -rf "$queue"
  if [ $rc != 0 ]; then echo "$script: a lane failed (see above)" >&2; fi
  return $rc
}
