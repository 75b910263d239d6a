"""The local runner: dependency order, markers written only after success, resume, the cores never
oversubscribed, a failure in one line, a plan that grows as it runs, and kill -9 then the same command."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from selfteach_pipeline.plan import Plan
from selfteach_pipeline.runner import LocalRunner, StageFailed, is_done

PY = sys.executable


def step(out, name, seconds=0.0, fail=False):
    """A stage command: appends 'start NAME t' and 'end NAME t' to OUT/trace (after sleeping)."""
    code = (f"import time; f = open({os.path.join(out, 'trace')!r}, 'a'); f.write('start {name} %f\\n' % time.time());"
            f" f.flush(); time.sleep({seconds}); f.write('end {name} %f\\n' % time.time()); f.close();"
            f" raise SystemExit({1 if fail else 0})")
    return [PY, "-c", code]


def trace(out):
    with open(os.path.join(out, "trace")) as f:
        return [line.split() for line in f]


def test_order_markers_and_resume(tmp_path):
    out = str(tmp_path)
    plan = Plan()
    plan.add("a", step(out, "a", 0.3))
    plan.add("b", step(out, "b"), ["a"])
    plan.add("c", step(out, "c"), ["a"])
    plan.add("d", [PY, "-c", "print('hello'); import sys; print('to stderr', file=sys.stderr)"], ["b", "c"],
             stdout=os.path.join(out, "gen", "d.txt"))
    lines = []
    ran = LocalRunner(out, cores=2, echo=lines.append).run(lambda: plan)
    assert set(ran) == {"a", "b", "c", "d"}
    events = trace(out)
    ends = {name: float(t) for kind, name, t in events if kind == "end"}
    starts = {name: float(t) for kind, name, t in events if kind == "start"}
    assert starts["b"] >= ends["a"] and starts["c"] >= ends["a"]
    assert open(os.path.join(out, "gen", "d.txt")).read() == "hello\nto stderr\n"
    assert not os.path.exists(os.path.join(out, "gen", "d.txt.tmp"))
    done = json.load(open(os.path.join(out, "stages", "a.done")))
    assert done["seconds"] >= 0.3 and "OMP_NUM_THREADS=1" in done["command"]
    assert len(open(os.path.join(out, "commands.sh")).read().splitlines()) == 4
    assert LocalRunner(out, cores=2, echo=lines.append).run(lambda: plan) == {}  # all done: nothing runs
    assert len(trace(out)) == len(events)


def test_cores_are_never_oversubscribed(tmp_path):
    out = str(tmp_path)
    plan = Plan()
    plan.add("wide", step(out, "wide", 0.3), threads=2)
    for name in ("n1", "n2", "n3"):
        plan.add(name, step(out, name, 0.3))
    LocalRunner(out, cores=2, echo=lambda _: None).run(lambda: plan)
    spans = {}
    for kind, name, t in trace(out):
        spans.setdefault(name, {})[kind] = float(t)
    for t in [s["start"] + 0.01 for s in spans.values()]:
        busy = sum((2 if n == "wide" else 1) for n, s in spans.items() if s["start"] <= t < s["end"])
        assert busy <= 2


def test_a_failed_stage_is_one_line_and_leaves_no_marker_or_output(tmp_path):
    out = str(tmp_path)
    plan = Plan()
    plan.add("bad", [PY, "-c", "import sys; print('partial'); print('it broke', file=sys.stderr); sys.exit(3)"],
             stdout=os.path.join(out, "bad.txt"))
    plan.add("later", step(out, "later"), ["bad"])
    with pytest.raises(StageFailed, match=r"stage bad failed; its log: .*bad.txt.tmp \(last line: it broke\)$"):
        LocalRunner(out, cores=2, echo=lambda _: None).run(lambda: plan)
    assert not is_done(out, "bad") and not os.path.exists(os.path.join(out, "bad.txt"))
    assert not os.path.exists(os.path.join(out, "trace"))  # the stage after it never started


def test_a_plan_that_grows_as_its_stages_finish(tmp_path):
    out = str(tmp_path)
    pick = os.path.join(out, "pick.txt")

    def build():
        plan = Plan()
        plan.add("sweep", [PY, "-c", f"open({pick!r}, 'w').write('7')"])
        if os.path.exists(pick):
            plan.add(f"final_{open(pick).read()}", step(out, "final"), ["sweep"])
            plan.choose("picked 7")
        return plan

    lines = []
    ran = LocalRunner(out, cores=2, echo=lines.append).run(build)
    assert set(ran) == {"sweep", "final_7"} and "pipeline: picked 7" in lines


def test_kill_9_then_the_same_command_ends_as_the_uninterrupted_run(tmp_path):
    out = str(tmp_path / "run")
    script = tmp_path / "pipeline.py"
    script.write_text(
        "import os, sys\n"
        "from selfteach_pipeline.plan import Plan\n"
        "from selfteach_pipeline.runner import LocalRunner\n"
        f"out = {out!r}\n"
        "def stage(name, seconds):\n"
        "    return [sys.executable, '-c', f'import time; time.sleep({seconds}); "
        "open(\"{out}/{name}.txt\", \"w\").write(\"{name}\")']\n"
        "plan = Plan()\n"
        "plan.add('first', stage('first', 0))\n"
        "plan.add('slow', stage('slow', 30), ['first'])\n"
        "plan.add('last', stage('last', 0), ['slow'])\n"
        "LocalRunner(out, cores=2).run(lambda: plan)\n")
    os.makedirs(out)
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(out, "logs", "slow.log")) and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its running stage
    proc.wait()
    assert is_done(out, "first") and not is_done(out, "slow") and not os.path.exists(os.path.join(out, "last.txt"))
    first_marker = open(os.path.join(out, "stages", "first.done")).read()
    script.write_text(script.read_text().replace("stage('slow', 30)", "stage('slow', 0)"))
    subprocess.run([sys.executable, str(script)], check=True, stdout=subprocess.DEVNULL)
    assert all(is_done(out, n) for n in ("first", "slow", "last"))
    assert open(os.path.join(out, "stages", "first.done")).read() == first_marker  # not run again
    assert [open(os.path.join(out, f"{n}.txt")).read() for n in ("first", "slow", "last")] == ["first", "slow", "last"]


def test_a_served_run_starts_its_tools_as_forks_of_one_process(tmp_path, monkeypatch):
    """selfteach_pipeline.startup.served: the run's own fork server (none serves yet), its clients first on
    PATH; a plain fairseq tool then runs as a fork (the server's log says so), and PATH is restored."""
    from selfteach_pipeline.startup import BIN, served

    for key in ("SELFTEACH_FORKSERVER_SOCKET", "SELFTEACH_FORKSERVER_REAL_BIN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join([BIN, os.environ["PATH"]]))
    before = os.environ["PATH"]
    out = str(tmp_path)
    plan = Plan()
    plan.add("help", ["fairseq-preprocess", "--help"], stdout=os.path.join(out, "help.txt"))
    with served(os.path.join(out, "forkserver"), echo=lambda _: None):
        LocalRunner(out, cores=1, echo=lambda _: None).run(lambda: plan)
    assert "--trainpref" in open(os.path.join(out, "help.txt")).read()
    log = open(os.path.join(out, "forkserver", "forkserver.log")).read()
    assert "start fairseq-preprocess" in log and "fallback" not in log
    assert os.environ["PATH"] == before and "SELFTEACH_FORKSERVER_SOCKET" not in os.environ
