#!/usr/bin/env python
"""What a fairseq process pays before it does any work, and how much of a run that is.

A benchmark, not a test: it prints figures measured in one run and asserts nothing. Each variant is
a fresh `python -c` process (one thread, OMP_NUM_THREADS=1), timed by the CPU seconds it used (user +
system, from the kernel's accounting of children: steadier than wall clock on a shared machine); the
variants run interleaved, --repeats rounds, and medians are printed:

    interpreter   python -c pass
    torch         import torch
    fairseq       import fairseq (torch included; fairseq imports every task and criterion it has,
                  scikit-learn among them)
    plugin        import fairseq_selfteach (what every tool of the package pays: the package's
                  __init__ registers its fairseq components, so it imports fairseq)
    train_cli     import fairseq_cli.train and the plugin (what fairseq-train --user-dir imports)
    optimizer     import torch, then build one torch.optim.Adam: torch imports torch._dynamo at the
                  first optimizer, as fairseq's trainer does before its first update

With --process-log FILE (the lines bench/process_log/sitecustomize.py writes, one per process of a
run), it also sums that run's processes: how many imported fairseq or built an optimizer, their CPU
seconds, and the start-up those imports account for at this machine's medians.

    python bench/bench_startup.py --repeats 5
    PYTHONPATH=bench/process_log SELFTEACH_PROCESS_LOG=/tmp/procs.jsonl bash scripts/test.sh
    python bench/bench_startup.py --repeats 5 --process-log /tmp/procs.jsonl
"""
import argparse
import collections
import json
import os
import resource
import statistics
import subprocess
import sys

import common  # bench/common.py

VARIANTS = {
    "interpreter": "pass",
    "torch": "import torch",
    "fairseq": "import fairseq",
    "plugin": "import fairseq_selfteach",
    "train_cli": "import fairseq_cli.train, fairseq_selfteach",
    "optimizer": "import torch; torch.optim.Adam(torch.nn.Linear(2, 2).parameters())",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="rounds of every variant (default 5)")
    p.add_argument("--process-log", help="a run's process log (bench/process_log/sitecustomize.py) to sum")
    return p.parse_args(argv)


def time_variants(repeats):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("SELFTEACH_PROCESS_LOG", None)  # this benchmark's own processes are not the run's
    seconds = collections.defaultdict(list)
    for _ in range(repeats):
        for name, code in VARIANTS.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            seconds[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {name: statistics.median(values) for name, values in seconds.items()}


def command_group(argv):
    """A process's tool: the script's or module's name (fairseq-train, glue_binarize.py, ...)."""
    words = [str(w) for w in argv]
    if words and words[0] == "-m" and len(words) > 1:
        return words[1]
    return os.path.basename(words[0]) if words and words[0] else "?"


def read_log(path):
    """The log's records; a missing file or a line that is not one of the hook's records is one line
    on stderr and exit status 1."""
    records = []
    try:
        with open(path) as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    record = json.loads(line)
                    missing = {"argv", "cpu_s", "fairseq", "torch._dynamo"} - set(record)
                    if missing:
                        raise ValueError(f"no {', '.join(sorted(missing))}")
                    records.append(record)
    except OSError as e:
        sys.exit(f"bench_startup.py: cannot read --process-log {path}: {e.strerror}")
    except ValueError as e:  # json.JSONDecodeError included
        sys.exit(f"bench_startup.py: {path}:{number}: not a record of bench/process_log/sitecustomize.py ({e})")
    return records


def summarise_log(path, records, medians):
    cpu = sum(r["cpu_s"] for r in records)
    with_fairseq = [r for r in records if r["fairseq"]]
    with_dynamo = [r for r in records if r["torch._dynamo"]]
    # each fairseq process paid at least the plugin's import (or fairseq's, which is most of it); each
    # that built an optimizer paid torch._dynamo's import on top
    startup = len(with_fairseq) * medians["fairseq"] + len(with_dynamo) * (medians["optimizer"] - medians["torch"])
    print(f"\nprocess log {path}: {len(records)} processes, {cpu:.0f} CPU s in all")
    print(f"  imported fairseq: {len(with_fairseq)} processes, {sum(r['cpu_s'] for r in with_fairseq):.0f} CPU s")
    print(f"  built an optimizer (torch._dynamo imported): {len(with_dynamo)}")
    print(f"  start-up they account for at this machine's medians: {startup:.0f} s "
          f"= {startup / cpu:.2f} of the processes' CPU")
    groups = collections.defaultdict(lambda: [0, 0.0, 0])
    for r in records:
        g = groups[command_group(r["argv"])]
        g[0] += 1
        g[1] += r["cpu_s"]
        g[2] += r["fairseq"]
    print(f"  {'tool':32s} {'processes':>9s} {'CPU s':>7s} {'with fairseq':>12s}")
    for name, (n, seconds, fs) in sorted(groups.items(), key=lambda kv: -kv[1][1])[:15]:
        print(f"  {name:32s} {n:9d} {seconds:7.0f} {fs:12d}")


def main(argv=None):
    args = parse_args(argv)
    print(common.command_line(__file__, argv))
    print(common.cpu_line())
    print(common.versions_line())
    print(f"{args.repeats} interleaved rounds of fresh processes, one thread each; medians of CPU seconds")
    records = read_log(args.process_log) if args.process_log else None  # refused before the minutes of timing
    medians = time_variants(args.repeats)
    print(f"\n{'variant':12s} {'median CPU s':>12s}")
    for name, value in medians.items():
        print(f"{name:12s} {value:12.2f}")
    dynamo = medians["optimizer"] - medians["torch"]
    print(f"\nfairseq's import beyond torch's            {medians['fairseq'] - medians['torch']:5.2f} s")
    print(f"the plugin's own import beyond fairseq's   {medians['plugin'] - medians['fairseq']:5.2f} s")
    print(f"torch._dynamo at the first optimizer       {dynamo:5.2f} s")
    print(f"a training process's fixed start-up        {medians['train_cli'] + dynamo:5.2f} s "
          f"(train_cli + torch._dynamo)")
    if records is not None:
        summarise_log(args.process_log, records, medians)


if __name__ == "__main__":
    sys.exit(main())
