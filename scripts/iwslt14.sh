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
# SELFTEACH_PYTHON_ENV=current uses the Python environment on PATH instead of the project's .venv.
# Re-running skips finished stages (markers in OUT/stages, written atomically after a stage succeeds);
# an interrupted training resumes from its checkpoint_last.pt (fairseq writes checkpoints atomically).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
table="$root/scripts/translation_settings.tsv"
usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
setting=$1; shift
out="" archive="" url="" debs="" seqkd=0 force_cpu=0 only_data=0
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --archive) archive=$2; shift 2 ;;
    --url) url=$2; shift 2 ;;
    --debs) debs=$2; shift 2 ;;
    --seqkd) seqkd=1; shift ;;
    --cpu) force_cpu=1; shift ;;
    --only-data) only_data=1; shift ;;
    -h|--help) usage ;;
    *) echo "iwslt14.sh: unknown option $1" >&2; usage ;;
  esac
done

script=iwslt14.sh
source "$root/scripts/pipeline_lib.sh"
eval "$(read_settings "$table" "$setting")"
use_project_env "$root"
out=$(realpath -m "${out:-$root/runs/iwslt14-$setting}")
user_dir="$root/fairseq_selfteach"
mkdir -p "$out/stages" "$out/logs" "$out/models" "$out/generate" "$out/results"
device=()
if [ $force_cpu = 1 ] || ! python -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  device=(--cpu)
fi

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

train() {  # train NAME DATA MAX_UPDATE ARGS...: fairseq-train into models/NAME (resumes checkpoint_last.pt)
  local name=$1 data=$2 updates=$3; shift 3
  run_training "$name" fairseq-train "$data" --max-update "$updates" "${common[@]}" "$@"
}
export_model() {  # export_model NAME CHECKPOINT [--decoder-layers K]: a plain fairseq checkpoint
  python -m fairseq_selfteach.cli.export_student --checkpoint "$2" --out "$out/models/$1.pt" "${@:3}"
}
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
pids=()
spawn() {  # spawn FUNCTION ARGS...: in the background when running branches in parallel
  if [ "$parallel_jobs" -gt 1 ]; then
    OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads "$@" & pids+=($!)
  else
    "$@"
  fi
}
join() {  # wait for every spawned branch; fail if any failed
  local rc=0 pid
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  pids=()
  return $rc
}

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
evaluate() {  # evaluate NAME METHOD
  local name=$1 method=$2 gen="$out/generate/$1.txt"
  (cd / && fairseq-generate "$bin" --path "$out/models/$name.pt" --remove-bpe "${decode[@]}") \
    > "$gen.tmp" 2>&1 || { tail -n 20 "$gen.tmp" >&2; return 1; }
  mv "$gen.tmp" "$gen"
  python -m fairseq_selfteach.cli.score_translation --generate-log "$gen" \
    --tok-ref "$out/data/prep/tok/test.$tgt" --raw-ref "$out/data/prep/ref/test.$tgt" --lang "$tgt" \
    --checkpoint "$out/models/$name.pt" --name "$name" --method "$method" --out "$out/results/$name.json"
}
evaluate_all() {  # evaluate_all NAME:METHOD...
  local row
  for row in "$@"; do stage eval_${row%%:*} evaluate "${row%%:*}" "${row#*:}"; done
}

spawn teacher_branch; spawn scratch_branch; join
spawn online_branch; spawn students_branch; join
rows=("teacher_dec$L:teacher")
for k in "${depths[@]}"; do
  rows+=("pruned_dec$k:pruned" "scratch_dec$k:scratch" "offline_dec$k:offline" "online_dec$k:online")
  if [ $seqkd = 1 ]; then rows+=("seqkd_dec$k:seqkd"); fi
done
for k in "${schedule[@]:1}"; do rows+=("gradual_dec$k:gradual"); done
half=$(( (${#rows[@]} + 1) / 2 ))
if [ "$parallel_jobs" -gt 1 ]; then
  spawn evaluate_all "${rows[@]:0:$half}"; spawn evaluate_all "${rows[@]:$half}"; join
else
  evaluate_all "${rows[@]}"
fi
python -m fairseq_selfteach.cli.report --results "$out/results" --out "$out/results.md" \
  --plot "$out/bleu_vs_params.png" --title "$setting: $src→$tgt ($corpus)"
echo "iwslt14.sh: table $out/results.md, plot $out/bleu_vs_params.png"
