"""What one update of training A costs against one of training B, measured so that load hits both alike.

    python -m selfteach_pipeline.update_cost --out cost.json [--updates 80] [--pairs 2] \
        -- fairseq-train DATA ...A's options... :: fairseq-train DATA ...B's options...

Two trainings' wall-clock seconds measure the machine's load as much as the cost of an update: a
training run beside other work takes longer. Here A and B run short segments in the order A B B A (per
pair), so a load that changes slowly costs both the same; each segment's speed is fairseq's own
updates per second (`ups`) over its `train_inner` intervals after the first (start-up and the first
steps excluded). The ratio is median A seconds per update ÷ median B's. A B B A cancels a load that
drifts, not one that starves both: measured beside work of higher priority, the ratio shrinks toward 1
(its speeds then read the scheduler's share more than the work), so measure on a machine that is
otherwise idle, or at least not oversubscribed. Each segment adds
`--max-update`, `--log-interval`, `--no-save` and `--disable-validation` to its command line (the last
of a repeated option wins) and saves nothing.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from typing import List, Sequence

from selfteach_pipeline.files import atomic_write_text
from selfteach_pipeline.plan import PlanError
from selfteach_pipeline.runner import main_guard

UPS = re.compile(r"\| train_inner \|.*?\bups=([0-9.]+)")


def segment_argv(argv: Sequence[str], updates: int, interval: int, save_dir: str) -> List[str]:
    return [*argv, "--max-update", str(updates), "--log-interval", str(interval), "--no-save",
            "--disable-validation", "--save-dir", save_dir]


def interval_speeds(log: str) -> List[float]:
    """updates per second of each train_inner interval after the first (start-up and warm-up steps)."""
    return [float(v) for v in UPS.findall(log)][1:]


def run_segment(argv: Sequence[str], updates: int, interval: int) -> List[float]:
    with tempfile.TemporaryDirectory() as save_dir:
        try:
            done = subprocess.run(segment_argv(argv, updates, interval, save_dir), capture_output=True, text=True)
        except OSError as e:  # the trainer is not on PATH or not executable
            raise PlanError(f"update_cost: cannot start {argv[0]}: {e.strerror}") from None
    log = done.stdout + done.stderr
    if done.returncode != 0:
        tail = log.strip().splitlines()[-1:] or ["(no output)"]
        raise PlanError(f"update_cost: {argv[0]} exited {done.returncode}: {tail[0]}")
    speeds = interval_speeds(log)
    if not speeds:
        raise PlanError(f"update_cost: no train_inner speeds after the first interval in {argv[0]}'s log "
                        f"(--updates {updates} must exceed two log intervals of {interval})")
    return speeds


def split_commands(words: Sequence[str]):
    if "::" not in words:
        raise PlanError("update_cost: give two command lines separated by '::'")
    i = list(words).index("::")
    a, b = list(words[:i]), list(words[i + 1:])
    if not a or not b:
        raise PlanError("update_cost: both command lines are needed, A :: B")
    return a, b


def measure(a: Sequence[str], b: Sequence[str], updates: int, pairs: int, interval: int) -> dict:
    speeds = {"a": [], "b": []}
    for _ in range(pairs):
        for which in ("a", "b", "b", "a"):
            speeds[which] += run_segment(a if which == "a" else b, updates, interval)
    a_ups, b_ups = round(statistics.median(speeds["a"]), 4), round(statistics.median(speeds["b"]), 4)
    return {"ratio": round(b_ups / a_ups, 4), "a_updates_per_second": a_ups, "b_updates_per_second": b_ups,
            "a_intervals": speeds["a"], "b_intervals": speeds["b"], "order": "A B B A per pair",
            "pairs": pairs, "updates_per_segment": updates, "log_interval": interval,
            "a": " ".join(a), "b": " ".join(b)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m selfteach_pipeline.update_cost", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="the JSON written (ratio = A's seconds per update ÷ B's)")
    p.add_argument("--updates", type=int, default=80, help="updates per segment")
    p.add_argument("--interval", type=int, default=20, help="fairseq's --log-interval within a segment")
    p.add_argument("--pairs", type=int, default=2, help="A B B A rounds")
    p.add_argument("commands", nargs=argparse.REMAINDER, help="-- A's command line :: B's command line")
    args = p.parse_args(argv)
    words = args.commands[1:] if args.commands[:1] == ["--"] else args.commands
    a, b = split_commands(words)
    if args.updates < 2 * args.interval or args.pairs < 1:
        raise PlanError(f"update_cost: --updates {args.updates} must be at least 2 × --interval {args.interval}, "
                        f"--pairs at least 1")
    result = measure(a, b, args.updates, args.pairs, args.interval)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"update_cost: A's update costs {result['ratio']} × B's ({result['a_updates_per_second']} against "
          f"{result['b_updates_per_second']} updates/s, medians, A B B A × {args.pairs}); {args.out}")


if __name__ == "__main__":
    sys.exit(main_guard(main))
