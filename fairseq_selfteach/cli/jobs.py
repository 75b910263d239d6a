"""`--jobs FILE` for the pipelines' per-model tools (export_student, score_translation, evaluate_glue):
many runs in one process.

Each run of a tool pays the fairseq import (about 9 s on 2 CPU cores), most of what scoring a small
model costs; a pipeline exporting or scoring twenty models pays it once with --jobs. Each non-blank line of FILE holds
one run's own options as tab-separated words (no quoting, nothing evaluated), appended to the options
given on the command line. The runs go in order; the first that fails stops the rest, naming its line.
"""
import sys

JOBS_HELP = ("a file of runs, one per line: each line's tab-separated words are that run's own options, "
             "added to the ones given here; all run in this process (one start-up for all)")


def split_jobs(argv):
    """(argv without `--jobs FILE`, FILE or None)."""
    for i, word in enumerate(argv):
        if word == "--jobs" and i + 1 < len(argv):
            return argv[:i] + argv[i + 2:], argv[i + 1]
        if word.startswith("--jobs="):
            return argv[:i] + argv[i + 1:], word.split("=", 1)[1]
    return argv, None


def run_jobs(run_one, argv, prog):
    """run_one(argv) -> exit status, once for argv or, with --jobs FILE, once per line of FILE."""
    argv = list(sys.argv[1:] if argv is None else argv)
    base, path = split_jobs(argv)
    if path is None:
        return run_one(base)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        print(f"{prog}: error: --jobs {path}: {e.strerror}", file=sys.stderr)
        return 2
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rc = run_one(base + line.split("\t"))
        except SystemExit as e:  # argparse refused the line's options (its message is above)
            rc = e.code if isinstance(e.code, int) else 2
        if rc:
            print(f"{prog}: error: {path}:{number}: that run failed (see above); the later lines were not run",
                  file=sys.stderr)
            return rc
    return 0
