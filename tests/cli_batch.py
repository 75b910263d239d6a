"""Several command-line runs in one process, each through the tool's own entry point, for tests that
need many short trainings: a fairseq-train process spends about 4 s of CPU importing torch and fairseq
before a toy training of a few updates that costs 1-2 s.

    python -m tests.cli_batch PLAN.json

PLAN.json is a list of runs, in order: {"argv": ["fairseq-train", ...], "log": "FILE"}. argv[0] names
the tool: fairseq-train, fairseq-generate and fairseq-preprocess run fairseq's own `cli_main` with
sys.argv set as the console script would; `python -m MODULE ...` runs MODULE's main(argv). What a run
prints and logs goes to its FILE, as `CMD > FILE 2>&1` would write it, and its exit status to FILE.rc.
A run that fails does not stop the later ones (each test reads its own runs' status).

Between trainings the state fairseq-train keeps in its functions is reset (the best validation loss of
save_checkpoint and should_stop_early), as a fresh process would have it; fairseq_cli.train.main resets
the metrics itself and seeds every random generator from --seed.
"""
import contextlib
import importlib
import json
import logging
import sys
import traceback

FAIRSEQ_CLIS = {"fairseq-train": "fairseq_cli.train", "fairseq-generate": "fairseq_cli.generate",
                "fairseq-preprocess": "fairseq_cli.preprocess"}


def _reset_fairseq_train_state():
    from fairseq import checkpoint_utils
    from fairseq_cli import train

    for function, names in ((checkpoint_utils.save_checkpoint, ("best",)),
                            (train.should_stop_early, ("best", "num_runs"))):
        for name in names:
            if hasattr(function, name):
                delattr(function, name)


def _run(argv) -> int:
    if argv[0] in FAIRSEQ_CLIS:
        module = importlib.import_module(FAIRSEQ_CLIS[argv[0]])
        if argv[0] == "fairseq-train":
            _reset_fairseq_train_state()
        saved, sys.argv = sys.argv, list(argv)
        try:
            module.cli_main()
        finally:
            sys.argv = saved
        return 0
    if argv[:2] == ["python", "-m"]:
        rc = importlib.import_module(argv[2]).main(list(argv[3:]))
        return int(rc or 0)
    raise ValueError(f"cli_batch: unknown tool {argv[0]!r}")


def run_one(argv, log_path) -> int:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    with open(log_path, "w", encoding="utf-8", buffering=1) as f:
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(name)s | %(message)s"))
        root.handlers, root.level = [handler], logging.INFO
        try:
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                rc = _run([str(a) for a in argv])
        except SystemExit as e:  # a parser's or a tool's refusal: its message is in the log
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception:  # as a CLI would: the traceback goes to the run's output
            traceback.print_exc(file=f)
            rc = 1
        finally:
            root.handlers, root.level = saved
    with open(log_path + ".rc", "w", encoding="utf-8") as f:
        f.write(f"{rc}\n")
    return rc


def main(argv=None) -> int:
    (plan_path,) = sys.argv[1:] if argv is None else argv
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    failed = [run["log"] for run in plan if run_one(run["argv"], run["log"])]
    for log in failed:
        print(f"cli_batch: failed: {log}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
