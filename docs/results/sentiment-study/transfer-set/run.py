"""Side experiment (#10): does a transfer set bring sentiment-study's 3-layer student to 99 % of its 6-layer
teacher? The study's data, and its teacher fine-tuned again as `selfteach-glue-pipeline sentiment-study`
fine-tunes it (same command, seed and data: CPU training is deterministic, so it is the same teacher);
then the transfer set: TRANSFER movie-review snippets that the study's sample left out, without their
labels (preprocess/sentiment_snippets.py --transfer, from the study's own sdist; its train and dev are
checked with `cmp` to be the study's), labelled by the teacher (selfteach-evaluate-glue --predictions)
and appended to the students' training set (preprocess/glue_binarize.py --transfer --transfer-labels
into OUT/data/bin-transfer; heldout and dev unchanged). For each seed: the study's gradual chain (its
gradual_schedule, 6→4→3) distilled on that set, UPDATES per stage (the budget the student-budget
experiment picked on heldout), and its same-budget baseline, the first 3 pretrained layers fine-tuned
with cross-entropy for as many updates on the gold training set. Every stage gets the study's student
schedule over its own updates (lr 5e-5, 10 % warm-up, linear decay) and the study's sweep pick (α 0.5,
T 1). Every model is scored on the gold dev set and (the teacher and the students) on heldout.

    python docs/results/sentiment-study/transfer-set/run.py [OUT] [--transfer 4000] [--updates 384]
        [--seeds 1,2,3] [--dry-run]

OUT defaults to runs/sentiment-study-transfer; re-running skips what is done. Every option of
selfteach-glue-pipeline (--cores, --dry-run, --set, --sdist, --executor …) is taken as it takes it
(not --data-bin: the study's snippets are binarised again here, with the transfer split).
"""
import argparse
import functools
import os
import sys

from selfteach_pipeline import recorded
from selfteach_pipeline.glue_cli import make_pipeline
from selfteach_pipeline.pipeline import Pipeline
from selfteach_pipeline.plan import PlanError
from selfteach_pipeline.startup import ROOT

KD = ["--kd-alpha", "0.5", "--kd-temperature", "1"]  # the study's sweep pick (../results.md)
SDIST = "vaderSentiment-3.3.2.tar.gz"  # what the study's raw stage downloads (preprocess/sentiment_snippets.py)


class TransferSet(Pipeline):
    def __init__(self, *args, transfer, updates):
        super().__init__(*args)
        self.transfer, self.updates = transfer, updates

    def build(self):
        if self.f.data_bin:
            raise PlanError("transfer-set binarises the study's snippets again, with the transfer split: give no "
                            "--data-bin")
        plan, known = self.begin()
        if not known:
            return plan
        f, L, s, seeds, u, k_last = self.f, self.L, self.s, self.o.seeds, self.updates, self.schedule[-1]
        plan.choose(f"{self.transfer} teacher-labelled snippets; {u} updates per stage; seeds "
                    f"{','.join(map(str, seeds))}; α 0.5, T 1; the students' lr {s['student_lr']}")
        teacher = self.teacher(plan)
        transfer_bin = self.transfer_data(plan)
        for seed in seeds:
            prev, prev_stage, prev_name = teacher, "teacher", f"teacher_enc{L}"
            for k in self.schedule[1:]:  # the gradual chain on the transfer set
                name = f"gradual_enc{k}_s{seed}"
                self.train(plan, name, u, k, [*f.kd_criterion(), *KD], seed, student=True, teacher=prev,
                           stage_updates=u, data=transfer_bin, after=[prev_stage, "binarize_transfer"])
                self.export(plan, name, self.checkpoint(name), f"{prev_name}, layers 1-{k} (on the transfer set)",
                            after=[name])
                prev, prev_stage, prev_name = self.checkpoint(name), name, f"gradual_enc{k}"
            name = f"truncated_same_budget_enc{k_last}_s{seed}"  # on the gold training set
            self.train(plan, name, u, k_last, f.ce_criterion(), seed, student=True, stage_updates=u)
            self.export(plan, name, self.checkpoint(name), f.fresh(k_last), after=[name])
        self.all_trained(plan)
        self.evaluate(plan, f"teacher_enc{L}", f"teacher_enc{L}", "teacher", None)
        for seed in seeds:
            for k in self.schedule[1:]:
                self.evaluate(plan, f"gradual_enc{k}_s{seed}", f"gradual_enc{k}", "gradual", seed)
            self.evaluate(plan, f"truncated_same_budget_enc{k_last}_s{seed}", f"truncated_same_budget_enc{k_last}",
                          "truncated-same-budget", seed)
        self.report(plan, "sentiment-study: a teacher-labelled transfer set "
                          f"(gradual {'→'.join(map(str, self.schedule))})")
        return plan

    def transfer_data(self, plan) -> str:
        """The transfer set's stages (snippets, their two checks, binarize_unlabelled, label,
        binarize_transfer); the folder the students train on."""
        s, data = self.s, self.path("data")
        src, study = os.path.join(data, "transfer-src", "SENT"), os.path.join(data, "snippets", "SENT")
        sdist = self.f.sdist or os.path.join(data, "snippets", "download", SDIST)  # the one the study's data read
        plan.add("snippets", [sys.executable, os.path.join(ROOT, "preprocess", "sentiment_snippets.py"), "--out",
                 os.path.dirname(src), "--max-examples", s["max_examples"], "--dev-every", s["dev_every"], "--sdist",
                 sdist, "--transfer", self.transfer], ["raw"])
        for split in ("train", "dev"):  # the same sample: the study's own train and dev
            plan.add(f"snippets_same_{split}", ["cmp", os.path.join(src, f"{split}.tsv"),
                     os.path.join(study, f"{split}.tsv")], ["snippets"])

        def binarize(name, out, *options, after):
            return plan.add(name, [sys.executable, os.path.join(ROOT, "preprocess", "glue_binarize.py"), "--task",
                            s["glue_task"], "--glue-dir", study, "--bert-dir", self.f.pretrained, "--max-len",
                            s["max_len"], *(["--heldout-every", s["heldout_every"]] if s["heldout_every"] else []),
                            "--transfer", os.path.join(src, "transfer.tsv"), "--out", out, *options], after)
        unlabelled, transfer_bin = os.path.join(data, "bin-unlabelled"), os.path.join(data, "bin-transfer")
        labels, teacher = os.path.join(data, "transfer_labels.tsv"), f"teacher_enc{self.L}"
        binarize("binarize_unlabelled", unlabelled,
                 after=["binarize", "snippets_same_train", "snippets_same_dev"])
        plan.add("label", ["selfteach-evaluate-glue", "--data", unlabelled, "--path", self.exported(teacher),
                 "--subset", "transfer", "--predictions", labels, *self.f.device.decode_options()],
                 ["binarize_unlabelled", f"export_{teacher}"])
        binarize("binarize_transfer", transfer_bin, "--transfer-labels", labels, after=["label"])
        return transfer_bin


def positive(text):
    """A whole number of at least 1 (argparse's type: a bad one is one line, exit 2)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number of at least 1 (not '{text}')")
    return int(text)


def options(ap):
    ap.add_argument("--transfer", type=positive, default=4000, help="teacher-labelled snippets added (default 4000)")
    ap.add_argument("--updates", type=positive, default=384, help="updates per student stage (default 384)")


def main(argv=None):
    return recorded.main("transfer-set/run.py", __doc__, "sentiment-study", "sentiment-study-transfer", make_pipeline,
                         lambda a: functools.partial(TransferSet, transfer=a.transfer, updates=a.updates), options,
                         argv)


if __name__ == "__main__":
    sys.exit(main())
