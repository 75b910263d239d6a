#!/usr/bin/env bash
# One translation pipeline per setting of scripts/translation_settings.tsv:
#   data → teacher → baselines (pruned teacher, scratch student) → offline students → online exits
#   → gradual schedule → [sequence-level KD] → export → fairseq-generate (beam, every test sentence)
#   → sacreBLEU + tokenised BLEU, parameters, speed → results.md + bleu_vs_params.png
#
# Usage: bash scripts/iwslt14.sh SETTING [--out DIR] [--archive PATH] [--url URL] [--seqkd] [--cpu]
#                                        [--debs DIR] [--only-data]
#   SETTING   de | ar | fa | es | he (IWSLT14 X→en), bible | bible-full | bible-ci (offline Es→En Bible)
#   --out     run folder (default runs/iwslt14-SETTING)
#   --archive a local IWSLT14 release archive ({src}-en.tgz) instead of downloading it
#   --url     download the archive from this URL (a mirror); IWSLT14_MIRROR works too
#   --seqkd   also train sequence-level KD students (the teacher decodes the training set)
#   --cpu     train and decode on CPU even where CUDA is available
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
archive="" url="" debs="" seqkd=0
script_option() {  # this script's own options (parse_options has --out, --cpu, --only-data, --help)
  case $1 in
    --archive) archive=${2-}; took=2 ;;
    --url) url=${2-}; took=2 ;;
    --debs) debs=${2-}; took=2 ;;
    --seqkd) seqkd=1; took=1 ;;
  esac
}
parse_options "$@"
load_settings
use_project_env
start_run "$root/runs/iwslt14-$setting" generate
user_dir="$root/fairseq_selfteach"
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
bin="$out/data/prep/bin"
if [ $only_data = 1 ]; then echo "iwslt14.sh: data ready in $out/data/prep"; exit 0; fi

# ---- training --------------------------------------------------------------------------------
common=(--arch "$arch" --share-decoder-input-output-embed --encoder-layers "$encoder_layers"
  --encoder-embed-dim "$embed_dim" --decoder-embed-dim "$embed_dim" --encoder-ffn-embed-dim "$ffn_dim"
  --decoder-ffn-embed-dim "$ffn_dim" --encoder-attention-heads "$heads" --decoder-attention-heads "$heads"
  --optimizer adam --adam-betas '(0.9,0.98)' --clip-norm 0.0 --lr "$lr" --lr-scheduler inverse_sqrt
  --warmup-updates "$warmup_updates" --dropout "$dropout" --weight-decay "$weight_decay"
  --label-smoothing "$label_smoothing" --max-tokens "$max_tokens" --no-epoch-checkpoints
  --log-format simple --log-interval 50 --seed 1 --required-batch-size-multiple 1 --num-workers 0
  --user-dir "$user_dir" "${device[@]}")
kd=(--kd-alpha "$kd_alpha" --kd-temperature "$kd_temperature")
# hypotheses longer than 1.5 × source + 10 tokens are cut (training pairs have a length ratio ≤ 1.5):
# fairseq's default of 200 extra tokens only lets a weak model's repetitions run on
decode=(--beam "$beam" --batch-size "$generate_batch_size" --max-len-a 1.5 --max-len-b 10
  --required-batch-size-multiple 1 "${device[@]}")

L=$teacher_decoder_layers
teacher="$out/models/teacher/checkpoint_best.pt"
IFS=, read -r -a depths <<< "$student_depths"
IFS=, read -r -a schedule <<< "$gradual_schedule"
if [ "${schedule[0]}" != "$L" ]; then
  echo "iwslt14.sh: gradual_schedule $gradual_schedule must start at the teacher's $L decoder layers ($table)" >&2
  exit 2
fi

# Independent branches run `parallel_jobs` at a time (settings table), each with its share of the
# cores: on 2 CPU cores two 1-thread trainings get through more updates than one 2-thread training.
threads=$(( $(nproc) / parallel_jobs )); [ "$threads" -ge 1 ] || threads=1

teacher_branch() {
  stage teacher train teacher "$bin" "$teacher_max_update" --decoder-layers "$L" \
    --criterion label_smoothed_cross_entropy
  stage export_teacher export_model teacher_dec$L "$teacher"
  local k
  for k in "${depths[@]}"; do  # baseline: the teacher cut to k decoder layers, no training
    stage pruned_dec$k export_model pruned_dec$k "$teacher" --decoder-layers "$k"
  done
}
scratch_branch() {  # baseline: a k-layer model trained with cross-entropy only, as long as the teacher
  local k
  for k in "${depths[@]}"; do
    stage scratch_dec$k train scratch_dec$k "$bin" "$teacher_max_update" --decoder-layers "$k" \
      --criterion label_smoothed_cross_entropy
    stage export_scratch_dec$k export_model scratch_dec$k "$out/models/scratch_dec$k/checkpoint_best.pt"
  done
}
online_branch() {  # one L-layer model trained from scratch; its top layer teaches exits at the depths
  stage online train online "$bin" "$teacher_max_update" --decoder-layers "$L" --criterion self_distill \
    --student-exits "$student_depths" "${kd[@]}"
  local k
  for k in "${depths[@]}"; do
    stage export_online_dec$k export_model online_dec$k "$out/models/online/checkpoint_best.pt" \
      --decoder-layers "$k"
  done
}
students_branch() {  # students of the frozen teacher: offline, gradual, sequence-level KD
  local k prev=$teacher
  for k in "${depths[@]}"; do  # initialised from the teacher's first k layers
    stage offline_dec$k train offline_dec$k "$bin" "$student_max_update" --decoder-layers "$k" \
      --task self_distill_translation --teacher-path "$teacher" --criterion self_distill "${kd[@]}"
    stage export_offline_dec$k export_model offline_dec$k "$out/models/offline_dec$k/checkpoint_best.pt"
  done
  for k in "${schedule[@]:1}"; do  # gradual: each stage's student is the next stage's teacher
    stage gradual_dec$k train gradual_dec$k "$bin" "$student_max_update" --decoder-layers "$k" \
      --task self_distill_translation --teacher-path "$prev" --criterion self_distill "${kd[@]}"
    stage export_gradual_dec$k export_model gradual_dec$k "$out/models/gradual_dec$k/checkpoint_best.pt"
    prev="$out/models/gradual_dec$k/checkpoint_best.pt"
  done
  if [ $seqkd = 1 ]; then
    stage seqkd_data seqkd_data
    for k in "${depths[@]}"; do  # cross-entropy on the teacher's outputs, from the teacher's first k layers
      stage seqkd_dec$k train seqkd_dec$k "$out/data/seqkd/bin" "$student_max_update" --decoder-layers "$k" \
        --task self_distill_translation --teacher-path "$teacher" --criterion label_smoothed_cross_entropy
      stage export_seqkd_dec$k export_model seqkd_dec$k "$out/models/seqkd_dec$k/checkpoint_best.pt"
    done
  fi
}
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
# decode and score every exported model with plain fairseq (no --user-dir)
evaluate() {  # evaluate MODEL NAME METHOD (evaluate_all's rows MODEL:NAME:METHOD; here MODEL = NAME)
  local model=$1 name=$2 method=$3 gen="$out/generate/$2.txt"
  (cd / && fairseq-generate "$bin" --path "$out/models/$model.pt" --remove-bpe "${decode[@]}") \
    > "$gen.tmp" 2>&1 || { tail -n 20 "$gen.tmp" >&2; return 1; }
  mv "$gen.tmp" "$gen"
  python -m fairseq_selfteach.cli.score_translation --generate-log "$gen" \
    --tok-ref "$out/data/prep/tok/test.$tgt" --raw-ref "$out/data/prep/ref/test.$tgt" --lang "$tgt" \
    --checkpoint "$out/models/$model.pt" --name "$name" --method "$method" --out "$out/results/$name.json"
}

run_in_lanes "$parallel_jobs" "$threads" run_each teacher_branch scratch_branch
run_in_lanes "$parallel_jobs" "$threads" run_each online_branch students_branch
rows=("teacher_dec$L:teacher_dec$L:teacher")
for k in "${depths[@]}"; do
  for m in pruned scratch offline online; do rows+=("${m}_dec$k:${m}_dec$k:$m"); done
  if [ $seqkd = 1 ]; then rows+=("seqkd_dec$k:seqkd_dec$k:seqkd"); fi
done
for k in "${schedule[@]:1}"; do rows+=("gradual_dec$k:gradual_dec$k:gradual"); done
run_in_lanes "$parallel_jobs" "$threads" evaluate_all "${rows[@]}"
python -m fairseq_selfteach.cli.report --results "$out/results" --out "$out/results.md" \
  --plot "$out/bleu_vs_params.png" --title "$setting: $src→$tgt ($corpus)"
echo "iwslt14.sh: table $out/results.md, plot $out/bleu_vs_params.png"
