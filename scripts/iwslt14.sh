#!/usr/bin/env bash
# One translation pipeline per setting of scripts/translation_settings.tsv:
#   data → teacher → baselines (pruned teacher, scratch student) → offline students → online exits
#   → gradual schedule → [sequence-level KD] → [anydepth: one model, every exit] → export
#   → fairseq-generate (beam, every test sentence) → sacreBLEU + tokenised BLEU, parameters, speed
#   → results.md (with the depth pick) + bleu_vs_params.png
#
# Usage: bash scripts/iwslt14.sh SETTING [--out DIR] [--archive PATH] [--url URL] [--seqkd] [--cpu]
#                                        [--debs DIR] [--seeds 1,2,3] [--sweep] [--sweep-grid SPEC] [--teacher-cache]
#                                        [--fp16 | --no-fp16] [--world-size N] [--anydepth] [--quality-floor F]
#                                        [--only-data]
#   SETTING   de | ar | fa | es | he (IWSLT14 X→en), bible | bible-full | bible-ci (offline Es→En Bible)
#   --out     run folder (default runs/iwslt14-SETTING)
#   --archive a local IWSLT14 archive: the pair's ({src}-en.tgz) or the whole 2014-01 release (2014-01.tgz)
#   --url     download the archive from this URL (a mirror); IWSLT14_MIRROR works too
#   --seqkd   also train sequence-level KD students (the teacher decodes the training set)
#   --cpu     train and decode on CPU even where CUDA is available
#   --fp16, --no-fp16  half-precision training (fairseq's --fp16): on by default where CUDA is visible;
#             refused with --cpu or without CUDA, where the pipeline trains in float32
#   --world-size N  processes per training on GPUs (default: every visible GPU, as fairseq-train does)
#   --seeds   every trained row but the teacher is repeated with each seed (default: the table's seeds)
#   --sweep   choose the distillation options on validation data: train the first offline student
#             once per point of the table's sweep_grid, pick the highest sacreBLEU on valid, and give
#             the pick to every student and online model (sweep.md, sweep.json; test is never used)
#   --sweep-grid  --sweep over this grid instead of the table's (KEY=V,V;KEY=V,V; keys kd_alpha,
#             kd_temperature, kd_direction), e.g. 'kd_alpha=0.3,0.5,0.7'
#   --teacher-cache  offline, gradual and sweep students read their teacher's top 8 logits per target
#             token from a cache (OUT/caches, one per teacher, built once) instead of running it
#   --anydepth  also train one model with every decoder exit (--student-exits all, the teacher's budget)
#             and decode it at each exit without exporting (--exit-layer K): the anydepth table (default:
#             the table's anydepth)
#   --quality-floor F  the report names the shallowest student or exit whose valid sacreBLEU is at least
#             F × the teacher's (default: the table's quality_floor, e.g. 0.97)
#   --debs    (bible settings) a folder with the sword-text-kjv/sparv .deb files instead of apt-get
#   --only-data  stop once the data is prepared (OUT/data/prep)
# SELFTEACH_PYTHON_ENV=current uses the Python environment on PATH instead of the project's .venv (it
# must have the package installed: pip install -e .).
# Re-running skips finished stages (markers in OUT/stages, written atomically after a stage succeeds);
# an interrupted training resumes from its checkpoint_last.pt (fairseq writes checkpoints atomically).
# The shared machinery (options, settings, stages, trainings, parallel lanes) is scripts/pipeline_lib.sh;
# its calculations are scripts/pipeline_helper.py.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
script=iwslt14.sh table="$root/scripts/translation_settings.tsv"
source "$root/scripts/pipeline_lib.sh"  # usage, options, settings, stages, lanes: shared with glue.sh
source "$root/scripts/translation_lib.sh"  # training and decoding options, decoding and scoring
archive="" url="" debs="" seqkd=0 seeds_opt="" sweep=0 sweep_grid_opt="" anydepth_opt=""
script_option() {  # this script's own options (parse_options has --out, --cpu, --only-data, --help)
  case $1 in
    --archive) archive=${2-}; took=2 ;;
    --url) url=${2-}; took=2 ;;
    --debs) debs=${2-}; took=2 ;;
    --seqkd) seqkd=1; took=1 ;;
    --seeds) seeds_opt=${2-}; took=2 ;;
    --sweep) sweep=1; took=1 ;;
    --sweep-grid) sweep_grid_opt=${2-}; sweep=1; took=2 ;;
    --anydepth) anydepth_opt=yes; took=1 ;;
  esac
}
parse_options "$@"
load_settings
if [ -n "$sweep_grid_opt" ]; then
  sweep_grid=$sweep_grid_opt
  echo "iwslt14.sh: the sweep's grid is --sweep-grid's ($sweep_grid), not the table's"
fi
anydepth=${anydepth_opt:-$anydepth}
set_quality_floor
if [ $sweep = 1 ] && [ "$sweep_grid" != - ]; then helper sweep-grid "$sweep_grid" > /dev/null || exit 2; fi
if [ $sweep = 1 ] && [ "$sweep_grid" = - ]; then
  echo "iwslt14.sh: --sweep: setting $setting has no sweep_grid ($table)" >&2; exit 2
fi
# refused before any work: depths the teacher cannot have, seeds that are not numbers
helper depths --teacher "$teacher_decoder_layers" --schedule "$gradual_schedule" --students "$student_depths" \
  --layers "decoder layers" --where "$table" || exit 2
seed_list=${seeds_opt:-$seeds}
IFS=, read -r -a seed_values <<< "$seed_list"
for s in "${seed_values[@]}"; do
  if ! [[ $s =~ ^[0-9]+$ ]]; then echo "iwslt14.sh: --seeds takes whole numbers, e.g. 1,2,3 (not '$seed_list')" >&2; exit 2; fi
done
use_project_env
start_run "$root/runs/iwslt14-$setting" generate
detect_device

# ---- data ------------------------------------------------------------------------------------
get_raw() {
  if [ "$corpus" = bible ]; then
    python "$root/preprocess/bible.py" --out "$out/data" --test-every "$test_every" --max-words "$max_words" \
      ${debs:+--debs "$debs"}
  else
    local src_args=()
    [ -n "$archive" ] && src_args+=(--archive "$archive")
    [ -n "$url" ] && src_args+=(--url "$url")
    python "$root/preprocess/iwslt14.py" --src "$src" --out "$out/data" "${src_args[@]}"
  fi
}
prepare() {
  python "$root/preprocess/prepare_translation.py" --raw "$out/data/raw" --src "$src" --tgt "$tgt" \
    --out "$out/data/prep" --bpe "$bpe" --bpe-merges "$bpe_merges" --max-len "$max_len" \
    --max-train-pairs "$max_train_pairs" --workers "$(nproc)"
}
stage raw get_raw
stage prepare prepare
prep="$out/data/prep" bin="$out/data/prep/bin"
if [ $only_data = 1 ]; then echo "iwslt14.sh: data ready in $out/data/prep"; exit 0; fi

# ---- training --------------------------------------------------------------------------------
translation_options  # common (training) and decode (scripts/translation_lib.sh)
kd=(--kd-alpha "$kd_alpha" --kd-temperature "$kd_temperature")
distil=(--criterion self_distill)  # what a student of a frozen teacher trains with (the task is in common)
if [ "$teacher_cache" = 1 ]; then
  echo "iwslt14.sh: --teacher-cache: the offline, gradual and sweep students read their teacher's top 8 logits" \
    "per target token from OUT/caches (one pass of each teacher over train); validation still runs the teacher"
fi

L=$teacher_decoder_layers
teacher="$out/models/teacher/checkpoint_best.pt"
IFS=, read -r -a depths <<< "$student_depths"
IFS=, read -r -a schedule <<< "$gradual_schedule"

# Independent branches run in `parallel_jobs` lanes (settings table), each with its share of the
# cores: on 2 CPU cores two 1-thread trainings get through more updates than one 2-thread training.
threads=$(( $(nproc) / parallel_jobs )); [ "$threads" -ge 1 ] || threads=1

# Every trained row but the teacher is repeated with each seed (--seeds, or the table's `seeds`): its
# models and results carry the suffix _sSEED; the teacher is trained once, with the first seed.
teacher_seed=${seed_values[0]}
# students (and the same-budget scratch baseline) get their own learning rate and warm-up: they start
# from trained layers, which re-warming to the teacher's peak rate would undo
student_schedule=(--lr "$student_lr" --warmup-updates "$student_warmup_updates")
# teacher_patience N: the teacher trains until its validation loss has not improved for N epochs
# (fairseq's --patience; teacher_max_update caps it), alone with every core; the online models and the
# teacher-budget baseline then get the number of updates it took. Otherwise the teacher's budget is
# teacher_max_update and the teacher trains in a lane beside the teacher-free work.
teacher_stop=() teacher_budget=$teacher_max_update
if [ "$teacher_patience" != - ]; then teacher_stop=(--patience "$teacher_patience"); fi
if [ "$anydepth" = yes ]; then
  echo "iwslt14.sh: anydepth: one $L-layer model with every decoder exit trained (--student-exits all, the" \
    "teacher's budget, seed $teacher_seed), decoded at exits 1-$L with fairseq-generate --exit-layer K"
fi
if [ "$online_gradual_from_teacher" = yes ]; then
  echo "iwslt14.sh: online_gradual_from_teacher: the trained teacher walked through ${gradual_schedule//,/→}" \
    "in one model, stages of $student_max_update updates at lr $student_lr (the offline chain's)"
fi
echo "iwslt14.sh: seeds $seed_list (the teacher is trained once, with seed $teacher_seed); students get" \
  "$student_max_update updates at lr $student_lr ($student_warmup_updates warm-up), the teacher" \
  "$([ "$teacher_patience" = - ] && echo "and the teacher-budget baseline $teacher_max_update" ||
    echo "until its valid loss stops improving for $teacher_patience epochs (at most $teacher_max_update)")"

teacher_branch() {
  stage teacher train teacher "$bin" "$teacher_max_update" --decoder-layers "$L" \
    --criterion label_smoothed_cross_entropy --seed "$teacher_seed" "${teacher_stop[@]}"
  stage export_teacher export_model teacher_dec$L "$teacher" --started-from "random initialisation"
  teacher_cache_for teacher "$teacher" "${distil[@]}"
  local k
  for k in "${depths[@]}"; do  # baseline: the teacher cut to k decoder layers, no training
    export_later pruned_dec$k pruned_dec$k "$teacher" --decoder-layers "$k" --no-training \
      --started-from "teacher_dec$L cut to $k decoder layers"
  done
}
# the scratch baselines: k decoder layers trained with cross-entropy only, from random initialisation,
# for the students' number of updates and schedule (same budget) or the teacher's (same compute)
scratch() {  # scratch BUDGET SEED K
  local name=scratch_${1}_budget_dec$3_s$2 updates=$teacher_budget schedule=()
  if [ "$1" = same ]; then updates=$student_max_update schedule=("${student_schedule[@]}"); fi
  stage "$name" train "$name" "$bin" "$updates" "${schedule[@]}" --decoder-layers "$3" --criterion label_smoothed_cross_entropy --seed "$2"
  export_later "export_$name" "$name" "$out/models/$name/checkpoint_best.pt" --started-from "random initialisation"
}
# per seed: one L-layer model trained from scratch for the teacher's budget; its top layer teaches exits
online_seed() {
  local s=$1 k
  stage online_s$s train online_s$s "$bin" "$teacher_budget" --decoder-layers "$L" --criterion self_distill \
    --student-exits "$student_depths" "${kd[@]}" --seed "$s"
  for k in "${depths[@]}"; do
    export_later export_online_dec${k}_s$s online_dec${k}_s$s "$out/models/online_s$s/checkpoint_best.pt" \
      --decoder-layers "$k" --started-from "random initialisation (exit $k of one $L-layer model)"
  done
}
# per seed, where the table's online_gradual is yes: the seed research's gradual schedule in one model.
# One L-layer model is walked through the schedule's pairs (L,k1), (k1,k2), …: in each stage exit
# k_{i-1} teaches exit k_i (--teacher-exit, --student-exits) and the layers above k_{i-1} rest; training
# continues in the same model. The stages share the teacher's budget evenly, so the last stage's
# budget is the online model's: the first on the teacher's schedule from random initialisation, each
# later one on the students' schedule from the stage before.
online_gradual_seed() {
  local s=$1 i k up name prev="" prev_name="" from=() sched=() earlier=()
  for (( i = 1; i < ${#schedule[@]}; i++ )); do
    k=${schedule[i]} up=${schedule[i-1]} name=online_gradual_dec${k}_s$s
    if [ "$i" -gt 1 ]; then
      from=(--finetune-from-model "$out/models/$prev/checkpoint_best.pt") sched=("${student_schedule[@]}")
      earlier=(--earlier-training "$out/models/$prev.pt")
    fi
    stage "$name" train "$name" "$bin" "${stage_budgets[i-1]}" "${sched[@]}" "${from[@]}" --decoder-layers "$L" \
      --criterion self_distill --teacher-exit "$up" --student-exits "$k" "${kd[@]}" --seed "$s"
    export_later "export_$name" "$name" "$out/models/$name/checkpoint_best.pt" --decoder-layers "$k" \
      "${earlier[@]}" --started-from "$([ "$i" = 1 ] && echo "random initialisation" || echo "$prev_name"
        ) (exit $k of one $L-layer model, taught by exit $up)"
    prev=$name prev_name=online_gradual_dec$k
  done
}
# per seed, where the table's online_gradual_from_teacher is yes: the same walk, but of the trained
# teacher itself, each stage on the students' budget and schedule: the offline chain's budget exactly
# (the teacher's updates, then student_max_update per stage), exit k starting where the offline k-layer
# student does (the teacher's first k layers and its output layer)
online_gradual_teacher_seed() {
  local s=$1 i k up name from=$teacher from_name=teacher_dec$L
  for (( i = 1; i < ${#schedule[@]}; i++ )); do
    k=${schedule[i]} up=${schedule[i-1]} name=online_gradual_from_teacher_dec${k}_s$s
    stage "$name" train "$name" "$bin" "$student_max_update" "${student_schedule[@]}" --finetune-from-model "$from" \
      --decoder-layers "$L" --criterion self_distill --teacher-exit "$up" --student-exits "$k" "${kd[@]}" --seed "$s"
    export_later "export_$name" "$name" "$out/models/$name/checkpoint_best.pt" --decoder-layers "$k" \
      --started-from "$from_name (exit $k of one $L-layer model, taught by exit $up)"
    from=$out/models/$name/checkpoint_best.pt from_name=online_gradual_from_teacher_dec$k
  done
}
# where the table's anydepth is yes (or --anydepth): one L-layer model with every decoder exit a student
# of the top (--student-exits all), the teacher's budget, the first seed; it is decoded at every exit
# from its training checkpoint, without exporting (fairseq-generate --exit-layer K, evaluate_anydepth)
anydepth_model() {
  stage anydepth_s$1 train anydepth_s$1 "$bin" "$teacher_budget" --decoder-layers "$L" --criterion self_distill \
    --student-exits all "${kd[@]}" --seed "$1"
}
evaluate_anydepth() {  # every exit K of the anydepth model: decoded with the plugin (--exit-layer K), scored
  local k jobs
  jobs=$(mktemp "$out/stages/eval_jobs.XXXXXX")
  for (( k = 1; k <= L; k++ )); do
    row_generate=(--user-dir "$root/fairseq_selfteach" --task self_distill_translation --exit-layer "$k")
    row_score=(--decoder-layers "$k" --started-from "random initialisation (exit $k of one $L-layer model, every exit trained)")
    evaluate_row "$jobs" "anydepth_s$teacher_seed/checkpoint_best" "anydepth_exit$k" anydepth "anydepth_exit${k}_s$teacher_seed"
  done
  row_generate=() row_score=()
  score_jobs "$jobs" || { rm -f "$jobs"; return 1; }
  rm -f "$jobs"
}
scratch_same_seed() { local k; for k in "${depths[@]}"; do scratch same "$1" "$k"; done; }
scratch_teacher_seed() { local k; for k in "${depths[@]}"; do scratch teacher "$1" "$k"; done; }
scratch_seed() { scratch_same_seed "$1"; scratch_teacher_seed "$1"; }
students_seed() {  # per seed: students of the frozen teacher (offline, gradual, seqkd)
  local s=$1 k prev prev_cache name
  teacher_cache_for teacher "$teacher" "${distil[@]}"
  for k in "${depths[@]}"; do  # initialised from the teacher's first k layers
    name=offline_dec${k}_s$s
    stage "$name" train "$name" "$bin" "$student_max_update" "${student_schedule[@]}" --decoder-layers "$k" --seed "$s" \
      "${distil[@]}" --teacher-path "$teacher" "${cache_opts[@]}" "${kd[@]}"
    export_later "export_$name" "$name" "$out/models/$name/checkpoint_best.pt" \
      --started-from "teacher_dec$L, decoder layers 1-$k"
  done
  prev=$teacher prev_name=teacher_dec$L prev_cache=teacher
  for k in "${schedule[@]:1}"; do  # gradual: each stage's student is the next stage's teacher
    name=gradual_dec${k}_s$s
    teacher_cache_for "$prev_cache" "$prev" "${distil[@]}"
    stage "$name" train "$name" "$bin" "$student_max_update" "${student_schedule[@]}" --decoder-layers "$k" --seed "$s" \
      "${distil[@]}" --teacher-path "$prev" "${cache_opts[@]}" "${kd[@]}"
    export_later "export_$name" "$name" "$out/models/$name/checkpoint_best.pt" \
      --started-from "$prev_name, decoder layers 1-$k"
    prev="$out/models/$name/checkpoint_best.pt" prev_name=gradual_dec$k prev_cache=$name
  done
  if [ $seqkd = 1 ]; then
    stage seqkd_data seqkd_data
    for k in "${depths[@]}"; do  # cross-entropy on the teacher's outputs, from the teacher's first k layers
      name=seqkd_dec${k}_s$s
      stage "$name" train "$name" "$out/data/seqkd/bin" "$student_max_update" "${student_schedule[@]}" --decoder-layers "$k" --seed "$s" \
        --teacher-path "$teacher" --criterion label_smoothed_cross_entropy
      export_later "export_$name" "$name" "$out/models/$name/checkpoint_best.pt" \
        --started-from "teacher_dec$L, decoder layers 1-$k"
    done
  fi
}
# the branches of the lanes: each runs its per-seed work for every seed
students_and_walk_seed() {  # the teacher's students, then (where the table says so) the teacher walked
  students_seed "$1"
  [ "$online_gradual_from_teacher" != yes ] || online_gradual_teacher_seed "$1"
}
students_branch() { local s; for s in "${seed_values[@]}"; do students_and_walk_seed "$s"; done; }
online_branch() {
  local s
  for s in "${seed_values[@]}"; do
    online_seed "$s"
    [ "$online_gradual" != yes ] || online_gradual_seed "$s"
  done
  [ "$anydepth" != yes ] || anydepth_model "$teacher_seed"
}
scratch_same_branch() { local s; for s in "${seed_values[@]}"; do scratch_same_seed "$s"; done; }
scratch_teacher_branch() { local s; for s in "${seed_values[@]}"; do scratch_teacher_seed "$s"; done; }
# sequence-level KD data: the teacher's beam outputs on the training set become the targets
seqkd_data() {
  local tmp="$out/data/seqkd.tmp" gen="$out/generate/teacher_train.txt"
  rm -rf "$tmp" && mkdir -p "$tmp"
  fairseq-generate "$bin" --path "$out/models/teacher_dec$L.pt" --gen-subset train "${decode[@]}" \
    > "$gen.tmp" 2>&1
  mv "$gen.tmp" "$gen"
  python -m fairseq_selfteach.cli.seqkd_corpus --generate-log "$gen" --source "$out/data/prep/bpe/train.$src" \
    --out-prefix "$tmp/train" --src "$src" --tgt "$tgt"
  fairseq-preprocess --source-lang "$src" --target-lang "$tgt" --trainpref "$tmp/train" \
    --srcdict "$bin/dict.$src.txt" --tgtdict "$bin/dict.$tgt.txt" --destdir "$tmp/bin" --workers "$threads" \
    > "$out/logs/seqkd_preprocess.log" 2>&1
  for f in "$bin"/valid.* "$bin"/test.*; do cp "$f" "$tmp/bin/"; done
  rm -rf "$out/data/seqkd" && mv "$tmp" "$out/data/seqkd"
}
# the sweep: the first offline student (first depth, first seed) once per point of the grid, each
# scored by sacreBLEU on the valid set (ref/valid.TGT); the best point's options go to every student
sweep_point() {  # sweep_point N: the grid's N-th point
  local line words name k=${depths[0]}
  line=$(helper sweep-grid "$sweep_grid" | sed -n "${1}p")
  IFS=$'\t' read -r -a words <<< "$line"
  name=sweep_${words[0]}
  teacher_cache_for teacher "$teacher" "${distil[@]}"
  stage "$name" train "$name" "$bin" "$student_max_update" "${student_schedule[@]}" --decoder-layers "$k" \
    --seed "$teacher_seed" "${distil[@]}" --teacher-path "$teacher" "${cache_opts[@]}" "${kd[@]}" "${words[@]:1}"
  stage "export_$name" export_model "$name" "$out/models/$name/checkpoint_best.pt" \
    --started-from "teacher_dec$L, decoder layers 1-$k"
  stage "valid_$name" score_valid "$name"
}
score_valid() {  # score_valid MODEL: decode the valid set, sacreBLEU against ref/valid.TGT → sweep/MODEL.json
  local gen="$out/generate/$1.valid.txt"
  (cd / && fairseq-generate "$bin" --path "$out/models/$1.pt" --gen-subset valid --remove-bpe "${decode[@]}") \
    > "$gen.tmp" 2>&1 || { tail -n 20 "$gen.tmp" >&2; return 1; }
  mv "$gen.tmp" "$gen"
  python -m fairseq_selfteach.cli.score_translation --generate-log "$gen" \
    --tok-ref "$out/data/prep/tok/valid.$tgt" --raw-ref "$out/data/prep/ref/valid.$tgt" --lang "$tgt" \
    --checkpoint "$out/models/$1.pt" --name "$1" --method offline --out "$out/sweep/$1.json"
}

forget_exports  # the trainings queue their exports (export_later); export_queued runs them
if [ "$teacher_patience" = - ] && [ $sweep = 0 ]; then
  # two lanes: the teacher, its students, the same-budget scratch baselines | the online models and the
  # teacher-budget scratch baselines (they need no teacher); with one lane, all five in this order
  plan_online_gradual
  run_in_lanes "$parallel_jobs" "$threads" run_each teacher_branch students_branch scratch_same_branch \
    online_branch scratch_teacher_branch
else
  teacher_branch  # alone, every core: the others need its budget (patience) or the sweep's pick
  if [ "$teacher_patience" != - ]; then
    teacher_budget=$(helper trained-updates "$out/models/teacher/checkpoint_last.pt") || exit 2
    echo "iwslt14.sh: the teacher stopped after $teacher_budget updates: the online models and the" \
      "teacher-budget scratch baselines get $teacher_budget"
  fi
  plan_online_gradual
  if [ $sweep = 1 ]; then
    run_sweep sacrebleu "offline_dec${depths[0]}, seed $teacher_seed, scored by sacreBLEU on valid"
  fi
  # every seed's work is independent now: the lanes take the next item as they come free
  items=()
  for s in "${seed_values[@]}"; do
    items+=("online_seed $s" "students_seed $s" "scratch_seed $s")
    [ "$online_gradual" != yes ] || items+=("online_gradual_seed $s")
    [ "$online_gradual_from_teacher" != yes ] || items+=("online_gradual_teacher_seed $s")
  done
  [ "$anydepth" != yes ] || items+=("anydepth_model $teacher_seed")
  run_queue "$parallel_jobs" "$threads" "${items[@]}"
fi
export_queued
rows=("teacher_dec$L:teacher_dec$L:teacher")
for k in "${depths[@]}"; do rows+=("pruned_dec$k:pruned_dec$k:pruned"); done
for s in "${seed_values[@]}"; do
  for k in "${depths[@]}"; do
    for m in offline online; do rows+=("${m}_dec${k}_s$s:${m}_dec$k:$m"); done
    for b in same teacher; do rows+=("scratch_${b}_budget_dec${k}_s$s:scratch_${b}_budget_dec$k:scratch-$b-budget"); done
    if [ $seqkd = 1 ]; then rows+=("seqkd_dec${k}_s$s:seqkd_dec$k:seqkd"); fi
  done
  for k in "${schedule[@]:1}"; do
    rows+=("gradual_dec${k}_s$s:gradual_dec$k:gradual")
    [ "$online_gradual" != yes ] || rows+=("online_gradual_dec${k}_s$s:online_gradual_dec$k:online-gradual")
    [ "$online_gradual_from_teacher" != yes ] ||
      rows+=("online_gradual_from_teacher_dec${k}_s$s:online_gradual_from_teacher_dec$k:online-gradual")
  done
done
run_in_lanes "$parallel_jobs" "$threads" evaluate_all "${rows[@]}"
# the anydepth exits after the plain decodings: their process loads the plugin (generate_jobs.py)
[ "$anydepth" != yes ] || stage eval_anydepth_s$teacher_seed evaluate_anydepth
report_sweep=()
[ $sweep = 0 ] || report_sweep=(--sweep "$out/sweep.json")
echo "iwslt14.sh: quality floor $quality_floor: the report names the shallowest student or exit whose valid" \
  "sacreBLEU is at least $quality_floor × the teacher's"
python -m selfteach_pipeline.report --results "$out/results" --out "$out/results.md" \
  --plot "$out/bleu_vs_params.png" --title "$setting: $src→$tgt ($corpus)" --quality-floor "$quality_floor" \
  "${report_sweep[@]}"
echo "iwslt14.sh: table $out/results.md, results.json, plot $out/bleu_vs_params.png"
