"""The recorded studies' runs (docs/results/*/run.py): each is a `Pipeline` subclass whose build() plans
the study's own stages with the pipeline's parts (the teacher, train, export, evaluate, report), run by
the pipelines' command line: the same resume, lanes, fork server, --dry-run and --executor.

    python docs/results/STUDY/run.py [OUT] [--STUDY-OPTION V …] [pipeline options: --cores, --dry-run, --set …]
"""
import argparse
import os
import re
from typing import Callable, List, Sequence

from selfteach_pipeline import pipeline_cli
from selfteach_pipeline.plan import PlanError
from selfteach_pipeline.startup import ROOT


def numbers(text: str, option: str, kind=int) -> List:
    """'200,400' (or '200 400', as the bash studies took them) → [200, 400]; anything else one line."""
    words = [w for w in re.split(r"[,\s]+", text.strip()) if w]
    try:
        values = [kind(w) for w in words]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values):
        raise PlanError(f"{option} takes a list of {'whole ' if kind is int else ''}numbers, e.g. 1,2 (not '{text}')")
    return values


def main(prog: str, doc: str, setting: str, default_out: str, make_pipeline: Callable, kind: Callable,
         add_options: Callable[[argparse.ArgumentParser], None], argv: Sequence[str] = None,
         extra: Callable[[argparse.Namespace], List[str]] = lambda args: []) -> int:
    """The study's own options (add_options), the run folder (default runs/DEFAULT_OUT), and every other
    option passed on to the family's pipeline for SETTING, after extra(args)'s; kind(args) gives the
    Pipeline subclass. Every run is on CPU, as the recorded ones were."""
    def make(argv):
        ap = pipeline_cli.Parser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 add_help=False)
        add_options(ap)  # first: a study's own positional (the run it reads) goes before OUT
        ap.add_argument("out", nargs="?", default=os.path.join(ROOT, "runs", default_out),
                        help=f"the run's folder (default runs/{default_out}); running again resumes it")
        args, rest = ap.parse_known_args(argv)
        if "-h" in rest or "--help" in rest:
            ap.print_help()
            raise SystemExit(0)
        return make_pipeline([setting, "--out", args.out, "--cpu", *extra(args), *rest], kind=kind(args))
    return pipeline_cli.main(prog, make, argv)
