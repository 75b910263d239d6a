"""The plan through submitit: its LocalExecutor runs a small plan end to end (real job folders, the
stages in dependency order, markers written by the jobs, a re-submission skipping what is done, a failed
job in one line); the Slurm jobs' parameters, dependencies included, as --dry-run prints them."""
import glob
import json
import os
import sys

import pytest

from selfteach_pipeline.plan import Plan
from selfteach_pipeline.runner import StageFailed, is_done
from selfteach_pipeline.submitit_runner import ClusterOptions, SubmititRunner, dry_run, job_parameters

PY = sys.executable


def append(out, name):
    return [PY, "-c", f"import time; open({os.path.join(out, 'order')!r}, 'a').write('{name} %f\\n' % time.time())"]


def test_local_executor_runs_a_plan_in_order_and_resubmission_skips_what_is_done(tmp_path):
    out = str(tmp_path)
    plan = Plan()
    plan.add("a", append(out, "a"))
    plan.add("b", append(out, "b"), ["a"])
    plan.add("c", append(out, "c"), ["a"])
    plan.add("d", [PY, "-c", "print('from d')"], ["b", "c"], stdout=os.path.join(out, "d.txt"))
    lines = []
    SubmititRunner(out, "local", ClusterOptions(), cores=2, echo=lines.append).run(lambda: plan)
    order = [line.split()[0] for line in open(os.path.join(out, "order"))]
    assert order[0] == "a" and sorted(order[1:]) == ["b", "c"]
    assert open(os.path.join(out, "d.txt")).read() == "from d\n" and all(is_done(out, n) for n in "abcd")
    assert len(glob.glob(os.path.join(out, "submitit", "*_submitted.pkl"))) == 4  # one real job per stage
    assert len(glob.glob(os.path.join(out, "submitit", "*_result.pkl"))) == 4
    assert sum("submitted as job" in line for line in lines) == 4
    lines.clear()
    SubmititRunner(out, "local", ClusterOptions(), cores=2, echo=lines.append).run(lambda: plan)
    assert not any("submitted" in line for line in lines) and len(open(os.path.join(out, "order")).readlines()) == 3


def test_a_failed_job_is_one_line_and_its_dependents_never_run(tmp_path):
    out = str(tmp_path)
    plan = Plan()
    plan.add("bad", [PY, "-c", "import sys; print('the data is gone', file=sys.stderr); sys.exit(2)"])
    plan.add("after", append(out, "after"), ["bad"])
    with pytest.raises(StageFailed) as e:
        SubmititRunner(out, "local", ClusterOptions(), cores=2, echo=lambda _: None).run(lambda: plan)
    assert "\n" not in str(e.value) and "stage bad" in str(e.value) and "the data is gone" in str(e.value)
    assert not is_done(out, "bad") and not os.path.exists(os.path.join(out, "order"))


def test_slurm_job_parameters_and_dry_run():
    plan = Plan()
    plan.add("train_teacher", ["fairseq-train", "bin"])
    plan.add("export_teacher", ["selfteach-export-student", "--checkpoint", "x"], ["train_teacher"])
    options = ClusterOptions(partition="learnfair", time_min=90, gpus_per_training=8)
    train = job_parameters(plan["train_teacher"], options, [])
    assert train == {"name": "selfteach-train_teacher", "timeout_min": 90, "cpus_per_task": 1, "gpus_per_node": 8,
                     "nodes": 1, "tasks_per_node": 1, "slurm_partition": "learnfair"}
    export = job_parameters(plan["export_teacher"], options, ["1234", "1235"])
    assert export["gpus_per_node"] == 0 and export["slurm_additional_parameters"] == {"dependency": "afterok:1234:1235"}
    text = dry_run(plan, options)
    jobs = [json.loads(line.split(": ", 1)[1]) for line in text.splitlines() if line.startswith("# job ")]
    assert jobs[1]["slurm_additional_parameters"]["dependency"] == "afterok:<job of train_teacher>"
    assert "selfteach-export-student --checkpoint x" in text
