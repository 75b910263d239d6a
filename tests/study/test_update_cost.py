"""The update-cost measurement: A B B A segments, fairseq's own updates per second, the first interval
dropped; a failed or too-short segment is one line. A fake fairseq-train (a script printing train_inner
lines at speeds it is told) stands in for the real one, whose speeds no test could predict."""
import json
import os
import stat
import subprocess
import sys

import pytest

from selfteach_pipeline.plan import PlanError
from selfteach_pipeline.update_cost import interval_speeds, main, split_commands

FAKE = """#!{python}
import sys
args = sys.argv[1:]
speed = args[args.index("--speed") + 1]
if speed == "fail":
    print("ValueError: bad option", file=sys.stderr); sys.exit(1)
updates, every = int(args[args.index("--max-update") + 1]), int(args[args.index("--log-interval") + 1])
assert "--no-save" in args and "--disable-validation" in args and "--save-dir" in args
with open(args[args.index("--order") + 1], "a") as f:
    f.write(speed + "\\n")
first = "9.0"  # start-up: must be dropped
for n in range(every, updates + 1, every):
    ups = first if n == every else speed
    print(f"2026-12-07 | INFO | train_inner | epoch 001:  {{n}} / 100 loss=5.0, ups={{ups}}, wpb=1800, num_updates={{n}}")
"""


@pytest.fixture
def fake_train(tmp_path):
    path = tmp_path / "fake-train"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_speeds_drop_the_first_interval():
    log = "| train_inner | epoch 001: 20 / 9 ups=3.5, x=1\n| train_inner | epoch 001: 40 / 9 ups=1.25, x\n| train | ups 7"
    assert interval_speeds(log) == [1.25]


def test_a_b_b_a_ratio_of_medians(fake_train, tmp_path):
    order = str(tmp_path / "order.txt")
    out = tmp_path / "cost.json"
    assert main(["--out", str(out), "--updates", "60", "--interval", "20", "--pairs", "2", "--",
                 fake_train, "--speed", "1.0", "--order", order, "::",
                 fake_train, "--speed", "1.5", "--order", order]) is None
    cost = json.loads(out.read_text())
    assert cost["ratio"] == 1.5 and cost["a_intervals"] == [1.0] * 8 and cost["b_intervals"] == [1.5] * 8
    assert open(order).read().split() == ["1.0", "1.5", "1.5", "1.0"] * 2


def test_refusals_are_one_line(fake_train, tmp_path):
    with pytest.raises(PlanError, match="separated by '::'"):
        split_commands(["fairseq-train", "x"])
    done = subprocess.run([sys.executable, "-m", "selfteach_pipeline.update_cost", "--out", str(tmp_path / "c.json"),
                           "--", fake_train, "--speed", "fail", "::", fake_train, "--speed", "1"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "ValueError: bad option" in done.stderr
    assert not os.path.exists(tmp_path / "c.json")


def test_a_trainer_that_is_not_on_path_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "selfteach_pipeline.update_cost", "--out", str(tmp_path / "c.json"),
                           "--", "no-such-trainer", "--x", "::", "no-such-trainer", "--y"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: update_cost: cannot start no-such-trainer") and "Traceback" not in done.stderr
    assert not os.path.exists(tmp_path / "c.json")
