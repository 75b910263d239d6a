# The translation options, decoding and scoring of the recorded studies on translation runs
# (docs/results/exit-curriculum/run.sh, docs/results/bible-study/student-budget/run.sh), as the bash
# pipeline had them; the pipeline itself is Python now (selfteach_pipeline/translation_family.py).
# Sourced after scripts/pipeline_lib.sh's load_settings. The caller sets $root, $out, $bin
# (binarised data), $prep (the prepared data: tok/ and ref/ references), $tgt (from the settings) and the
# array `device`.

# translation_options: the arrays `common` (every fairseq-train's options, from the settings) and `decode`
# (the decoding's). Every training, the teacher's and the baselines' too, runs --task self_distill_translation:
# it is fairseq's translation task (without a teacher, the same run), but a training killed and run again
# ends as the uninterrupted one (fairseq_selfteach/core/exact_resume.py)
translation_options() {
  common=(--task self_distill_translation --arch "$arch" --share-decoder-input-output-embed --encoder-layers "$encoder_layers"
    --encoder-embed-dim "$embed_dim" --decoder-embed-dim "$embed_dim" --encoder-ffn-embed-dim "$ffn_dim"
    --decoder-ffn-embed-dim "$ffn_dim" --encoder-attention-heads "$heads" --decoder-attention-heads "$heads"
    --optimizer adam --adam-betas '(0.9,0.98)' --clip-norm 0.0 --lr "$lr" --lr-scheduler inverse_sqrt
    --warmup-updates "$warmup_updates" --dropout "$dropout" --weight-decay "$weight_decay"
    --label-smoothing "$label_smoothing" --max-tokens "$max_tokens" --no-epoch-checkpoints
    --log-format simple --log-interval 50 --seed 1 --required-batch-size-multiple 1 --num-workers 0
    --user-dir "$root/fairseq_selfteach" "${device[@]}" "${precision[@]}" "${distributed[@]}")
  # hypotheses longer than 1.5 × source + 10 tokens are cut (training pairs have a length ratio ≤ 1.5):
  # fairseq's default of 200 extra tokens only lets a weak model's repetitions run on
  # --num-workers 0: the pipelines decode many models in one process (generate_jobs.py), and shutting
  # down each run's data-loading worker waits about 5 s
  decode=(--beam "$beam" --batch-size "$generate_batch_size" --max-len-a 1.5 --max-len-b 10
    --required-batch-size-multiple 1 --num-workers 0 "${device[@]}")
}

# decode every exported model with plain fairseq (no --user-dir, no plugin), then score them all
# (evaluate_all): per lane one process decodes every row (scripts/generate_jobs.py: fairseq-generate's
# own main once per model) and one scores them. The teacher and the self-taught rows (the candidates of
# the report's depth pick, --quality-floor) are decoded on the valid set too; the baselines only on test.
# The caller's arrays row_generate and row_score, where set, are added to each row's decoding and scoring
# (the anydepth rows: the plugin's --exit-layer K).
evaluate_row() {  # evaluate_row JOBS MODEL NAME METHOD ROW: the row's decoding in JOBS.generate, its scoring in JOBS
  local jobs=$1 model=$2 name=$3 method=$4 gen="$out/generate/$5.txt" valid=()
  case $method in  # valid first: the first decoding of a process is slower (warm-up), and its speed is not used
    teacher|offline|online|gradual|online-gradual|seqkd|anydepth)
      printf '%s\n' --output "${gen%.txt}.valid.txt" --path "$out/models/$model.pt" --gen-subset valid \
        "${row_generate[@]}" | paste -sd '\t' >> "$jobs.generate"
      valid=(--valid-generate-log "${gen%.txt}.valid.txt") ;;
  esac
  printf '%s\n' --output "$gen" --path "$out/models/$model.pt" "${row_generate[@]}" | paste -sd '\t' >> "$jobs.generate"
  printf '%s\n' --generate-log "$gen" --checkpoint "$out/models/$model.pt" --name "$name" --method "$method" \
    --out "$out/results/$5.json" "${valid[@]}" "${row_score[@]}" | paste -sd '\t' >> "$jobs"
}
row_generate=() row_score=()
score_jobs() {  # score_jobs JOBS: generate/ROW.txt for every line of JOBS.generate, then results/ROW.json
  (cd / && python "$root/scripts/generate_jobs.py" "$bin" --remove-bpe "${decode[@]}" --jobs "$1.generate") ||
    { rm -f "$1.generate"; return 1; }
  rm -f "$1.generate"
  python -m fairseq_selfteach.cli.score_translation --tok-ref "$prep/tok/test.$tgt" \
    --raw-ref "$prep/ref/test.$tgt" --valid-tok-ref "$prep/tok/valid.$tgt" --valid-raw-ref "$prep/ref/valid.$tgt" \
    --lang "$tgt" --jobs "$1"
}
