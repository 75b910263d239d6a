"""The exit curricula measured on the translation demo's data: for each curriculum (none, rotational,
gradual) and seed, one model of the demo's shape (scripts/translation_settings.tsv, column bible: 3
encoder and 4 decoder layers) trained online from scratch with every layer below the top a student exit
(--student-exits all), for the teacher's budget (teacher_max_update updates) and on the teacher's
schedule; each exit exported and decoded with plain fairseq-generate, scored by sacreBLEU.

    python docs/results/exit-curriculum/run.py RUN [OUT] [--curricula none,rotational,gradual]
        [--layer-dropout 0] [--seeds 1,2,3] [--dry-run]

RUN is a finished `bash scripts/iwslt14.sh bible` run folder (its binarised data RUN/data/prep/bin and
references RUN/data/prep/ref, tok); OUT (default runs/exit-curriculum) is where the models and results
go, and re-running skips what is done. --layer-dropout, a list of --layer-dropout-max values (default 0:
none), repeats each curriculum with each (rows *_ldP). The table has these rows only; compare them with
RUN/results.md (its online exit trains exit 2 alone): compare.py.
"""
import functools
import os
import sys

from selfteach_pipeline import recorded
from selfteach_pipeline.pipeline import Pipeline
from selfteach_pipeline.plan import PlanError
from selfteach_pipeline.translate_cli import make_pipeline

CURRICULA = ("none", "rotational", "gradual")


class ExitCurriculum(Pipeline):
    def __init__(self, *args, curricula, dropouts):
        super().__init__(*args)
        self.variants = [(c, p, c + ("" if p == 0 else f"_ld{p:g}")) for c in curricula for p in dropouts]

    def build(self):
        plan, known = self.begin()
        if not known:
            return plan
        f, L, s, seeds = self.f, self.L, self.s, self.o.seeds
        updates = f.teacher_updates()
        plan.choose(f"{L}-layer models, every exit trained, {updates} updates each (the teacher's budget); variants "
                    f"{', '.join(v for _, _, v in self.variants)}; seeds {','.join(map(str, seeds))}")
        kd = [*f.kd_criterion(), "--kd-alpha", s["kd_alpha"], "--kd-temperature", s["kd_temperature"]]
        for curriculum, dropout, variant in self.variants:
            for seed in seeds:
                name = f"exits_all_{variant}_s{seed}"
                self.train(plan, name, updates, L, kd, seed, student=False,
                           extra=["--student-exits", "all", "--exit-curriculum", curriculum, "--layer-dropout-max", dropout])
                for k in range(1, L):
                    self.export(plan, f"exits_all_{variant}_dec{k}_s{seed}", self.checkpoint(name),
                                f"random initialisation (exit {k} of one {L}-layer model, curriculum {curriculum}, "
                                f"layer dropout {dropout:g})", "--decoder-layers", k, after=[name])
        self.all_trained(plan)
        for _, _, variant in self.variants:
            for seed in seeds:
                for k in range(1, L):
                    self.evaluate(plan, f"exits_all_{variant}_dec{k}_s{seed}", f"exits_all_{variant}_dec{k}", "online", seed)
        self.report(plan, f"exit curricula on {self.f.setting}'s data, every exit of one {L}-layer model")
        return plan


def options(ap):
    ap.add_argument("run", help="a finished `bash scripts/iwslt14.sh bible` run folder")
    ap.add_argument("--curricula", default=",".join(CURRICULA), help="default none,rotational,gradual")
    ap.add_argument("--layer-dropout", default="0", help="--layer-dropout-max values, each a variant (default 0)")


def kind(args):
    curricula = [c for c in args.curricula.replace(" ", ",").split(",") if c]
    unknown = [c for c in curricula if c not in CURRICULA]
    if unknown or not curricula:
        raise PlanError(f"--curricula takes {', '.join(CURRICULA)} (not '{args.curricula}')")
    return functools.partial(ExitCurriculum, curricula=curricula,
                             dropouts=recorded.numbers(args.layer_dropout, "--layer-dropout", float))


def main(argv=None):
    return recorded.main("exit-curriculum/run.py", __doc__, "bible", "exit-curriculum", make_pipeline, kind, options,
                         argv, extra=lambda a: ["--data-bin", os.path.join(os.path.abspath(a.run), "data", "prep", "bin")])


if __name__ == "__main__":
    sys.exit(main())
