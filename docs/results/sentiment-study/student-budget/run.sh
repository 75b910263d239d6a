#!/usr/bin/env bash
# #10 side experiment: does a larger student budget bring sentiment-study's 3-layer student to 99 % of
# its 6-layer teacher? The study's teacher is fine-tuned again as scripts/glue.sh sentiment-study does it
# (same command, seed and data: CPU training is deterministic, so it is the same teacher); then, for each
# budget of EPOCHS (student epochs) and each seed, the study's gradual chain 6→4→3 with that many epochs
# per stage, and the first 3 pretrained layers fine-tuned with cross-entropy for as many (the same-budget
# truncated baseline), on the study's student schedule (lr 5e-5, 10 % warm-up, linear decay over the
# stage) and the study's sweep pick (α 0.5, T 1; not swept again). Every model is scored on dev and
# (the teacher and the students) on heldout; the budget is chosen on heldout only (compare.py).
#
#   bash docs/results/sentiment-study/student-budget/run.sh [OUT]   (default runs/sentiment-study-budget)
# EPOCHS and SEEDS (environment) override "2 4" and "1 2 3"; re-running skips what is done.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
script=student-budget/run.sh table="$root/scripts/glue_settings.tsv" setting=sentiment-study
out=$(realpath -m "${1:-$root/runs/sentiment-study-budget}")
bash "$root/scripts/glue.sh" sentiment-study --only-data --out "$out"
source "$root/scripts/pipeline_lib.sh"
use_project_env  # first: the helper reads the table with the package's reader
load_settings
start_run "$out"
bin="$out/data/bin" pretrained="$out/models/pretrained" teacher="$out/models/teacher/checkpoint_best.pt"
L=6 device=(--cpu)
# as scripts/glue.sh builds them for sentiment-study
n_train=$(helper json-get --int "$bin/meta.json" splits.train.examples) || exit 2
teacher_updates=$(helper updates "$n_train" "$batch_size" "$epochs") || exit 2
teacher_warmup=$(helper warmup "$warmup_ratio" "$teacher_updates") || exit 2
common=(--user-dir "$root/fairseq_selfteach" --arch bert_from_config --bert-config "$pretrained/config.json"
  --pooling "$pooling" --optimizer adam --adam-betas '(0.9,0.999)' --adam-eps 1e-6 --weight-decay "$weight_decay"
  --clip-norm 0.0 --lr-scheduler polynomial_decay --batch-size "$batch_size" --required-batch-size-multiple 1
  --no-epoch-checkpoints --log-format simple --log-interval 20 --seed 1 --num-workers 0
  --best-checkpoint-metric glue_score --maximize-best-checkpoint-metric "${device[@]}" --valid-subset heldout)
finetune=(--task glue --finetune-from-model "$pretrained/model.pt" --lr "$lr"
  --warmup-updates "$teacher_warmup" --total-num-update "$teacher_updates")
kd=(--criterion sentence_prediction_self_distill --kd-alpha 0.5 --kd-temperature 1)  # the study's sweep pick
read -r -a budgets <<< "${EPOCHS:-2 4}"
read -r -a seeds <<< "${SEEDS:-1 2 3}"
echo "$script: student budgets of ${budgets[*]} epochs per stage; seeds ${seeds[*]}; α 0.5, T 1; lr $student_lr"
stage teacher train teacher "$bin" "$teacher_updates" "${finetune[@]}" --encoder-layers "$L" \
  --criterion sentence_prediction --seed 1 --patience "$teacher_patience"
stage export_teacher export_model teacher_enc$L "$teacher" --started-from "the pretrained MiniLM, layers 1-$L"
schedule_of() {  # schedule_of EPOCHS: the array `sched` (the students' schedule over that many epochs) and $updates
  updates=$(helper updates "$n_train" "$batch_size" "$1") || exit 2
  sched=(--lr "$student_lr" --warmup-updates "$(helper warmup "$warmup_ratio" "$updates")" --total-num-update "$updates")
}
chain() {  # chain E:SEED: the gradual chain 6→4→3, E epochs per stage
  local e=${1%:*} s=${1#*:} prev=$teacher prev_name=teacher_enc$L k name updates sched
  schedule_of "$e"
  for k in 4 3; do
    name=gradual_e${e}_enc${k}_s$s
    stage "$name" train "$name" "$bin" "$updates" --task self_distill_glue "${sched[@]}" --teacher-path "$prev" \
      --encoder-layers "$k" "${kd[@]}" --seed "$s"
    stage "export_$name" export_model "$name" "$out/models/$name/checkpoint_best.pt" --started-from "$prev_name, layers 1-$k"
    prev=$out/models/$name/checkpoint_best.pt prev_name=gradual_e${e}_enc$k
  done
}
truncated() {  # truncated E:SEED: the first 3 pretrained layers, cross-entropy only, E epochs
  local e=${1%:*} s=${1#*:} name updates sched
  schedule_of "$e"
  name=truncated_e${e}_enc3_s$s
  stage "$name" train "$name" "$bin" "$updates" --task glue --finetune-from-model "$pretrained/model.pt" "${sched[@]}" \
    --encoder-layers 3 --criterion sentence_prediction --seed "$s"
  stage "export_$name" export_model "$name" "$out/models/$name/checkpoint_best.pt" --started-from "the pretrained MiniLM, layers 1-3"
}
items=()
for e in "${budgets[@]}"; do for s in "${seeds[@]}"; do items+=("chain $e:$s" "truncated $e:$s"); done; done
threads=$(( $(nproc) / parallel_jobs )); [ "$threads" -ge 1 ] || threads=1
run_queue "$parallel_jobs" "$threads" "${items[@]}"
evaluate_row() {  # as glue.sh's: dev for every row, heldout too for the teacher and the students
  local valid=()
  case $4 in teacher|gradual) valid=(--valid-subset heldout) ;; esac
  printf '%s\n' --path "$out/models/$2.pt" --subset valid --name "$3" --method "$4" --dataset sentiment \
    --json "$out/results/$5.valid.json" "${valid[@]}" | paste -sd '\t' >> "$1"
}
score_jobs() { python -m fairseq_selfteach.cli.evaluate_glue --data "$bin" "${device[@]}" --jobs "$1"; }
rows=("teacher_enc$L:teacher_enc$L:teacher")
for s in "${seeds[@]}"; do
  for e in "${budgets[@]}"; do
    for k in 4 3; do rows+=("gradual_e${e}_enc${k}_s$s:gradual_e${e}_enc$k:gradual"); done
    rows+=("truncated_e${e}_enc3_s$s:truncated_same_budget_e${e}_enc3:truncated-same-budget")
  done
done
run_in_lanes 2 1 evaluate_all "${rows[@]}"
python -m selfteach_pipeline.report --results "$out/results" --out "$out/results.md" \
  --plot "$out/metric_vs_depth.png" --title "sentiment-study: the student budget (gradual 6→4→3)" --quality-floor 0.97
python "$root/docs/results/sentiment-study/student-budget/compare.py" "$out" | tee "$out/compare.json"
echo "$script: table $out/results.md"
