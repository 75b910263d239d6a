#!/usr/bin/env bash
# #10 side experiment: does a transfer set bring sentiment-study's 3-layer student to 99 % of its 6-layer
# teacher? The study's data and teacher (its own command and seed: the same teacher, CPU training being
# deterministic); then TRANSFER (default 4000) movie-review snippets that the study's sample left out,
# without their labels, are labelled by the teacher (evaluate_glue --predictions) and appended to the
# students' training set (glue_binarize --transfer --transfer-labels; heldout, dev unchanged). For each
# seed: the gradual chain 6→4→3 distilled on that set, UPDATES (default 384) per stage, the budget the
# student-budget experiment picked on held-out; and its same-budget baseline, the first 3 pretrained
# layers fine-tuned with cross-entropy for as many updates on the gold training set. The study's
# schedule (lr 5e-5, 10 % warm-up, linear decay over the stage) and sweep pick (α 0.5, T 1).
#
#   bash docs/results/sentiment-study/transfer-set/run.sh [OUT]   (default runs/sentiment-study-transfer)
# TRANSFER, UPDATES and SEEDS (environment) override 4000, 384 and "1 2 3"; re-running skips what is done.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
script=transfer-set/run.sh table="$root/scripts/glue_settings.tsv" setting=sentiment-study
out=$(realpath -m "${1:-$root/runs/sentiment-study-transfer}")
bash "$root/scripts/glue.sh" sentiment-study --only-data --out "$out"
source "$root/scripts/pipeline_lib.sh"
use_project_env  # first: the helper reads the table with the package's reader
load_settings
start_run "$out"
bin="$out/data/bin" pretrained="$out/models/pretrained" teacher="$out/models/teacher/checkpoint_best.pt"
L=6 device=(--cpu) n_transfer=${TRANSFER:-4000} updates=${UPDATES:-384}
read -r -a seeds <<< "${SEEDS:-1 2 3}"
echo "$script: $n_transfer teacher-labelled snippets; $updates updates per stage; seeds ${seeds[*]}; α 0.5, T 1"
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
sched=(--lr "$student_lr" --warmup-updates "$(helper warmup "$warmup_ratio" "$updates")" --total-num-update "$updates")
stage teacher train teacher "$bin" "$teacher_updates" "${finetune[@]}" --encoder-layers "$L" \
  --criterion sentence_prediction --seed 1 --patience "$teacher_patience"
stage export_teacher export_model teacher_enc$L "$teacher" --started-from "the pretrained MiniLM, layers 1-$L"

# the transfer set: snippets the study's sample (max_examples, seed 1) left out, labelled by the teacher
snippets() {
  python "$root/preprocess/sentiment_snippets.py" --out "$out/data/transfer-src" --max-examples "$max_examples" \
    --dev-every "$dev_every" --sdist "$(ls "$out"/data/snippets/download/*.tar.gz)" --transfer "$n_transfer"
  cmp "$out/data/transfer-src/SENT/train.tsv" "$out/data/snippets/SENT/train.tsv"  # the study's own train and dev
  cmp "$out/data/transfer-src/SENT/dev.tsv" "$out/data/snippets/SENT/dev.tsv"
}
binarize_with() {  # binarize_with OUT [ARGS]: the study's binarisation, plus the transfer split
  python "$root/preprocess/glue_binarize.py" --task SST-2 --glue-dir "$out/data/snippets/SENT" --bert-dir "$pretrained" \
    --max-len "$max_len" --heldout-every "$heldout_every" --transfer "$out/data/transfer-src/SENT/transfer.tsv" \
    --out "$1" "${@:2}"
}
label() {
  python -m fairseq_selfteach.cli.evaluate_glue --data "$out/data/bin-unlabelled" --path "$out/models/teacher_enc$L.pt" \
    --subset transfer --predictions "$out/data/transfer_labels.tsv" "${device[@]}"
}
stage snippets snippets
stage binarize_unlabelled binarize_with "$out/data/bin-unlabelled"
stage label label
stage binarize_transfer binarize_with "$out/data/bin-transfer" --transfer-labels "$out/data/transfer_labels.tsv"

chain() {  # chain SEED: the gradual chain 6→4→3 on the transfer set
  local s=$1 prev=$teacher prev_name=teacher_enc$L k name
  for k in 4 3; do
    name=gradual_enc${k}_s$s
    stage "$name" train "$name" "$out/data/bin-transfer" "$updates" --task self_distill_glue "${sched[@]}" \
      --teacher-path "$prev" --encoder-layers "$k" "${kd[@]}" --seed "$s"
    stage "export_$name" export_model "$name" "$out/models/$name/checkpoint_best.pt" \
      --started-from "$prev_name, layers 1-$k (on the transfer set)"
    prev=$out/models/$name/checkpoint_best.pt prev_name=gradual_enc$k
  done
}
truncated() {  # truncated SEED: the first 3 pretrained layers, cross-entropy only, on the gold training set
  local s=$1 name=truncated_same_budget_enc3_s$1
  stage "$name" train "$name" "$bin" "$updates" --task glue --finetune-from-model "$pretrained/model.pt" "${sched[@]}" \
    --encoder-layers 3 --criterion sentence_prediction --seed "$s"
  stage "export_$name" export_model "$name" "$out/models/$name/checkpoint_best.pt" --started-from "the pretrained MiniLM, layers 1-3"
}
items=()
for s in "${seeds[@]}"; do items+=("chain $s" "truncated $s"); done
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
  for k in 4 3; do rows+=("gradual_enc${k}_s$s:gradual_enc$k:gradual"); done
  rows+=("truncated_same_budget_enc3_s$s:truncated_same_budget_enc3:truncated-same-budget")
done
run_in_lanes 2 1 evaluate_all "${rows[@]}"
python -m selfteach_pipeline.report --results "$out/results" --out "$out/results.md" \
  --plot "$out/metric_vs_depth.png" --title "sentiment-study: a teacher-labelled transfer set (gradual 6→4→3)" \
  --quality-floor 0.97
echo "$script: table $out/results.md"
