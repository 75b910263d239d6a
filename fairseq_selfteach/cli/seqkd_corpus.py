"""Sequence-level KD corpus: the teacher's beam output on the training set becomes the new target side.

    python -m fairseq_selfteach.cli.seqkd_corpus --generate-log GEN.txt --source bpe/train.de \
        --out-prefix seqkd/train --src de --tgt en

GEN.txt is `fairseq-generate --gen-subset train` output without --remove-bpe, so hypotheses are in the
same BPE as the source and binarise with the original dictionary (Kim & Rush, 2016). Every training
sentence must have a hypothesis; pairs whose hypothesis is empty are dropped (and counted).
Writes OUT_PREFIX.{src,tgt} atomically.
"""
import argparse
import os
import sys

from fairseq_selfteach.cli.generate_log import read_generate_log
from fairseq_selfteach.core import error_report


def main(argv=None):
    error_report.install()  # a user's error is one line, no traceback, also inside fairseq's code
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generate-log", required=True, help="fairseq-generate output on the train subset")
    ap.add_argument("--source", required=True, help="the BPE'd training source, one sentence per line")
    ap.add_argument("--out-prefix", required=True, help="writes OUT_PREFIX.SRC and OUT_PREFIX.TGT")
    ap.add_argument("--src", required=True, help="source language suffix")
    ap.add_argument("--tgt", required=True, help="target language suffix")
    args = ap.parse_args(argv)
    with open(args.source, encoding="utf-8") as f:
        source = [line.rstrip("\n") for line in f]
    hyps, _speed = read_generate_log(args.generate_log, "H")
    missing = [i for i in range(len(source)) if i not in hyps]
    if missing:
        print(f"error: {args.generate_log} has no hypothesis for {len(missing)} of {len(source)} training "
              f"sentences (first: id {missing[0]}); the decoding did not finish", file=sys.stderr)
        return 2
    pairs = [(source[i], hyps[i]) for i in range(len(source)) if hyps[i].strip()]
    os.makedirs(os.path.dirname(os.path.abspath(args.out_prefix)), exist_ok=True)
    for side, lang in enumerate((args.src, args.tgt)):
        path = f"{args.out_prefix}.{lang}"
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.writelines(p[side] + "\n" for p in pairs)
        os.replace(path + ".tmp", path)
    print(f"seqkd_corpus: {len(pairs)} pairs ({len(source) - len(pairs)} empty hypotheses dropped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
