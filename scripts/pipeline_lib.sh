# Shared by the pipelines (scripts/iwslt14.sh, scripts/glue.sh); sourced, not run: the usage text,
# option parsing, settings, environment, device, run folder, stages (resume), trainings, exports, the sweep and
# parallel lanes. The caller sets $root (the checkout), $script (its name, for messages) and $table (its
# settings table) before sourcing this; parse_options and start_run set $setting and $out. Calculations
# are scripts/pipeline_helper.py's (through `helper`), never code generated and evaluated here.

# helper SUBCOMMAND ARGS...: scripts/pipeline_helper.py (settings, json-get, updates, warmup, cuda-count, world-size,
# trained-updates,
# minilm-dir) run by python3 from PATH: before use_project_env any Python 3 (settings needs only the
# standard library), after it the environment's. Its errors are one line on stderr, exit status 2.
helper() { python3 "$root/scripts/pipeline_helper.py" --prog "$script" "$@"; }

# usage: the running script's header comment (from its second line to the first line that is not a
# comment) on stderr; exit 2
usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[-1]}" >&2
  exit 2
}

# parse_options ARGS...: SETTING first, then the options every pipeline takes (--out DIR, --cpu,
# --only-data, -h/--help) and the script's own, which its function `script_option OPTION [VALUE]`
# handles: it sets its variable and `took` to the words used (1: a flag, 2: an option and its value),
# or leaves took=0. An option neither knows, or one missing its value, is refused (usage, exit 2).
# --teacher-cache: offline, gradual and sweep students read their teacher's outputs from a cache
# (teacher_cache_for); --world-size N: processes per training on GPUs (detect_device); --quality-floor F:
# the report's depth pick (set_quality_floor); --fp16 / --no-fp16: half-precision training (detect_device).
# Sets setting, out, force_cpu, only_data, teacher_cache, world_size_opt, floor_opt, fp16_opt.
parse_options() {
  [ $# -ge 1 ] || usage
  case $1 in
    -h|--help) usage ;;
    -*) echo "$script: the SETTING comes first, before $1" >&2; usage ;;
  esac
  setting=$1; shift
  out="" force_cpu=0 only_data=0 teacher_cache=0 world_size_opt="" floor_opt="" fp16_opt=""
  while [ $# -gt 0 ]; do
    took=0
    case $1 in
      --out) out=${2-}; took=2 ;;
      --cpu) force_cpu=1; took=1 ;;
      --fp16) fp16_opt=1; took=1 ;;
      --no-fp16) fp16_opt=0; took=1 ;;
      --only-data) only_data=1; took=1 ;;
      --teacher-cache) teacher_cache=1; took=1 ;;
      --world-size) world_size_opt=${2-}; took=2 ;;
      --quality-floor) floor_opt=${2-}; took=2 ;;
      -h|--help) usage ;;
      *) script_option "$@" ;;
    esac
    if [ "$took" = 0 ]; then echo "$script: unknown option $1" >&2; usage; fi
    if [ "$took" -gt $# ]; then echo "$script: $1 needs a value" >&2; usage; fi
    shift "$took"
  done
}

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

# set_quality_floor: quality_floor, --quality-floor's or the table's: the fraction of the teacher's
# validation score that the report's depth pick asks of the shallowest model; refused unless 0 < F <= 1
set_quality_floor() {
  quality_floor=${floor_opt:-$quality_floor}
  if ! [[ $quality_floor =~ ^(0?\.[0-9]*[1-9][0-9]*|1(\.0*)?)$ ]]; then
    echo "$script: --quality-floor takes a fraction of the teacher's validation score, 0 < F <= 1, e.g. 0.97" \
      "(not '$quality_floor')" >&2
    exit 2
  fi
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

# detect_device: the array `device` for fairseq and the evaluations: (--cpu) with --cpu or where torch
# sees no CUDA device (said, since the user did not ask for it), otherwise empty; the array `precision`
# for every training: (--fp16) on CUDA devices unless --no-fp16, empty on CPU, where --fp16 is refused
# (fairseq's fp16 optimizers are a GPU feature); the choice is said
detect_device() {
  device=() distributed=() precision=()
  local gpus=0 world
  if [ "$force_cpu" = 0 ]; then gpus=$(helper cuda-count) || exit 2; fi
  if [ "$gpus" = 0 ]; then
    if [ "$fp16_opt" = 1 ]; then
      echo "$script: --fp16 is fairseq's half-precision training on CUDA devices; on CPU the pipelines train" \
        "in float32 (leave out --fp16)" >&2
      exit 2
    fi
    device=(--cpu)
    [ "$force_cpu" = 1 ] || echo "$script: torch sees no CUDA device: training and evaluating on CPU"
    echo "$script: training in float32 (CPU)"
    if [ -n "$world_size_opt" ]; then
      echo "$script: --world-size is for CUDA devices; on CPU, run fairseq-train under torchrun (README)" >&2
      exit 2
    fi
    return 0
  fi
  if [ "$fp16_opt" = 0 ]; then
    echo "$script: training in float32 (--no-fp16)"
  else
    precision=(--fp16)
    echo "$script: training in half precision (--fp16, fairseq's mixed precision with a dynamic loss scale;" \
      "--no-fp16 for float32)"
  fi
  # fairseq-train uses every visible GPU, one process each: the world size is said and passed explicitly
  world=$(helper world-size "$gpus" "$world_size_opt") || exit 2
  distributed=(--distributed-world-size "$world")
  if [ "$world" -gt 1 ]; then
    # online-gradual stages leave layers without a gradient and exit heads are applied after the model's
    # forward, which torch's DDP (pytorch_ddp) stops at either way; legacy_ddp takes both (core/gradient_sync.py)
    distributed+=(--ddp-backend legacy_ddp)
    echo "$script: $gpus CUDA devices visible: every training runs in $world processes" \
      "(--distributed-world-size $world --ddp-backend legacy_ddp, which takes online-gradual stages and exit heads;" \
      "--world-size N to change), so one update holds $world batches and a budget of U updates sees $world" \
      "times the examples it does in one process"
  fi
}

# contains WORD LIST...: whether WORD is one of the LIST's words
contains() {
  local word=$1 item; shift
  for item in "$@"; do [ "$item" = "$word" ] && return 0; done
  return 1
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
# teacher_cache_for NAME TEACHER STUDENT_OPTIONS...: with --teacher-cache, the stage cache_NAME runs
# TEACHER over the training split once (cli/teacher_cache.py, given the students' own task options)
# into OUT/caches/NAME, and cache_opts reads it (--teacher-cache); without it, cache_opts is empty.
# A teacher's cache is built before any lane could need it (the teacher's in its own branch, a gradual
# stage's in its seed's chain), so two lanes never build one.
teacher_cache_for() {
  local name=$1 checkpoint=$2; shift 2
  cache_opts=()
  [ "$teacher_cache" = 1 ] || return 0
  stage "cache_$name" build_teacher_cache "$name" "$checkpoint" "$@"
  cache_opts=(--teacher-cache "$out/caches/$name")
}
build_teacher_cache() {
  local name=$1 checkpoint=$2 dir="$out/caches/$1" log="$out/logs/cache_$1.log"; shift 2
  if [ -f "$dir/meta.json" ]; then echo "   cache $name: built before ($dir)"; return 0; fi
  mkdir -p "$out/caches"
  if ! python -m fairseq_selfteach.cli.teacher_cache "$bin" "${common[@]}" "$@" --teacher-path "$checkpoint" \
      --cache-out "$dir" > "$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "$script: caching teacher $name failed; full log: $log" >&2
    return 1
  fi
  grep "^teacher_cache: wrote" "$log"
}
export_model() {
  python -m fairseq_selfteach.cli.export_student --checkpoint "$2" --out "$out/models/$1.pt" "${@:3}"
}
# export_later STAGE NAME CHECKPOINT ARGS...: the stage STAGE, export_model NAME CHECKPOINT ARGS, queued
# for export_queued, which runs every queued export in one export_student process (its --jobs: one
# start-up, about 5-9 s, for all rather than one per model). Each lane queues into a file of its own, in
# its order, so an export that reads an earlier one (--earlier-training) runs after it.
export_later() {
  local stage_name=$1 name=$2 checkpoint=$3; shift 3
  if done_earlier "$stage_name"; then return 0; fi
  printf '%s\n' "$stage_name" --checkpoint "$checkpoint" --out "$out/models/$name.pt" "$@" | paste -sd '\t' \
    >> "$out/stages/exports.$BASHPID"
}
# export_queued: every export the lanes queued (export_later), in one process; each one's stage marker
# is written once all succeeded. Queues an interrupted run left behind are dropped by forget_exports
# (their exports are queued again, as their markers are missing).
export_queued() {
  local files=("$out"/stages/exports.*) jobs names name t0=$SECONDS
  [ -e "${files[0]}" ] || return 0
  jobs=$(mktemp "$out/stages/export_jobs.XXXXXX")
  cat "${files[@]}" | cut -f2- > "$jobs"
  mapfile -t names < <(cat "${files[@]}" | cut -f1)
  echo "$script: exporting ${#names[@]} models in one export_student process (--jobs)"
  python -m fairseq_selfteach.cli.export_student --jobs "$jobs" || { rm -f "$jobs"; return 1; }
  for name in "${names[@]}"; do mark_done "$name" $((SECONDS - t0)); done
  rm -f "$jobs" "${files[@]}"
}
forget_exports() { rm -f "$out"/stages/exports.* "$out"/stages/export_jobs.*; }

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

# run_each COMMAND...: each command (a word each, e.g. a function) in turn
run_each() {
  local command
  for command in "$@"; do "$command"; done
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

# run_sweep METRIC WHAT: the sweep over the table's sweep_grid. The caller's `sweep_point N` trains and
# scores the grid's N-th point into OUT/sweep/sweep_NAME.json (the lanes take the points as they come
# free); the point with the best METRIC (sweep-pick: OUT/sweep.md, OUT/sweep.json) has its options
# appended to the caller's array `kd`. WHAT says what each point is, for the log.
run_sweep() {
  local metric=$1 what=$2 points n i line words name results=() items=()
  points=$(helper sweep-grid "$sweep_grid") || exit 2
  n=$(wc -l <<< "$points")
  echo "$script: sweep over $sweep_grid ($n points): $what"
  mkdir -p "$out/sweep"
  for (( i = 1; i <= n; i++ )); do items+=("sweep_point $i"); done
  run_queue "$parallel_jobs" "$threads" "${items[@]}"
  while IFS=$'\t' read -r name _; do results+=("$out/sweep/sweep_$name.json"); done <<< "$points"
  line=$(helper sweep-pick --metric "$metric" --grid "$sweep_grid" --md "$out/sweep.md" --json "$out/sweep.json" \
    "${results[@]}") || exit 2
  IFS=$'\t' read -r -a words <<< "$line"
  kd+=("${words[@]:1}")
  echo "$script: sweep picked ${words[0]} (best $metric on validation; $out/sweep.md): every student and" \
    "online model gets ${words[*]:1}"
}

# plan_online_gradual: where the table's online_gradual is yes, the array stage_budgets: the caller's
# teacher_budget split evenly over the stages of its gradual schedule (the caller's array `schedule`,
# L layers first), printed; otherwise empty
plan_online_gradual() {
  [ "$online_gradual" = yes ] || { stage_budgets=(); return 0; }
  local budgets
  budgets=$(helper split-budget "$teacher_budget" "$(( ${#schedule[@]} - 1 ))") || exit 2
  mapfile -t stage_budgets <<< "$budgets"
  echo "$script: online_gradual: one $L-layer model through ${gradual_schedule//,/→}, stages of" \
    "${stage_budgets[*]} updates (the teacher's budget, $teacher_budget, split evenly)"
}
