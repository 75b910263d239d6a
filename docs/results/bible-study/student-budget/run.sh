#!/usr/bin/env bash
# #10 side experiment: does a larger student budget bring bible-study's half-depth student to 97 % of
# its teacher? The study's teacher is trained again as scripts/iwslt14.sh bible-study trains it (same
# command, seed and data: CPU training is deterministic, so it is the same teacher); then, for each
# budget B of BUDGETS and each seed, the study's gradual chain 4→3→2 with B updates per stage and the
# 2-layer scratch model with B updates (the same-budget baseline), at the study's student schedule and
# the study's sweep pick (α 0.5, T 1; not swept again). The 2-layer scratch model with the teacher's
# budget is trained too (it reproduces the study's). Every model is decoded with plain fairseq-generate
# on test and (the teacher and the students) on valid; the budget is chosen on valid only (compare.py).
#
#   bash docs/results/bible-study/student-budget/run.sh [OUT]   (default runs/bible-study-budget)
# BUDGETS and SEEDS (environment) override "200 400" and "1 2 3"; re-running skips what is done.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
script=student-budget/run.sh table="$root/scripts/translation_settings.tsv" setting=bible-study
out=$(realpath -m "${1:-$root/runs/bible-study-budget}")
bash "$root/scripts/iwslt14.sh" bible-study --only-data --out "$out"
source "$root/scripts/pipeline_lib.sh"
source "$root/scripts/translation_lib.sh"  # as scripts/iwslt14.sh: its options, decoding and scoring
use_project_env  # first: the helper reads the table with the package's reader
load_settings
start_run "$out" generate
prep="$out/data/prep" bin="$out/data/prep/bin"
device=(--cpu) distributed=()
translation_options  # the pipeline's training and decoding options (scripts/translation_lib.sh)
L=$teacher_decoder_layers teacher="$out/models/teacher/checkpoint_best.pt"
kd=(--kd-alpha 0.5 --kd-temperature 1)  # the study's sweep pick (docs/results/bible-study/students-200/sweep.md)
student_schedule=(--lr "$student_lr" --warmup-updates "$student_warmup_updates")
read -r -a budgets <<< "${BUDGETS:-200 400}"
read -r -a seeds <<< "${SEEDS:-1 2 3}"
echo "$script: budgets ${budgets[*]} updates per student stage; seeds ${seeds[*]}; α 0.5, T 1;" \
  "lr $student_lr, $student_warmup_updates warm-up; data $bin"
# the teacher: as iwslt14.sh's teacher_branch (alone, every core, patience)
stage teacher train teacher "$bin" "$teacher_max_update" --decoder-layers "$L" \
  --criterion label_smoothed_cross_entropy --seed 1 --patience "$teacher_patience"
stage export_teacher export_model teacher_dec$L "$teacher" --started-from "random initialisation"
teacher_budget=$(helper trained-updates "$out/models/teacher/checkpoint_last.pt") || exit 2
echo "$script: the teacher stopped after $teacher_budget updates"
chain() {  # chain B:SEED: the gradual chain 4→3→2, B updates per stage
  local b=${1%:*} s=${1#*:} prev=$teacher prev_name=teacher_dec$L k name
  for k in 3 2; do
    name=gradual_u${b}_dec${k}_s$s
    stage "$name" train "$name" "$bin" "$b" "${student_schedule[@]}" --decoder-layers "$k" --seed "$s" \
      --criterion self_distill --teacher-path "$prev" "${kd[@]}"
    stage "export_$name" export_model "$name" "$out/models/$name/checkpoint_best.pt" \
      --started-from "$prev_name, decoder layers 1-$k"
    prev=$out/models/$name/checkpoint_best.pt prev_name=gradual_u${b}_dec$k
  done
}
scratch() {  # scratch B:SEED: 2 decoder layers, cross-entropy only, from random initialisation
  local b=${1%:*} s=${1#*:} name schedule=()
  name=scratch_u${b}_dec2_s$s
  [ "$b" = "$teacher_budget" ] || schedule=("${student_schedule[@]}")  # the teacher-budget one: its schedule
  stage "$name" train "$name" "$bin" "$b" "${schedule[@]}" --decoder-layers 2 --seed "$s" \
    --criterion label_smoothed_cross_entropy
  stage "export_$name" export_model "$name" "$out/models/$name/checkpoint_best.pt" --started-from "random initialisation"
}
items=()
for b in "${budgets[@]}"; do for s in "${seeds[@]}"; do items+=("chain $b:$s" "scratch $b:$s"); done; done
for s in "${seeds[@]}"; do items+=("scratch $teacher_budget:$s"); done
threads=$(( $(nproc) / parallel_jobs )); [ "$threads" -ge 1 ] || threads=1
run_queue "$parallel_jobs" "$threads" "${items[@]}"
rows=("teacher_dec$L:teacher_dec$L:teacher")
for s in "${seeds[@]}"; do
  for b in "${budgets[@]}"; do
    for k in 3 2; do rows+=("gradual_u${b}_dec${k}_s$s:gradual_u${b}_dec$k:gradual"); done
    rows+=("scratch_u${b}_dec2_s$s:scratch_same_budget_u${b}_dec2:scratch-same-budget")
  done
  rows+=("scratch_u${teacher_budget}_dec2_s$s:scratch_teacher_budget_dec2:scratch-teacher-budget")
done
run_in_lanes "$parallel_jobs" "$threads" evaluate_all "${rows[@]}"
python -m selfteach_pipeline.report --results "$out/results" --out "$out/results.md" \
  --plot "$out/bleu_vs_params.png" --title "bible-study: the student budget (gradual 4→3→2)" --quality-floor 0.97
python "$root/docs/results/bible-study/student-budget/compare.py" "$out" | tee "$out/compare.json"
echo "$script: table $out/results.md"
