"""Score one model's `fairseq-generate` output: detokenised sacreBLEU, tokenised BLEU, speed, parameters.

    python -m fairseq_selfteach.cli.score_translation --generate-log GEN.txt --tok-ref tok/test.en \
        --raw-ref ref/test.en --lang en --checkpoint MODEL.pt --name offline_dec2 --method offline \
        --decoder-layers 2 --out results/offline_dec2.json

The generate log must come from `fairseq-generate --remove-bpe` (no --tokenizer), so its H- lines are the
Moses-tokenised, lowercased hypotheses. Two BLEU scores are written, labelled:
  sacrebleu      hypotheses detokenised with sacremoses, scored by sacreBLEU against the raw
                 references, lowercased (the model outputs lowercase); its signature is recorded
  tok_bleu       BLEU on the tokenised, lowercased text (sacreBLEU with tokenize=none, i.e. what
                 multi-bleu.perl and fairseq's own BLEU4 print): the figure fairseq's IWSLT14 papers quote
Every test sentence must be in the log; a partial log is an error, never a score. With
--valid-generate-log (and --valid-tok-ref/--valid-raw-ref) the row also holds `valid_sacrebleu`, the same
score on the validation set: what the report's depth pick (--quality-floor) reads, never the test score.
The row also holds the model's seed, training updates and seconds and what it started from (the exported
checkpoint's record; for a training checkpoint, its run's own, with --started-from), `collapsed` (a
reason when half the test set decoded to one sentence, else null) and
`outputs`: outputs/NAME.json beside it, the detokenised hypotheses and raw references that
selfteach_pipeline.report resamples for intervals and paired tests.
"""
import argparse
import json
import sys

import sacrebleu
from sacremoses import MosesDetokenizer

from fairseq_selfteach.cli import generate_log
from fairseq_selfteach.cli.param_count import count_parameters
from fairseq_selfteach.core import error_report
from selfteach_pipeline.files import atomic_write_text
from selfteach_pipeline.results import collapse, rows
from selfteach_pipeline.results.significance import detok_bleu


class ScoreError(Exception):
    pass


def read_generate_log(path):
    """({id: hypothesis}, speed dict) from a fairseq-generate log."""
    hyps, speed = generate_log.read_generate_log(path, "H")
    if speed is None:
        raise ScoreError(f"{path}: no 'Translated N sentences' line: the decoding did not finish")
    return hyps, speed


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def score(hyps, tok_refs, raw_refs, lang, log_path="generate log"):
    """(scores dict, detokenised hypotheses in test order)."""
    if len(tok_refs) != len(raw_refs):
        raise ScoreError(f"{len(tok_refs)} tokenised but {len(raw_refs)} raw references")
    missing = sorted(set(range(len(tok_refs))) - set(hyps))
    if missing:
        raise ScoreError(f"{log_path}: {len(missing)} of {len(tok_refs)} test sentences have no hypothesis "
                         f"(first missing id {missing[0]}); refusing to score a subset")
    tok_hyps = [hyps[i] for i in range(len(tok_refs))]
    md = MosesDetokenizer(lang=lang)
    detok_hyps = [md.detokenize(h.split()) for h in tok_hyps]  # also unescapes &apos; &quot; …
    detok = detok_bleu()
    tok = sacrebleu.metrics.BLEU(tokenize="none", force=True)
    return {
        "sacrebleu": round(detok.corpus_score(detok_hyps, [raw_refs]).score, 2),
        "sacrebleu_signature": str(detok.get_signature()),
        "tok_bleu": round(tok.corpus_score(tok_hyps, [tok_refs]).score, 2),
        "tok_bleu_note": "tokenised (Moses, lowercased) BLEU, sacreBLEU tokenize=none: the IWSLT14 papers' figure",
        "test_sentences": len(tok_refs),
        "collapsed": collapse.same_output(tok_hyps),
    }, detok_hyps


def valid_score(args) -> dict:
    """valid_sacrebleu (and the number of sentences) of the validation decoding."""
    if not (args.valid_tok_ref and args.valid_raw_ref):
        raise ScoreError("--valid-generate-log needs --valid-tok-ref and --valid-raw-ref")
    hyps, _ = read_generate_log(args.valid_generate_log)
    scores, _ = score(hyps, read_lines(args.valid_tok_ref), read_lines(args.valid_raw_ref), args.lang,
                      args.valid_generate_log)
    return {"valid_sacrebleu": scores["sacrebleu"], "valid_sentences": scores["test_sentences"]}


def main(argv=None):
    error_report.install()  # a user's error is one line, no traceback, also inside fairseq's code
    return score_one(sys.argv[1:] if argv is None else list(argv))


def score_one(argv):
    ap = argparse.ArgumentParser(prog="score_translation", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generate-log", required=True, help="fairseq-generate --remove-bpe output")
    ap.add_argument("--tok-ref", required=True, help="tokenised, lowercased references (one per line)")
    ap.add_argument("--raw-ref", required=True, help="raw references (one per line)")
    ap.add_argument("--lang", default="en", help="target language, for the detokeniser")
    ap.add_argument("--checkpoint", required=True, help="the decoded checkpoint (for parameter counts)")
    ap.add_argument("--decoder-layers", type=int, help="count only this many decoder layers (an exit)")
    ap.add_argument("--started-from", help="what the model started from, for a training checkpoint (an "
                                           "exported one records it itself)")
    ap.add_argument("--valid-generate-log", help="the same model's fairseq-generate --remove-bpe output on "
                                                 "the validation set: scored into valid_sacrebleu")
    ap.add_argument("--valid-tok-ref", help="tokenised, lowercased validation references")
    ap.add_argument("--valid-raw-ref", help="raw validation references")
    ap.add_argument("--name", required=True, help="row name")
    ap.add_argument("--method", required=True, help="row method (teacher, offline, online, gradual, …)")
    ap.add_argument("--out", required=True, help="JSON file to write (atomically)")
    args = ap.parse_args(argv)
    try:
        hyps, speed = read_generate_log(args.generate_log)
        row = {"name": args.name, "method": args.method}
        raw_refs = read_lines(args.raw_ref)
        scores, detok_hyps = score(hyps, read_lines(args.tok_ref), raw_refs, args.lang, args.generate_log)
        row.update(scores)
        row.update(speed)
        if args.valid_generate_log:
            row.update(valid_score(args))
    except (ScoreError, OSError, generate_log.GenerateLogError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from fairseq_selfteach.core.checkpoint_io import load_checkpoint
    from fairseq_selfteach.core.layer_map import layer_count

    state = load_checkpoint(args.checkpoint)
    model_state = state["model"]
    layers = {"encoder.layers": layer_count(model_state, "encoder.layers"),
              "decoder.layers": args.decoder_layers or layer_count(model_state, "decoder.layers")}
    counts = count_parameters(model_state, layers)
    row.update({"encoder_layers": layers["encoder.layers"], "decoder_layers": layers["decoder.layers"],
                "params": counts["total"], "checkpoint": args.checkpoint})
    if "selfteach" not in state:  # a training checkpoint: its own run's record (core/export)
        from fairseq_selfteach.core.export import training_record

        state = {**state, "selfteach": {"training": training_record(args.checkpoint, state, args.started_from)}}
    row.update(rows.provenance_fields(state))
    # the per-sentence outputs the paired tests resample (the report reads them)
    row["outputs"] = rows.write_outputs(args.out, {"hypotheses": detok_hyps, "references": raw_refs})
    atomic_write_text(args.out, json.dumps(row, indent=1) + "\n")
    print(f"{args.name}: sacreBLEU {row['sacrebleu']}  tokenised BLEU {row['tok_bleu']}  "
          f"params {row['params']:,}  {row['sentences_per_s']} sentences/s  seed {row['seed']}, "
          f"{row['updates']} updates")
    if row["collapsed"]:
        print(f"{args.name}: warning: {row['collapsed']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
