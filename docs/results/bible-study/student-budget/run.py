"""Side experiment: does a larger student budget bring bible-study's half-depth student to 97 % of its
teacher? The study's teacher is trained again as `selfteach-translation-pipeline bible-study` trains it
(same command, seed and data: CPU training is deterministic, so it is the same teacher); then, for each
budget B and each seed, the study's gradual chain (its gradual_schedule, 4→3→2) with B updates per stage
and the 2-layer scratch model with B updates (the same-budget baseline), at the study's student schedule
and the study's sweep pick (α 0.5, T 1; not swept again). The 2-layer scratch model with the teacher's
budget is trained too (it reproduces the study's). Every model is decoded with plain fairseq-generate on
test and (the teacher and the students) on valid; the budget is chosen on valid only (compare.py).

    python docs/results/bible-study/student-budget/run.py [OUT] [--budgets 200,400] [--seeds 1,2,3] [--dry-run]

OUT defaults to runs/bible-study-budget; re-running skips what is done. Every option of
selfteach-translation-pipeline (--cores, --dry-run, --set, --executor …) is taken as it takes it.
"""
import functools
import os
import sys

from selfteach_pipeline import recorded
from selfteach_pipeline.pipeline import Pipeline
from selfteach_pipeline.translate_cli import make_pipeline

HERE = os.path.dirname(os.path.abspath(__file__))
KD = ["--kd-alpha", "0.5", "--kd-temperature", "1"]  # the study's sweep pick (../students-200/sweep.md)


class StudentBudget(Pipeline):
    redone_each_run = Pipeline.redone_each_run + ("compare",)

    def __init__(self, *args, budgets):
        super().__init__(*args)
        self.budgets = budgets

    def build(self):
        plan, known = self.begin()
        if not known:
            return plan
        f, L, seeds = self.f, self.L, self.o.seeds
        plan.choose(f"budgets {','.join(map(str, self.budgets))} updates per student stage; seeds "
                    f"{','.join(map(str, seeds))}; α 0.5, T 1; the students' lr {self.s['student_lr']}")
        teacher = self.teacher(plan)
        budget = self.teacher_budget(plan)
        for b in self.budgets:
            for seed in seeds:
                prev, prev_stage, prev_name = teacher, "teacher", f"teacher_dec{L}"
                for k in self.schedule[1:]:  # the gradual chain, B updates per stage
                    name = f"gradual_u{b}_dec{k}_s{seed}"
                    self.train(plan, name, b, k, [*f.kd_criterion(), *KD], seed, student=True, teacher=prev,
                               after=[prev_stage])
                    self.export(plan, name, self.checkpoint(name), f"{prev_name}, decoder layers 1-{k}", after=[name])
                    prev, prev_stage, prev_name = self.checkpoint(name), name, f"gradual_u{b}_dec{k}"
                self.scratch(plan, b, seed, student=True)
        if budget is None:  # the teacher's updates (patience) are known once it has stopped
            return plan
        for seed in seeds:  # the teacher's own schedule over its budget
            self.scratch(plan, budget, seed, student=budget in self.budgets)
        self.all_trained(plan)
        self.evaluate(plan, f"teacher_dec{L}", f"teacher_dec{L}", "teacher", None)
        for seed in seeds:
            for b in self.budgets:
                for k in self.schedule[1:]:
                    self.evaluate(plan, f"gradual_u{b}_dec{k}_s{seed}", f"gradual_u{b}_dec{k}", "gradual", seed)
                self.evaluate(plan, f"scratch_u{b}_dec2_s{seed}", f"scratch_same_budget_u{b}_dec2",
                              "scratch-same-budget", seed)
            if budget not in self.budgets:
                self.evaluate(plan, f"scratch_u{budget}_dec2_s{seed}", "scratch_teacher_budget_dec2",
                              "scratch-teacher-budget", seed)
        self.report(plan, f"bible-study: the student budget (gradual {'→'.join(map(str, self.schedule))})")
        plan.add("compare", [sys.executable, os.path.join(HERE, "compare.py"), self.out], ["report"],
                 stdout=self.path("compare.json"))
        return plan

    def scratch(self, plan, updates, seed, student):
        """2 decoder layers from random initialisation, cross-entropy, UPDATES updates."""
        name = f"scratch_u{updates}_dec2_s{seed}"
        if name not in plan.names():
            self.train(plan, name, updates, 2, self.f.ce_criterion(), seed, student=student)
            self.export(plan, name, self.checkpoint(name), self.f.fresh(2), after=[name])


def options(ap):
    ap.add_argument("--budgets", default="200,400", help="updates per student stage (default 200,400)")


def main(argv=None):
    return recorded.main("student-budget/run.py", __doc__, "bible-study", "bible-study-budget", make_pipeline,
                         lambda a: functools.partial(StudentBudget, budgets=recorded.numbers(a.budgets, "--budgets")),
                         options, argv)


if __name__ == "__main__":
    sys.exit(main())
