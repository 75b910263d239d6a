"""Side experiment (#11): a learning rate of their own for the classification heads. For each seed,
sentiment-study's online model `online_sSEED` exactly as `selfteach-glue-pipeline sentiment-study`
trains it (the 6-layer MiniLM fine-tuned for the teacher's 320 updates on the teacher's schedule: lr
5e-5, warm-up 38, linear decay over the teacher's 384; exit 3 with a pooler and head of its own,
--exit-heads all --student-exits 3; the study's sweep pick α 0.5, T 1) with plain Adam (the
reproduction), and the same with --optimizer adam_head_lr --head-lr-scale SCALE (`headlrSCALE_sSEED`;
every other option the same). Exit 3 of each is exported as a 3-layer model and scored on dev (and on
heldout, as the pipeline scores every online row); compare.py writes OUT/head-lr.json (each seed's and
the pooled exact McNemar test, SCALE against plain).

    python docs/results/sentiment-study/head-lr/run.py [OUT] [--scale 10] [--seeds 1,2,3] [--dry-run]

OUT defaults to runs/sentiment-study-head-lr; the study's data stages are planned there (no separate
`--only-data` run). OUT may also be the study's own run folder (runs/glue-sentiment-study): its online_s1..3,
their exports and rows have the same stage names and commands, and are reused, not trained again.
compare.py reads seeds 1, 2 and 3. Re-running skips what is done. Every option of selfteach-glue-pipeline
(--cores, --dry-run, --set, --executor …) is taken as it takes it.
"""
import argparse
import functools
import math
import os
import sys

from selfteach_pipeline import recorded
from selfteach_pipeline.glue_cli import make_pipeline
from selfteach_pipeline.pipeline import Pipeline
from selfteach_pipeline.plan import PlanError

HERE = os.path.dirname(os.path.abspath(__file__))
KD = ["--kd-alpha", "0.5", "--kd-temperature", "1"]  # the study's sweep pick (../results.md)
UPDATES = 320  # the study's teacher stopped there (patience 2): its online models' budget
EXIT = 3  # the exit compared, exported as a 3-layer model


class HeadLr(Pipeline):
    redone_each_run = Pipeline.redone_each_run + ("compare",)

    def __init__(self, *args, scale):
        super().__init__(*args)
        self.scale = scale

    def build(self):
        f, L, seeds = self.f, self.L, self.o.seeds
        if not {1, 2, 3} <= set(seeds):
            raise PlanError("compare.py reads seeds 1, 2 and 3: --seeds must hold them (not "
                            f"{','.join(map(str, seeds))})")
        plan, known = self.begin()
        if not known:
            return plan
        plan.choose(f"online models, {L} layers, {UPDATES} updates (the study's teacher's) on the teacher's "
                    f"schedule ({' '.join(map(str, f.schedule(False)))}); exit {EXIT}; α 0.5, T 1; plain adam, and "
                    f"adam_head_lr --head-lr-scale {self.scale}; seeds {','.join(map(str, seeds))}")
        distil = [*f.kd_criterion(), *KD]
        variants = [("online", []),
                    (f"headlr{self.scale}", ["--optimizer", "adam_head_lr", "--head-lr-scale", self.scale])]
        for seed in seeds:
            for variant, optimizer in variants:  # the second --optimizer is fairseq's (argparse: the last wins)
                name = f"{variant}_s{seed}"
                self.train(plan, name, UPDATES, L, distil, seed, student=False,
                           extra=[*f.exit_options(), "--student-exits", EXIT, *optimizer])
                self.export(plan, f"{variant}_enc{EXIT}_s{seed}", self.checkpoint(name),
                            f"{f.fresh(L)} (exit {EXIT} of one {L}-layer model)", f.layers_flag, EXIT, after=[name])
        self.all_trained(plan)
        for seed in seeds:
            for variant, _ in variants:
                self.evaluate(plan, f"{variant}_enc{EXIT}_s{seed}", f"{variant}_enc{EXIT}", "online", seed)
        plan.add("compare", [sys.executable, os.path.join(HERE, "compare.py"), self.out, self.scale], self.rows,
                 stdout=self.path("head-lr.json"))
        return plan


def scale(text):
    """A positive number, kept as typed (it names the rows: headlr10_enc3_s1)."""
    try:
        ok = math.isfinite(float(text)) and float(text) > 0
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"takes a positive number, e.g. 10 (not '{text}')")
    return text.strip()


def options(ap):
    ap.add_argument("--scale", type=scale, default="10", help="the heads' --head-lr-scale (default 10)")


def main(argv=None):
    return recorded.main("head-lr/run.py", __doc__, "sentiment-study", "sentiment-study-head-lr", make_pipeline,
                         lambda a: functools.partial(HeadLr, scale=a.scale), options, argv)


if __name__ == "__main__":
    sys.exit(main())
