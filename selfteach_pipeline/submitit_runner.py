"""Runs a plan through submitit (facebookincubator's, as fairseq's hydra launcher does): every stage a job.

    --executor slurm            each stage a Slurm job, submitted with `afterok` dependencies on the jobs
                                of the stages it waits for; the cluster orders them
    --executor submitit-local   submitit's LocalExecutor: each stage a local process submitit starts and
                                watches (its job folder, logs and pickled result), in dependency order

A job runs `selfteach_pipeline.runner.run_stage`: the stage's command, then its marker, exactly as the
local runner does, so a re-submission skips what is done and the plan grows (the sweep's pick) between
rounds as it does locally. Job folders: OUT/submitit/.
"""
import json
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List

from selfteach_pipeline.plan import Plan, Stage
from selfteach_pipeline.runner import StageFailed, is_done, run_stage


@dataclass
class ClusterOptions:
    partition: str = ""
    time_min: int = 240  # each job's time limit
    gpus_per_training: int = 0  # GPUs of a fairseq-train or fairseq-generate job (the other stages get none)


def job_parameters(stage: Stage, options: ClusterOptions, after_jobs: List[str]) -> Dict[str, object]:
    """submitit's parameters for the stage's Slurm job (`slurm_*` ones are ignored by the local executor)."""
    gpus = options.gpus_per_training if stage.argv[0] in ("fairseq-train", "fairseq-generate") else 0
    params: Dict[str, object] = {"name": f"selfteach-{stage.name}", "timeout_min": options.time_min,
                                 "cpus_per_task": stage.threads, "gpus_per_node": gpus, "nodes": 1,
                                 "tasks_per_node": 1}
    if options.partition:
        params["slurm_partition"] = options.partition
    if after_jobs:
        params["slurm_additional_parameters"] = {"dependency": "afterok:" + ":".join(after_jobs)}
    return params


def dry_run(plan: Plan, options: ClusterOptions) -> str:
    """The plan's jobs: each stage's submitit parameters (its dependencies by stage name) and command."""
    lines = [f"# {c}" for c in plan.choices]
    for stage in plan.stages:
        params = job_parameters(stage, options, [f"<job of {d}>" for d in stage.after])
        lines += [f"# job {stage.name}: {json.dumps(params, ensure_ascii=False)}", stage.shell()]
    return "\n".join(lines) + "\n"


class SubmititRunner:
    def __init__(self, out: str, cluster: str, options: ClusterOptions, cores: int = 1, echo=print):
        if cluster not in ("slurm", "local"):
            raise ValueError(cluster)
        self.out, self.cluster, self.options, self.cores, self.echo = out, cluster, options, cores, echo
        self.folder = os.path.join(out, "submitit")

    def executor(self):
        import submitit

        return submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)

    def run(self, build: Callable[[], Plan]) -> None:
        while True:
            plan = build()
            for line in plan.choices:
                self.echo(f"pipeline: {line}")
            todo = [s for s in plan.stages if not is_done(self.out, s.name)]
            if not todo:
                return
            (self._slurm_round if self.cluster == "slurm" else self._local_round)(todo)

    def _submit(self, stage: Stage, after_jobs: List[str]):
        executor = self.executor()
        executor.update_parameters(**job_parameters(stage, self.options, after_jobs))
        job = executor.submit(run_stage, self.out, stage)
        self.echo(f"pipeline: {stage.name} submitted as job {job.job_id}")
        return job

    def _slurm_round(self, todo: List[Stage]) -> None:
        jobs = {}
        for stage in todo:  # plan order: a stage's dependencies are submitted before it
            jobs[stage.name] = self._submit(stage, [jobs[d].job_id for d in stage.after if d in jobs])
        for name, job in jobs.items():
            self._result(name, job)

    def _local_round(self, todo: List[Stage]) -> None:
        """submitit's local processes have no dependencies: a stage is submitted once its own are done."""
        waiting, running = list(todo), {}
        while waiting or running:
            for stage in list(waiting):
                if len(running) >= self.cores:
                    break
                if all(is_done(self.out, d) for d in stage.after):
                    running[stage.name] = self._submit(stage, [])
                    waiting.remove(stage)
            if not running:
                raise StageFailed(f"stage {waiting[0].name} waits for a stage that did not finish")
            time.sleep(0.2)
            for name, job in list(running.items()):
                if job.done():
                    del running[name]
                    self._result(name, job)

    def _result(self, name: str, job) -> None:
        try:
            job.result()
        except StageFailed:
            raise
        except Exception as e:  # submitit's FailedJobError carries the job's traceback, with run_stage's error
            said = [line.split("StageFailed: ", 1)[1] for line in str(e).splitlines() if "StageFailed: " in line]
            raise StageFailed(f"{said[0]} (job {job.job_id})" if said else
                              f"stage {name}: job {job.job_id} failed ({type(e).__name__}); its logs: {self.folder}") from None
        self.echo(f"pipeline: {name} done (job {job.job_id})")
