"""Side experiment (#10): does a larger student budget bring sentiment-study's 3-layer student to 99 % of
its 6-layer teacher? The study's data, and its teacher fine-tuned again as `selfteach-glue-pipeline
sentiment-study` fine-tunes it (same command, seed and data: CPU training is deterministic, so it is the
same teacher); then, for each budget of E student epochs per stage and each seed, the study's gradual
chain (its gradual_schedule, 6→4→3) with E epochs per stage, distilled from the previous stage, and the
first 3 pretrained layers fine-tuned with cross-entropy for as many updates (the same-budget truncated
baseline). Every stage gets the study's student schedule over its own updates (lr 5e-5, 10 % warm-up,
linear decay; updates = E × ceil(training examples / batch size)) and the study's sweep pick (α 0.5,
T 1; not swept again). Every model is scored on dev and (the teacher and the students) on heldout; the
budget is chosen on heldout only (compare.py, into OUT/compare.json).

    python docs/results/sentiment-study/student-budget/run.py [OUT] [--epochs 2,4] [--seeds 1,2,3] [--dry-run]

OUT defaults to runs/sentiment-study-budget; re-running skips what is done (--epochs 2,4,6 adds the
6-epoch rows and reuses the rest). Every option of selfteach-glue-pipeline (--cores, --dry-run, --set,
--executor …) is taken as it takes it.
"""
import functools
import os
import sys

from selfteach_pipeline import recorded
from selfteach_pipeline.classification_family import updates
from selfteach_pipeline.glue_cli import make_pipeline
from selfteach_pipeline.pipeline import Pipeline
from selfteach_pipeline.plan import PlanError

HERE = os.path.dirname(os.path.abspath(__file__))
KD = ["--kd-alpha", "0.5", "--kd-temperature", "1"]  # the study's sweep pick (../results.md)


class StudentBudget(Pipeline):
    redone_each_run = Pipeline.redone_each_run + ("compare",)

    def __init__(self, *args, epochs):
        super().__init__(*args)
        self.epochs = epochs

    def build(self):
        plan, known = self.begin()
        if not known:
            return plan
        f, L, seeds, k_last = self.f, self.L, self.o.seeds, self.schedule[-1]
        n, batch = f.meta["splits"]["train"]["examples"], self.s["batch_size"]
        per_stage = {e: updates(n, batch, e) for e in self.epochs}
        plan.choose(f"student budgets of {', '.join(f'{e} epochs ({u} updates)' for e, u in per_stage.items())} per "
                    f"stage; seeds {','.join(map(str, seeds))}; α 0.5, T 1; the students' lr {self.s['student_lr']}")
        teacher = self.teacher(plan)
        for e, u in per_stage.items():
            for seed in seeds:
                prev, prev_stage, prev_name = teacher, "teacher", f"teacher_enc{L}"
                for k in self.schedule[1:]:  # the gradual chain, E epochs per stage, each its own schedule
                    name = f"gradual_e{e}_enc{k}_s{seed}"
                    self.train(plan, name, u, k, [*f.kd_criterion(), *KD], seed, student=True, teacher=prev,
                               stage_updates=u, after=[prev_stage])
                    self.export(plan, name, self.checkpoint(name), f"{prev_name}, layers 1-{k}", after=[name])
                    prev, prev_stage, prev_name = self.checkpoint(name), name, f"gradual_e{e}_enc{k}"
                name = f"truncated_e{e}_enc{k_last}_s{seed}"  # the pretrained first layers, cross-entropy
                self.train(plan, name, u, k_last, f.ce_criterion(), seed, student=True, stage_updates=u)
                self.export(plan, name, self.checkpoint(name), f.fresh(k_last), after=[name])
        self.all_trained(plan)
        self.evaluate(plan, f"teacher_enc{L}", f"teacher_enc{L}", "teacher", None)
        for seed in seeds:
            for e in self.epochs:
                for k in self.schedule[1:]:
                    self.evaluate(plan, f"gradual_e{e}_enc{k}_s{seed}", f"gradual_e{e}_enc{k}", "gradual", seed)
                self.evaluate(plan, f"truncated_e{e}_enc{k_last}_s{seed}", f"truncated_same_budget_e{e}_enc{k_last}",
                              "truncated-same-budget", seed)
        self.report(plan, f"sentiment-study: the student budget (gradual {'→'.join(map(str, self.schedule))})")
        plan.add("compare", [sys.executable, os.path.join(HERE, "compare.py"), self.out], ["report"],
                 stdout=self.path("compare.json"))
        return plan


def options(ap):
    ap.add_argument("--epochs", default="2,4", help="student epochs per stage, one budget each (default 2,4)")


def kind(args):
    epochs = recorded.numbers(args.epochs, "--epochs")
    if 0 in epochs:
        raise PlanError(f"--epochs takes whole numbers of at least 1, e.g. 2,4 (not '{args.epochs}')")
    return functools.partial(StudentBudget, epochs=list(dict.fromkeys(epochs)))


def main(argv=None):
    return recorded.main("student-budget/run.py", __doc__, "sentiment-study", "sentiment-study-budget", make_pipeline,
                         kind, options, argv)


if __name__ == "__main__":
    sys.exit(main())
