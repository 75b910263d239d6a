#!/usr/bin/env python
"""Training throughput in 2 processes against 1, through fairseq-train itself (issue #12).

A benchmark, not a test: it prints ratios measured in one run and asserts nothing. Both runs do the
same work per update: 1 process with --update-freq 2 and every thread, or 2 processes under torchrun
(gloo, legacy_ddp: the CPU line of the README) with the threads split between them, each taking every
other batch (fairseq's sharding), with the gradients all-reduced once per update. Throughput is target
tokens per second over the updates after --warmup, read from fairseq's per-update log lines (`wpb`
and `wps`, both over all processes), so start-up, data loading and the first updates' allocation do
not count.

    online   self_distill, exit 2 of a 6-layer decoder (--student-exits 2)
    offline  self_distill, a 6+3 student with the 6+6 online model as its frozen teacher (--teacher-path)

The data is the project's synthetic corpus (preprocess/make_toy_corpus.py) binarised by
fairseq-preprocess; the model transformer_iwslt_de_en-shaped (512 dims, 6+6 layers).

    python bench/bench_distributed.py --updates 24 --warmup 4 --max-tokens 1024
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import common  # bench/common.py

BIN = os.path.dirname(sys.executable)
TORCHRUN = ["--standalone", "--nproc_per_node", "2", "--no-python", "bash", "-c",
            'exec "$@" --ddp-backend legacy_ddp --distributed-backend gloo --distributed-init-method env:// '
            '--distributed-world-size "$WORLD_SIZE" --distributed-rank "$RANK" --distributed-no-spawn', "_"]
LINE = re.compile(r"\| INFO \| train_inner \| .*num_updates=\d+.*$")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--updates", type=int, default=24, help="updates per run")
    p.add_argument("--warmup", type=int, default=4, help="updates before the clock starts")
    p.add_argument("--max-tokens", type=int, default=1024, help="tokens per batch (per process)")
    p.add_argument("--train", type=int, default=6000, help="synthetic training sentence pairs")
    p.add_argument("--threads", type=int, default=0, help="threads in all (0: every CPU)")
    p.add_argument("--modes", default="online,offline", help="which of online, offline to run")
    args = p.parse_args(argv)
    if not 0 < args.warmup < args.updates:
        p.error("--warmup must be between 1 and --updates - 1")
    return args


def run(cmd, threads, log):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    p = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True)
    with open(log, "w") as f:
        f.write(p.stdout + p.stderr)
    if p.returncode != 0:
        sys.exit(f"bench_distributed: {' '.join(map(str, cmd[:3]))} failed (exit {p.returncode}); log: {log}")
    return p.stdout + p.stderr


def per_update(log_text):
    """{update: {field: value}} from fairseq's train_inner lines (--log-interval 1); rank 0 logs."""
    out = {}
    for line in log_text.splitlines():
        if LINE.search(line):
            fields = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e]+)", line)}
            out[int(fields["num_updates"])] = fields
    return out


def throughput(updates, first, last):
    """Target tokens per second over updates first+1 .. last. fairseq's `wall` has whole seconds only;
    `wps` is each update's own tokens per second (all processes' tokens), so an update took wpb / wps."""
    span = range(first + 1, last + 1)
    return sum(updates[u]["wpb"] for u in span) / sum(updates[u]["wpb"] / updates[u]["wps"] for u in span)


def main():
    args = parse_args()
    threads = args.threads or os.cpu_count() or 1
    for line in common.machine_lines(__file__):
        print(line)
    modes = [m for m in args.modes.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        raw, data = os.path.join(tmp, "raw"), os.path.join(tmp, "bin")
        subprocess.run([sys.executable, os.path.join(common.REPO, "preprocess", "make_toy_corpus.py"), raw,
                        "--train", str(args.train), "--valid", "100", "--test", "10"], check=True,
                       capture_output=True)
        subprocess.run([os.path.join(BIN, "fairseq-preprocess"), "--source-lang", "src", "--target-lang", "tgt",
                        "--trainpref", os.path.join(raw, "train"), "--validpref", os.path.join(raw, "valid"),
                        "--destdir", data, "--joined-dictionary", "--workers", "1"], check=True, capture_output=True)
        base = [os.path.join(BIN, "fairseq-train"), data, "--user-dir", os.path.join(common.REPO, "fairseq_selfteach"),
                "--arch", "transformer_iwslt_de_en", "--criterion", "self_distill", "--kd-alpha", "0.5",
                "--optimizer", "adam", "--lr", "5e-4", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "100",
                "--max-tokens", args.max_tokens, "--max-update", args.updates, "--cpu", "--log-format", "simple",
                "--log-interval", "1", "--seed", "1", "--num-workers", "0", "--no-save", "--disable-validation",
                "--required-batch-size-multiple", "1", "--dropout", "0.1"]
        teacher = os.path.join(tmp, "teacher")
        settings = {
            "online": ["--student-exits", "2"],
            "offline": ["--task", "self_distill_translation", "--teacher-path", os.path.join(teacher, "checkpoint_last.pt"),
                        "--decoder-layers", "3"],
        }
        if "offline" in modes:  # a teacher checkpoint of the 6+6 shape (a few updates suffice for timing)
            run(base[:base.index("--no-save")] + ["--max-update", 2, "--save-dir", teacher, "--student-exits", "2",
                                                  "--no-epoch-checkpoints", "--disable-validation"],
                threads, os.path.join(tmp, "teacher.log"))
        print(f"data: {args.train} synthetic pairs; --max-tokens {args.max_tokens} per process, "
              f"{args.updates} updates, clock from update {args.warmup}; {threads} threads in all")
        print()
        print(f"{'mode':<8} {'1 process tok/s':>16} {'2 processes tok/s':>18} {'2 ÷ 1':>7}")
        for mode in modes:
            one = per_update(run(base + settings[mode] + ["--update-freq", "2"], threads,
                                 os.path.join(tmp, f"{mode}.one.log")))
            two = per_update(run([os.path.join(BIN, "torchrun")] + TORCHRUN + base + settings[mode],
                                 max(1, threads // 2), os.path.join(tmp, f"{mode}.two.log")))
            a, b = throughput(one, args.warmup, args.updates), throughput(two, args.warmup, args.updates)
            same = all(one[u]["wpb"] == two[u]["wpb"] for u in range(1, args.updates + 1))
            print(f"{mode:<8} {a:>16.0f} {b:>18.0f} {b / a:>7.3f}"
                  + ("" if same else "   (tokens per update differ between the runs!)"))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
