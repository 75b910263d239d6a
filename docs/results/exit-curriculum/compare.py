"""Paired comparisons of run.py's curricula, exit by exit and seed by seed: sacreBLEU's paired bootstrap
(1,000 resamples, its default seed) of each curriculum against `none` on the same seed, and of each
against a reference system (the demo's online exit, trained with --student-exits 2 alone).

    python docs/results/exit-curriculum/compare.py OUT RUN [--curricula none,rotational] [--seeds 1,2,3]

OUT is run.py's folder, RUN the demo's run folder (test references, its online_dec2_s1 decoding; a run
folder of `iwslt14.sh bible --only-data` has no decoding, and then the last column is left out).
--curricula names run.py's variants, e.g. none,none_ld0.2 for layer dropout.
"""
import argparse
import os

import sacrebleu
from sacrebleu.significance import PairedTest
from sacremoses import MosesDetokenizer

from fairseq_selfteach.cli.generate_log import read_generate_log


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("run")
    ap.add_argument("--curricula", default="none,rotational")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--layers", type=int, default=4)
    a = ap.parse_args()
    md = MosesDetokenizer(lang="en")
    with open(os.path.join(a.run, "data", "prep", "ref", "test.en"), encoding="utf-8") as f:
        refs = f.read().splitlines()

    def system(path):
        hyps, _ = read_generate_log(path, "H")
        return [md.detokenize(hyps[i].split()) for i in range(len(refs))]

    curricula, seeds = a.curricula.split(","), a.seeds.split(",")
    demo = os.path.join(a.run, "generate", "online_dec2_s1.txt")
    reference = system(demo) if os.path.exists(demo) else None
    print("| exit | seed | " + " | ".join(curricula) + " | p (each vs none) | p vs demo online_dec2 (exit 2 only) |")
    print("|---" * (4 + len(curricula)) + "|")
    for k in range(1, a.layers):
        for s in seeds:
            systems = [(c, system(os.path.join(a.out, "generate", f"exits_all_{c}_dec{k}_s{s}.txt"))) for c in curricula]
            _, scores = PairedTest(systems, {"BLEU": sacrebleu.metrics.BLEU(lowercase=True)}, [refs],
                                   test_type="bs", n_samples=1000)()
            bleu = [f"{x.score:.2f}" for x in scores["BLEU"]]
            p_none = ", ".join(f"{x.p_value:.3f}" for x in scores["BLEU"][1:])
            p_demo = "–"
            if k == 2 and reference is not None:
                _, vs = PairedTest([("demo", reference)] + systems, {"BLEU": sacrebleu.metrics.BLEU(lowercase=True)},
                                   [refs], test_type="bs", n_samples=1000)()
                p_demo = ", ".join(f"{x.p_value:.3f}" for x in vs["BLEU"][1:])
            print(f"| {k} | {s} | " + " | ".join(bleu) + f" | {p_none} | {p_demo} |")


if __name__ == "__main__":
    main()
