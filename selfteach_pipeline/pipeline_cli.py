"""What the pipelines' command lines share (selfteach-translation-pipeline, selfteach-glue-pipeline): the
options of what is trained and of how it runs, their checks, and running a plan (locally through the
fork server, or through submitit) once the family's CLI has built it.
"""
import argparse
import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from typing import List

from selfteach_pipeline import settings_table
from selfteach_pipeline.pipeline import RunOptions
from selfteach_pipeline.plan import Plan, PlanError
from selfteach_pipeline.files import atomic_write_text
from selfteach_pipeline.runner import LocalRunner, main_guard
from selfteach_pipeline.startup import served
from selfteach_pipeline.submitit_runner import ClusterOptions, SubmititRunner, dry_run

say = functools.partial(print, flush=True)  # each line out at once: a kill -9 of the run loses none


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line (main_guard), exit 2: no usage block
        raise PlanError(f"{message} (see --help)")


def parser(prog: str, doc: str, table: str, default_out: str) -> argparse.ArgumentParser:
    ap = Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("setting", metavar="SETTING", help=f"a column of {table}")
    ap.add_argument("--out", help=f"the run's folder (default {default_out}); running again resumes it")
    return ap


def add_study_options(group, metric: str) -> None:
    """The options of what is trained that every family has."""
    group.add_argument("--seeds", help="every trained row but the teacher is repeated with each seed (default: the "
                       "table's seeds), e.g. 1,2,3")
    group.add_argument("--sweep", action="store_true", help="choose the distillation options on validation data: the "
                       "first offline student once per point of the table's sweep_grid, the pick (highest validation "
                       f"{metric}) given to every student and online model (sweep.md, sweep.json; test is never used)")
    group.add_argument("--sweep-grid", help="--sweep over this grid instead of the table's (KEY=V,V;KEY=V,V; keys "
                       "kd_alpha, kd_temperature, kd_direction, student_lr: the students' and same-budget "
                       "baselines' --lr), e.g. 'kd_alpha=0.3,0.5,0.7'")
    group.add_argument("--teacher-cache", action="store_true", help="offline, gradual and sweep students read their "
                       "teacher's outputs from a cache (OUT/caches, one per teacher, built once) instead of running it")
    group.add_argument("--quality-floor", help="the report names the shallowest student or exit whose validation "
                       f"{metric} is at least F × the teacher's (default: the table's quality_floor)")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a row of the settings table for this run (repeatable)")
    group.add_argument("--settings", help="a file of KEY VALUE lines overriding the table's rows")


def add_run_options(ap: argparse.ArgumentParser) -> None:
    run = ap.add_argument_group("how it runs")
    run.add_argument("--cpu", action="store_true", help="train and score on CPU even where CUDA is available")
    run.add_argument("--fp16", dest="fp16", action="store_const", const=True, help="half-precision training "
                     "(fairseq's --fp16): the default where CUDA is visible; refused on CPU")
    run.add_argument("--no-fp16", dest="fp16", action="store_const", const=False, help="float32 training on GPUs")
    run.add_argument("--world-size", type=int, help="processes per training on GPUs (default: every visible GPU)")
    run.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)), help="cores to use (default: all "
                     "this process may use); each stage gets cores ÷ the table's parallel_jobs threads")
    run.add_argument("--dry-run", action="store_true", help="print every choice and every stage's command, in order; "
                     "run nothing")
    run.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default="local",
                     help="local: lanes on this machine (default); slurm: every stage a Slurm job through submitit, "
                     "with its dependencies; submitit-local: submitit's local processes")
    run.add_argument("--no-forkserver", dest="forkserver", action="store_false", help="local: start every tool as "
                     "its own process (by default they are forks of one process that imported torch and fairseq once)")
    run.add_argument("--slurm-partition", default="", help="the Slurm partition of every job")
    run.add_argument("--time-min", type=int, default=240, help="each job's time limit in minutes (submitit)")
    run.add_argument("--gpus-per-training", type=int, default=0, help="GPUs of each fairseq-train and "
                     "fairseq-generate job (submitit)")


def cuda_count() -> int:
    """How many CUDA devices torch sees, asked of a child process: planning itself never imports torch."""
    p = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count() if "
                        "torch.cuda.is_available() else 0)"], capture_output=True, text=True)
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        raise PlanError(f"cannot import torch to count CUDA devices ({tail}); --cpu to train on CPU")
    return int(p.stdout.split()[-1])


def run_options(args, s, said: List[str], table: str, *, seqkd: bool = False, anydepth: bool = False) -> RunOptions:
    """The command line's options checked and turned into the run's, before any work."""
    seeds = args.seeds or ",".join(map(str, s["seeds"]))
    if not re.fullmatch(r"\d+(,\d+)*", seeds):
        raise PlanError(f"--seeds takes whole numbers, e.g. 1,2,3 (not '{seeds}')")
    floor = args.quality_floor or str(s["quality_floor"])
    if not re.fullmatch(r"0?\.\d*[1-9]\d*|1(\.0*)?", floor):
        raise PlanError(f"--quality-floor takes a fraction of the teacher's validation score, 0 < F <= 1, e.g. 0.97 "
                        f"(not '{floor}')")
    grid = None
    if args.sweep or args.sweep_grid:
        grid = args.sweep_grid or s["sweep_grid"]
        if grid is None:
            raise PlanError(f"--sweep: setting {args.setting} has no sweep_grid ({table})")
        settings_table.sweep_grid(grid)
        if args.sweep_grid:
            said.append(f"the sweep's grid is --sweep-grid's ({grid}), not the table's")
    return RunOptions(tuple(int(v) for v in seeds.split(",")), grid, seqkd, args.teacher_cache, anydepth, float(floor),
                      args.cores, said)


def main(prog: str, make_pipeline, argv) -> int:
    """A pipeline's command line: make_pipeline(argv) gives (args, settings, pipeline); the plan is run,
    or printed with --dry-run; a bad option or a failed stage is one line on stderr."""
    return main_guard(lambda argv: execute(prog, *make_pipeline(argv)), argv)


def execute(prog: str, args, settings, pipeline) -> int:
    """Runs (or with --dry-run prints) the pipeline's plan; with --only-data, its data stages alone."""
    out, family = pipeline.out, pipeline.f
    if args.only_data:
        def build():
            plan = Plan(choices=list(pipeline.o.said))
            family.data_stages(plan)
            return plan
    else:
        build = pipeline.build
    cluster = ClusterOptions(args.slurm_partition, args.time_min, args.gpus_per_training)
    if args.dry_run:
        plan = build()
        sys.stdout.write(dry_run(plan, cluster) if args.executor == "slurm" else plan.dry_run())
        return 0
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "settings.json"), json.dumps({"setting": args.setting, **settings}, indent=1) + "\n")
    for name in pipeline.redone_each_run:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, "stages", f"{name}.done"))
    if not shutil.which("fairseq-train"):  # the tools installed beside this Python, where PATH has none
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    if args.executor == "local":
        with served(os.path.join(out, "forkserver"), say) if args.forkserver else contextlib.nullcontext():
            LocalRunner(out, args.cores, say).run(build)
    else:
        SubmititRunner(out, "slurm" if args.executor == "slurm" else "local", cluster, args.cores, say).run(build)
    if args.only_data:
        say(f"{prog}: data ready in {family.data_folder()}")
    else:
        say(f"{prog}: table {out}/results.md, results.json, plot {out}/{family.plot}")
    return 0
