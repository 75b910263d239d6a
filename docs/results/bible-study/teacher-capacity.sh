#!/usr/bin/env bash
# Issue #10: is a deeper or wider teacher clearly better than a 2-layer decoder trained from scratch on
# the bible-study data? Each model is trained as the study trains its teacher (bible-study's settings:
# lr 3e-3, 150 warm-up updates, label smoothing 0.1, 2,048 tokens per batch, until the valid loss has
# not improved for 3 epochs, at most 1,500 updates) and decoded on the valid set (beam 5, fairseq's
# BLEU of the BPE-removed text): the test set plays no part.
#
#   bash scripts/iwslt14.sh bible-study --only-data --out runs/teacher-capacity   # the study's data
#   bash docs/results/bible-study/teacher-capacity.sh runs/teacher-capacity [NAME ...]
#
# NAME is one of the shapes below (default: all), each trained with one thread, two at a time.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
out=$(realpath "${1:?usage: teacher-capacity.sh OUT [NAME ...] (OUT: a bible-study --only-data run folder)}")
shift
bin="$out/data/prep/bin"
[ -f "$bin/dict.es.txt" ] || { echo "teacher-capacity.sh: $bin has no binarised data" >&2; exit 2; }
declare -A shape=(  # NAME: decoder layers, width, FFN, dropout, extra options
  [dec2]="2 128 512 0.1"          # the study's 2-layer scratch model
  [dec4]="4 128 512 0.1"          # the study's teacher
  [dec6]="6 128 512 0.1"          # deeper
  [pre6]="6 128 512 0.1 --encoder-normalize-before --decoder-normalize-before"  # deeper, pre-norm
  [wide2]="2 256 1024 0.3"        # wider 2-layer (the student shape of a wider teacher)
  [wide4]="4 256 1024 0.3"        # wider teacher
  [wide2_lr1e-3]="2 256 1024 0.3 --lr 1e-3"   # the same at a third of the learning rate
  [wide4_lr1e-3]="4 256 1024 0.3 --lr 1e-3"
)
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(dec2 dec4 dec6 pre6 wide2 wide4 wide2_lr1e-3 wide4_lr1e-3)
source "$root/.venv/bin/activate"
one() {
  local name=$1 L d f p extra; read -r L d f p extra <<< "${shape[$name]}"
  echo "teacher-capacity.sh: $name: $L decoder layers, d=$d, FFN $f, dropout $p ${extra:-}"
  [ -f "$out/$name.valid.txt" ] && return 0
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 fairseq-train "$bin" --arch transformer_iwslt_de_en \
    --share-decoder-input-output-embed --encoder-layers 3 --decoder-layers "$L" --encoder-embed-dim "$d" \
    --decoder-embed-dim "$d" --encoder-ffn-embed-dim "$f" --decoder-ffn-embed-dim "$f" \
    --encoder-attention-heads 4 --decoder-attention-heads 4 --optimizer adam --adam-betas '(0.9,0.98)' \
    --clip-norm 0.0 --lr 3e-3 --lr-scheduler inverse_sqrt --warmup-updates 150 --dropout "$p" \
    --weight-decay 1e-4 --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --max-tokens 2048 \
    --no-epoch-checkpoints --log-format simple --log-interval 50 --seed 1 --required-batch-size-multiple 1 \
    --num-workers 0 --cpu --max-update 1500 --patience 3 --save-dir "$out/$name" ${extra:-} > "$out/$name.log" 2>&1
  # the training checkpoint needs the plugin's safe-loading allow-list (--user-dir)
  OMP_NUM_THREADS=1 fairseq-generate "$bin" --gen-subset valid --path "$out/$name/checkpoint_best.pt" --beam 5 \
    --batch-size 128 --max-len-a 1.5 --max-len-b 10 --remove-bpe --cpu --user-dir "$root/fairseq_selfteach" \
    > "$out/$name.valid.tmp" 2>&1
  mv "$out/$name.valid.tmp" "$out/$name.valid.txt"
}
for name in "${names[@]}"; do [ -n "${shape[$name]:-}" ] || { echo "teacher-capacity.sh: unknown $name" >&2; exit 2; }; done
for (( i = 0; i < ${#names[@]}; i += 2 )); do
  one "${names[i]}" & a=$!
  if [ $((i + 1)) -lt ${#names[@]} ]; then one "${names[i + 1]}" & b=$!; wait $b; fi
  wait $a
done
echo "| model | best valid loss | at update | updates trained | train s | valid BLEU |"
echo "|---|---|---|---|---|---|"
for name in "${names[@]}"; do
  best=$(grep "valid on 'valid'" "$out/$name.log" | sed -E 's/.*\| loss ([0-9.]+) .*num_updates ([0-9]+).*/\1 \2/' | sort -n | head -1)
  last=$(grep "valid on 'valid'" "$out/$name.log" | tail -1 | sed -E 's/.*num_updates ([0-9]+).*/\1/')
  secs=$(grep -o "done training in [0-9.]* seconds" "$out/$name.log" | grep -o "[0-9.]*" | head -1)
  score=$(grep -o "BLEU4 = [0-9.]*" "$out/$name.valid.txt" | grep -o "[0-9.]*$")
  echo "| $name | ${best% *} | ${best#* } | $last | ${secs:-–} | $score |"
done
