#!/usr/bin/env python
"""Tiny fairseq-train runs through the fork server (scripts/forkserver.py) against the real
fairseq-train, in CPU and wall seconds.

A benchmark, not a test: it prints figures measured in one run and asserts nothing. It makes the tests'
toy corpus (preprocess/make_toy_corpus.py, binarised by fairseq-preprocess), starts a server with one
thread (OMP_NUM_THREADS=1, as each test worker's processes have), then runs --repeats rounds of the
same --updates-update training of the tests' tiny transformer with the plugin (--user-dir), directly
and through scripts/forkserver-bin/fairseq-train, interleaved. CPU seconds of a direct run: the kernel's
accounting of this process's children; of a served run: the client's plus the forked child's (the server
reaps it, so it shows in the server's cutime+cstime). The server's own start-up is paid once and printed
on its own line.

    python bench/bench_forkserver.py --repeats 5
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import importlib.util

import common  # bench/common.py


def _tests_helpers():
    """tests/helpers.py (the toy model's options and the server's start and stop), loaded from its file."""
    spec = importlib.util.spec_from_file_location("selfteach_test_helpers", os.path.join(common.REPO, "tests", "helpers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _tests_helpers()
BIN, FORKSERVER_BIN, OPTIM, SMALL, USER_DIR = (_helpers.BIN, _helpers.FORKSERVER_BIN, _helpers.OPTIM, _helpers.SMALL,
                                               _helpers.USER_DIR)
start_forkserver, stop_forkserver = _helpers.start_forkserver, _helpers.stop_forkserver


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="rounds of each way (default 5)")
    p.add_argument("--updates", type=int, default=1, help="updates per training (default 1)")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.updates < 1:
        p.error("--repeats and --updates take a whole number of at least 1")
    return args


def server_cpu(pid):
    """(own, reaped children's) CPU seconds of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def make_data(root, env):
    raw = os.path.join(root, "raw")
    subprocess.run([sys.executable, os.path.join(common.REPO, "preprocess", "make_toy_corpus.py"), raw,
                    "--train", "3000", "--valid", "100", "--test", "10"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(BIN, "fairseq-preprocess"), "--source-lang", "src", "--target-lang", "tgt",
                    "--trainpref", f"{raw}/train", "--validpref", f"{raw}/valid", "--destdir", f"{root}/bin",
                    "--joined-dictionary", "--workers", "1"], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return os.path.join(root, "bin")


def main(argv=None):
    args = parse_args(argv)
    print(common.command_line(__file__, argv))
    print(common.cpu_line())
    print(common.versions_line())
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env = dict(os.environ)
    root = tempfile.mkdtemp(prefix="bench-forkserver-")
    proc = None
    try:
        data = make_data(root, env)
        started = time.time()
        proc, sock = start_forkserver(root)
        ready = time.time() - started
        own, _ = server_cpu(proc.pid)
        print(f"server start-up (paid once per server): {own:.2f} CPU s, {ready:.2f} wall s")
        served_env = dict(env, SELFTEACH_FORKSERVER_SOCKET=sock, SELFTEACH_FORKSERVER_REAL_BIN=BIN)
        ways = {"direct": (os.path.join(BIN, "fairseq-train"), env),
                "served": (os.path.join(FORKSERVER_BIN, "fairseq-train"), served_env)}
        cpu = {way: [] for way in ways}
        wall = {way: [] for way in ways}
        for i in range(args.repeats):
            for way, (exe, run_env) in ways.items():
                save = os.path.join(root, f"{way}{i}")
                cmd = [exe, data, "--save-dir", save, "--arch", "transformer_iwslt_de_en", "--max-update",
                       str(args.updates), "--lr", "1e-3", "--criterion", "label_smoothed_cross_entropy",
                       "--user-dir", USER_DIR, *SMALL, *OPTIM]
                before, (_, served_before) = children_cpu(), server_cpu(proc.pid)
                t = time.time()
                p = subprocess.run(cmd, env=run_env, capture_output=True, text=True)
                wall[way].append(time.time() - t)
                (_, served_after) = server_cpu(proc.pid)
                cpu[way].append(children_cpu() - before + served_after - served_before)
                if p.returncode != 0 or not os.path.exists(os.path.join(save, "checkpoint_last.pt")):
                    print(f"error: the {way} training failed ({p.returncode}):\n{p.stderr[-2000:]}", file=sys.stderr)
                    return 1
        log = open(os.path.join(root, "forkserver.log")).read()
        assert log.count("start fairseq-train") == args.repeats, "a served run fell back to the real tool"
    finally:
        if proc is not None:
            stop_forkserver(proc)
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{args.repeats} interleaved rounds of a {args.updates}-update toy fairseq-train (one thread); medians")
    print(f"{'way':8s} {'CPU s':>7s} {'wall s':>7s}")
    for way in ways:
        print(f"{way:8s} {statistics.median(cpu[way]):7.2f} {statistics.median(wall[way]):7.2f}")
    print(f"served ÷ direct: CPU {statistics.median(cpu['served']) / statistics.median(cpu['direct']):.2f}, "
          f"wall {statistics.median(wall['served']) / statistics.median(wall['direct']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
