#!/usr/bin/env bash
# The exit curricula (issue #11) measured on the translation demo's data: for each curriculum (none,
# rotational, gradual) and seed, one model of the demo's shape (scripts/translation_settings.tsv,
# column bible: 3 encoder and 4 decoder layers) trained online from scratch with every layer below the
# top a student exit (--student-exits all), for the teacher's budget (teacher_max_update updates) and on
# the teacher's schedule; each exit exported and decoded with plain fairseq-generate, scored by sacreBLEU.
#
#   bash docs/results/exit-curriculum/run.sh RUN [OUT]
#     RUN  a finished `bash scripts/iwslt14.sh bible` run folder (its binarised data and references)
#     OUT  where the models and results go (default runs/exit-curriculum); re-running skips what is done
# CURRICULA and SEEDS (environment) override "none rotational gradual" and "1 2 3"; LAYER_DROPOUT, a list
# of --layer-dropout-max values (default "0": none), repeats each curriculum with each (rows *_ldP). The
# table has these rows only; compare them with RUN/results.md (its online exit trains exit 2 alone).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
script=exit-curriculum/run.sh table="$root/scripts/translation_settings.tsv" setting=bible
source "$root/scripts/pipeline_lib.sh"
source "$root/scripts/translation_lib.sh"  # as scripts/iwslt14.sh: its options, decoding and scoring
run=$(realpath "${1:?usage: run.sh RUN [OUT] (RUN: a finished scripts/iwslt14.sh bible run folder)}")
out=${2:-$root/runs/exit-curriculum}
use_project_env  # first: the helper reads the table with the package's reader
load_settings
start_run "$out" generate
prep="$run/data/prep" bin="$run/data/prep/bin"
[ -f "$bin/dict.$src.txt" ] || { echo "$script: $bin has no binarised data (run scripts/iwslt14.sh bible first)" >&2; exit 2; }
device=(--cpu)
translation_options  # the pipeline's training and decoding options (scripts/translation_lib.sh)
L=$teacher_decoder_layers
read -r -a curricula <<< "${CURRICULA:-none rotational gradual}"
read -r -a seeds <<< "${SEEDS:-1 2 3}"
read -r -a dropouts <<< "${LAYER_DROPOUT:-0}"
variants=()  # CURRICULUM or CURRICULUM_ldP
for c in "${curricula[@]}"; do
  for p in "${dropouts[@]}"; do variants+=("$c$([ "$p" = 0 ] || echo "_ld$p")"); done
done
echo "$script: $L-layer models, every exit trained, $teacher_max_update updates each (the teacher's budget);" \
  "curricula ${curricula[*]}; layer dropout ${dropouts[*]}; seeds ${seeds[*]}; data $bin"
one() {  # one VARIANT:SEED
  local v=${1%:*} s=${1#*:} name=exits_all_${1%:*}_s${1#*:} k c p=0
  c=${v%%_ld*}; [ "$c" = "$v" ] || p=${v#*_ld}
  stage "$name" train "$name" "$bin" "$teacher_max_update" --decoder-layers "$L" --seed "$s" \
    --task self_distill_translation --criterion self_distill --student-exits all --exit-curriculum "$c" \
    --layer-dropout-max "$p" --kd-alpha "$kd_alpha" --kd-temperature "$kd_temperature"
  for (( k = 1; k < L; k++ )); do
    stage "export_exits_all_${v}_dec${k}_s$s" export_model "exits_all_${v}_dec${k}_s$s" "$out/models/$name/checkpoint_best.pt" \
      --decoder-layers "$k" --started-from "random initialisation (exit $k of one $L-layer model, curriculum $c, layer dropout $p)"
  done
}
items=()
for v in "${variants[@]}"; do for s in "${seeds[@]}"; do items+=("one $v:$s"); done; done
threads=$(( $(nproc) / parallel_jobs )); [ "$threads" -ge 1 ] || threads=1
run_queue "$parallel_jobs" "$threads" "${items[@]}"
rows=()
for v in "${variants[@]}"; do
  for s in "${seeds[@]}"; do
    for (( k = 1; k < L; k++ )); do rows+=("exits_all_${v}_dec${k}_s$s:exits_all_${v}_dec$k:online"); done
  done
done
run_in_lanes 2 1 evaluate_all "${rows[@]}"
python -m selfteach_pipeline.report --results "$out/results" --out "$out/results.md" \
  --plot "$out/bleu_vs_params.png" --title "exit curricula on $setting's data, every exit of one $L-layer model"
echo "$script: table $out/results.md"
