"""selfteach-kl-study: one teacher's run of the KL study, or (--report) the tables of several runs.

The plan is selfteach_pipeline/kl_study.py's, the runner selfteach_pipeline/runner.py's, the tables
selfteach_pipeline/kl_report.py's; this is the command line that joins them.
"""
import argparse
import contextlib
import json
import os
import shutil
import sys
from typing import Dict

from selfteach_pipeline import kl_study
from selfteach_pipeline.files import atomic_write_text
from selfteach_pipeline.kl_study import StudyPlan, check, defaults
from selfteach_pipeline.plan import PlanError, parse_overrides, read_settings_file
from selfteach_pipeline.runner import LocalRunner, main_guard
from selfteach_pipeline.startup import served
from selfteach_pipeline.submitit_runner import ClusterOptions, SubmititRunner, dry_run


def settings_from(args) -> Dict[str, object]:
    known = defaults(args.family)
    settings = dict(known)
    if args.settings:
        settings.update(read_settings_file(args.settings, known))
    settings.update(parse_overrides(args.set or [], known))
    check(settings)
    return settings


def main(argv=None) -> int:
    return main_guard(_main, argv)


def _main(argv) -> int:
    ap = argparse.ArgumentParser(prog="selfteach-kl-study", description=kl_study.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the run's folder (running again resumes it); with --report, "
                    "where the tables go")
    ap.add_argument("--family", choices=("translation", "classification"), default="translation",
                    help="translation: Bible Es→En verses, students of k decoder layers, sacreBLEU (default); "
                    "classification: sentiment snippets (SST-2 layout), a BERT's first k layers, accuracy")
    ap.add_argument("--data", help="translation: a prepared folder (bin/, tok/, ref/, bpe/ from "
                    "preprocess/prepare_translation.py); classification: a binarised GLUE-layout folder "
                    "(preprocess/glue_binarize.py, with a heldout split); instead of preparing the data")
    ap.add_argument("--debs", help="a folder with the sword-text-kjv/sparv .deb files instead of apt-get")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    ap.add_argument("--settings", help="a file of KEY VALUE lines: settings for this run")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores to use (default: all)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan's commands and choices (with "
                    "--executor slurm, each job's parameters); run nothing")
    ap.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default="local",
                    help="local: lanes on this machine (default); slurm: every stage a Slurm job through "
                    "submitit, with its dependencies; submitit-local: submitit's local processes")
    ap.add_argument("--no-forkserver", dest="forkserver", action="store_false",
                    help="local: start every tool as its own process (by default they are forks of one "
                    "process that imported torch and fairseq once: scripts/forkserver.py)")
    ap.add_argument("--slurm-partition", default="", help="the Slurm partition of every job")
    ap.add_argument("--time-min", type=int, default=240, help="each job's time limit in minutes (submitit)")
    ap.add_argument("--gpus-per-training", type=int, default=0, help="GPUs of each fairseq-train and fairseq-generate job (submitit); "
                    "with GPUs, --set cpu=no")
    ap.add_argument("--report", nargs="+", metavar="RUN", help="combine finished runs (one per teacher; a run "
                    "folder or its --archive) into OUT/results.json, contrasts.json and results.md instead of running")
    ap.add_argument("--archive", metavar="RUN", help="write what --report reads of the run RUN (no models) to OUT, "
                    "a .tar.gz, instead of running")
    args = ap.parse_args(argv)
    if args.report or args.archive:
        from selfteach_pipeline.kl_report import ReportError, archive, report  # numpy and sacreBLEU: only here
        try:
            return report(args.report, args.out) if args.report else archive(args.archive, args.out)
        except ReportError as e:
            raise PlanError(str(e)) from None
    settings = settings_from(args)
    out = os.path.abspath(args.out)
    study = StudyPlan(out, settings, os.path.abspath(args.data) if args.data else None, args.debs, args.cores,
                      args.family)
    cluster = ClusterOptions(args.slurm_partition, args.time_min, args.gpus_per_training)
    if args.dry_run:
        plan = study.build()
        sys.stdout.write(dry_run(plan, cluster) if args.executor == "slurm" else plan.dry_run())
        return 0
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "settings.json"), json.dumps({"family": args.family, **settings}, indent=1) + "\n")
    if not shutil.which("fairseq-train"):  # the tools installed beside this Python, where PATH has none
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    if args.executor == "local":
        with served(os.path.join(out, "forkserver"), print) if args.forkserver else contextlib.nullcontext():
            LocalRunner(out, args.cores).run(study.build)
    else:
        SubmititRunner(out, "slurm" if args.executor == "slurm" else "local", cluster, args.cores).run(study.build)
    print(f"selfteach-kl-study: run complete in {out}; combine runs with: selfteach-kl-study --report RUN... --out DIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
