#!/usr/bin/env python
"""The KL study's whole plan on a toy corpus, its tools started as forks of one process (the default)
and as processes of their own (--no-forkserver): wall and CPU seconds, measured in one run.

A benchmark, not a test: it prints figures and asserts nothing but that both runs finished. It makes the
tests' toy corpus (preprocess/make_toy_corpus.py, prepared by preprocess/prepare_translation.py), then
runs `selfteach-kl-study` --rounds times each way, alternating which goes first, every run in a fresh
folder with the same tiny settings (one student seed: about 10 trainings, 10 exports, 13 decodings and
16 scorings). CPU seconds: the kernel's accounting of this process's children and everything they
waited for (the fork server's reaped forks included).

    python bench/bench_kl_study.py --rounds 1
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import common  # bench/common.py

TINY = ["--set", "teacher_updates=40", "--set", "student_updates=12", "--set", "student_seeds=1",
        "--set", "sweep_temperature=1", "--set", "embed_dim=32", "--set", "ffn_dim=64", "--set", "heads=2",
        "--set", "teacher_warmup=5", "--set", "student_warmup=2", "--set", "max_tokens=1024",
        "--set", "generate_batch_size=64", "--set", "update_cost_updates=8", "--set", "update_cost_pairs=1", "--cores", "2"]


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def prepare(root, env):
    toy, raw = os.path.join(root, "toy"), os.path.join(root, "raw")
    subprocess.run([sys.executable, os.path.join(common.REPO, "preprocess", "make_toy_corpus.py"), toy,
                    "--train", "200", "--valid", "10", "--test", "20"], check=True, env=env, stdout=subprocess.DEVNULL)
    os.makedirs(raw)
    for split in ("train", "test"):
        for old, new in (("src", "es"), ("tgt", "en")):
            shutil.copy(os.path.join(toy, f"{split}.{old}"), os.path.join(raw, f"{split}.{new}"))
    subprocess.run([sys.executable, os.path.join(common.REPO, "preprocess", "prepare_translation.py"), "--raw", raw,
                    "--src", "es", "--tgt", "en", "--out", os.path.join(root, "prep"), "--bpe", "subword_nmt",
                    "--bpe-merges", "50", "--max-len", "40", "--max-train-pairs", "0", "--valid-every", "12",
                    "--workers", "1"], check=True, env=env, stdout=subprocess.DEVNULL)
    return os.path.join(root, "prep")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=1, help="runs of each way (default 1)")
    args = p.parse_args(argv)
    print(common.command_line(__file__, argv))
    print(common.cpu_line())
    print(common.versions_line())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFTEACH_FORKSERVER")}
    tool = os.path.join(os.path.dirname(sys.executable), "selfteach-kl-study")
    root = tempfile.mkdtemp(prefix="bench-kl-study-")
    figures = {"served": [], "direct": []}
    try:
        data = prepare(root, env)
        for i in range(args.rounds):
            ways = ["served", "direct"] if i % 2 == 0 else ["direct", "served"]
            for way in ways:
                out = os.path.join(root, f"{way}{i}")
                before, start = children_cpu(), time.time()
                run = subprocess.run([tool, "--out", out, "--data", data, *TINY]
                                     + (["--no-forkserver"] if way == "direct" else []),
                                     env=env, capture_output=True, text=True)
                if run.returncode != 0:
                    print(f"error: the {way} run failed:\n{run.stderr[-2000:]}", file=sys.stderr)
                    return 1
                stages = len(os.listdir(os.path.join(out, "stages")))
                figures[way].append((time.time() - start, children_cpu() - before, stages))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'way':8s} {'stages':>6s} {'wall s':>8s} {'CPU s':>8s}")
    for way, rows in figures.items():
        for wall, cpu, stages in rows:
            print(f"{way:8s} {stages:6d} {wall:8.1f} {cpu:8.1f}")
    mean = {way: [sum(r[k] for r in rows) / len(rows) for k in (0, 1)] for way, rows in figures.items()}
    print(f"served ÷ direct: wall {mean['served'][0] / mean['direct'][0]:.2f}, CPU {mean['served'][1] / mean['direct'][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
