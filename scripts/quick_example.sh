#!/usr/bin/env bash
# The small end-to-end example (the main job until the IWSLT/Bible pipeline lands, issue #3):
# toy corpus -> fairseq-preprocess -> teacher -> offline and online self-teaching -> export ->
# fairseq-generate (plain fairseq for the exported students) -> sacreBLEU and parameter counts.
# Usage: bash scripts/quick_example.sh [OUT_DIR]   (default runs/quick_example; ~3 minutes on 2 cores)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup_env.sh"
export PATH="${VENV:-$root/.venv}/bin:$PATH"
out=$(realpath -m "${1:-$root/runs/quick_example}")
user_dir="$root/fairseq_selfteach"
mkdir -p "$out"
small=(--encoder-embed-dim 64 --decoder-embed-dim 64 --encoder-ffn-embed-dim 128 --decoder-ffn-embed-dim 128
       --encoder-attention-heads 2 --decoder-attention-heads 2 --share-decoder-input-output-embed)
optim=(--optimizer adam --adam-betas '(0.9,0.98)' --lr-scheduler inverse_sqrt --dropout 0.1 --label-smoothing 0.1
       --max-tokens 1024 --cpu --no-epoch-checkpoints --log-format simple --seed 1
       --required-batch-size-multiple 1 --user-dir "$user_dir")

[ -f "$out/bin/dict.src.txt" ] || {
  python "$root/preprocess/make_toy_corpus.py" "$out/raw"
  fairseq-preprocess --source-lang src --target-lang tgt --trainpref "$out/raw/train" \
    --validpref "$out/raw/valid" --testpref "$out/raw/test" --destdir "$out/bin.tmp" \
    --joined-dictionary --workers 2
  mv "$out/bin.tmp" "$out/bin"
}
echo "== teacher: 3 encoder + 4 decoder layers, label_smoothed_cross_entropy"
fairseq-train "$out/bin" --save-dir "$out/teacher" --arch transformer_iwslt_de_en --encoder-layers 3 \
  --decoder-layers 4 --criterion label_smoothed_cross_entropy --lr 3e-3 --warmup-updates 100 \
  --max-epoch 15 "${small[@]}" "${optim[@]}" > "$out/teacher.log" 2>&1
echo "== offline self-teaching: 2-layer decoder student initialised from the teacher's first 2 layers"
fairseq-train "$out/bin" --save-dir "$out/offline" --task self_distill_translation \
  --teacher-path "$out/teacher/checkpoint_best.pt" --arch transformer_iwslt_de_en --encoder-layers 3 \
  --decoder-layers 2 --criterion self_distill --kd-alpha 0.5 --kd-temperature 2 --lr 1e-3 \
  --warmup-updates 30 --max-epoch 5 "${small[@]}" "${optim[@]}" > "$out/offline.log" 2>&1
echo "== online self-teaching: one 4-layer decoder, exit 2 taught by the top layer"
fairseq-train "$out/bin" --save-dir "$out/online" --arch transformer_iwslt_de_en --encoder-layers 3 \
  --decoder-layers 4 --criterion self_distill --student-exits 2 --kd-alpha 0.5 --lr 3e-3 \
  --warmup-updates 100 --max-epoch 15 "${small[@]}" "${optim[@]}" > "$out/online.log" 2>&1
python -m fairseq_selfteach.export_student --checkpoint "$out/offline/checkpoint_best.pt" --out "$out/offline_student.pt"
python -m fairseq_selfteach.export_student --checkpoint "$out/online/checkpoint_best.pt" --out "$out/online_exit2.pt" --decoder-layers 2

printf '\n| model | decoder layers | parameters | sacreBLEU (test) |\n|---|---|---|---|\n' > "$out/results.md.tmp"
row() {  # name layers checkpoint [--user-dir ...]
  local name=$1 layers=$2 ckpt=$3; shift 3
  local bleu params
  bleu=$(cd / && fairseq-generate "$out/bin" --path "$ckpt" --beam 5 --batch-size 64 --scoring sacrebleu \
    --cpu --required-batch-size-multiple 1 "$@" 2>&1 | sed -n 's/.*BLEU = \([0-9.]*\).*/\1/p')
  params=$(python -m fairseq_selfteach.param_count "$ckpt" --json | python -c 'import json,sys; print(json.load(sys.stdin)["total"])')
  echo "| $name | $layers | $params | $bleu |" >> "$out/results.md.tmp"
}
row "teacher" 4 "$out/teacher/checkpoint_best.pt" --user-dir "$user_dir"
row "offline student (exported, plain fairseq)" 2 "$out/offline_student.pt"
row "online exit 2 (exported, plain fairseq)" 2 "$out/online_exit2.pt"
mv "$out/results.md.tmp" "$out/results.md"
cat "$out/results.md"
