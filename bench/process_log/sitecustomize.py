"""Logs every Python process of a run, for bench/bench_startup.py --process-log (not imported otherwise).

Put this folder first on PYTHONPATH and name a log file; Python imports sitecustomize at start-up, so
each process then appends one JSON line when it exits: its command line (first 6 words), its wall and
CPU seconds, and whether it imported torch, fairseq, the plugin and torch._dynamo:

    PYTHONPATH=bench/process_log SELFTEACH_PROCESS_LOG=/tmp/procs.jsonl bash scripts/test.sh

A process killed by a signal writes nothing.
"""
import atexit
import json
import os
import sys
import time

_LOG = os.environ.get("SELFTEACH_PROCESS_LOG")
_START = time.time()


def _write_record():
    cpu = os.times()
    record = {"argv": sys.argv[:6], "wall_s": round(time.time() - _START, 3),
              "cpu_s": round(cpu.user + cpu.system, 3),
              **{name: name in sys.modules for name in ("torch", "fairseq", "fairseq_selfteach", "torch._dynamo")}}
    try:  # one short append per process: lines from processes running side by side do not mix
        with open(_LOG, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError:
        pass


if _LOG:
    atexit.register(_write_record)
