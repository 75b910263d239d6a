#!/usr/bin/env bash
# #11 side experiment: sentiment-study's online_enc3 (online_s$SEED) with plain adam (reproduction) and
# with --optimizer adam_head_lr --head-lr-scale $SCALE; every other option as scripts/glue.sh builds it
# for online_s$SEED (the study's sweep pick α 0.5, T 1; the teacher's 320 updates and schedule)
#   bash scripts/glue.sh sentiment-study --only-data --out OUT && SCALE=10 bash docs/results/sentiment-study/head-lr/run.sh OUT
set -euo pipefail
out=$(realpath "${1:?usage: run.sh OUT (after scripts/glue.sh sentiment-study --only-data --out OUT)}") bin=$out/data/bin pre=$out/models/pretrained
cd "$(dirname "$0")/../../../.." && source .venv/bin/activate
run() {  # run NAME SEED OPTIMIZER...
  local name=$1 s=$2; shift 2
  [ -f $out/models/$name.pt ] && return 0
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 fairseq-train $bin --max-update 320 \
    --user-dir fairseq_selfteach --arch bert_from_config --bert-config $pre/config.json --pooling mean \
    "$@" --adam-betas '(0.9,0.999)' --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 0.0 \
    --lr-scheduler polynomial_decay --batch-size 32 --required-batch-size-multiple 1 \
    --no-epoch-checkpoints --log-format simple --log-interval 20 --seed 1 --num-workers 0 \
    --best-checkpoint-metric glue_score --maximize-best-checkpoint-metric --cpu --valid-subset heldout \
    --task glue --finetune-from-model $pre/model.pt --lr 5e-5 --warmup-updates 38 --total-num-update 384 \
    --encoder-layers 6 --criterion sentence_prediction_self_distill --kd-alpha 0.5 --kd-temperature 1 \
    --exit-heads all --student-exits 3 --seed $s --save-dir $out/models/$name > $out/logs/$name.train.log 2>&1
  OMP_NUM_THREADS=1 python -m fairseq_selfteach.cli.export_student --checkpoint $out/models/$name/checkpoint_best.pt \
    --out $out/models/$name.pt --encoder-layers 3 --started-from "the pretrained MiniLM, layers 1-6 (exit 3 of one model)"
}
SCALE=${SCALE:-10}
plain() { run online_s$1 $1 --optimizer adam; }
scaled() { run headlr${SCALE}_s$1 $1 --optimizer adam_head_lr --head-lr-scale $SCALE; }
(plain 1; scaled 1; plain 3) & (plain 2; scaled 2; scaled 3) &
wait
for s in 1 2 3; do
  for name in online headlr$SCALE; do
    [ -f $out/results/${name}_enc3_s$s.valid.json ] || python -m fairseq_selfteach.cli.evaluate_glue --data $bin \
      --path $out/models/${name}_s$s.pt --subset valid --name ${name}_enc3_s$s --method online --dataset sentiment \
      --json $out/results/${name}_enc3_s$s.valid.json --cpu
  done
done
python docs/results/sentiment-study/head-lr/compare.py $out $SCALE | tee $out/head-lr.json
