"""Runs a plan on one machine: stages in dependency order, side by side on the cores, resumable.

OUT/stages/NAME.done is written (temporary name, then rename) only after a stage's command succeeded,
with its seconds and its command; running the same plan again skips every stage that has one, and a
training that was killed resumes from its own checkpoint (fairseq's checkpoint_last.pt). Each stage's
output goes to OUT/logs/NAME.log; every command run is appended to OUT/commands.sh.

The plan may grow as it runs (a sweep's pick decides the students' options): `run` calls `build()` again
whenever a round of stages has finished, and runs the stages that are new, until nothing is new.
"""
import json
import os
import subprocess
import sys
import time
from typing import Callable, Dict, List

from selfteach_pipeline.files import atomic_write_text
from selfteach_pipeline.plan import Plan, PlanError, Stage


class StageFailed(RuntimeError):
    pass


def marker(out: str, name: str) -> str:
    return os.path.join(out, "stages", f"{name}.done")


def is_done(out: str, name: str) -> bool:
    return os.path.exists(marker(out, name))


class LocalRunner:
    def __init__(self, out: str, cores: int = 0, echo=print):
        self.out = out
        self.cores = cores or os.cpu_count() or 1
        self.echo = echo

    def run(self, build: Callable[[], Plan]) -> Dict[str, float]:
        """Runs build()'s stages, rebuilding the plan after each round; returns {stage: seconds} run now."""
        seconds: Dict[str, float] = {}
        seen: set = set()
        while True:
            plan = build()
            for line in plan.choices:
                if line not in seen:
                    self.echo(f"pipeline: {line}")
                    seen.add(line)
            todo = [s for s in plan.stages if not is_done(self.out, s.name)]
            if not todo:
                return seconds
            seconds.update(self._round(plan, todo))

    def _round(self, plan: Plan, todo: List[Stage]) -> Dict[str, float]:
        waiting = list(todo)
        running: Dict[str, tuple] = {}
        seconds: Dict[str, float] = {}
        failed = None
        while waiting or running:
            free = self.cores - sum(s.threads for s, _, _ in running.values())
            for stage in list(waiting):
                if failed:
                    break
                ready = all(is_done(self.out, d) for d in stage.after)
                blocked = any(d in running or d in {w.name for w in waiting} for d in stage.after)
                if not ready and not blocked:
                    raise PlanError(f"stage {stage.name} waits for {', '.join(stage.after)}, which did not run")
                if ready and min(stage.threads, self.cores) <= free:
                    running[stage.name] = (stage, self._start(stage), time.time())
                    free -= stage.threads
                    waiting.remove(stage)
            if failed and not running:
                break
            time.sleep(0.2)
            for name, (stage, proc, start) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                if proc.returncode == 0:
                    seconds[name] = self._finish(stage, time.time() - start)
                elif failed is None:
                    failed = stage
                    waiting.clear()
        if failed:
            raise failure(self.out, failed)
        return seconds

    def _start(self, stage: Stage):
        self.echo(f"pipeline: {stage.name} started ({stage.threads} thread{'s' if stage.threads > 1 else ''})")
        return start_stage(self.out, stage)

    def _finish(self, stage: Stage, seconds: float) -> float:
        finish_stage(self.out, stage, seconds)
        self.echo(f"pipeline: {stage.name} done in {seconds:.0f} s")
        return seconds


def log_path(out: str, stage: Stage) -> str:
    return stage.log or os.path.join(out, "logs", f"{stage.name}.log")


def start_stage(out: str, stage: Stage) -> subprocess.Popen:
    """Starts the stage's command: its log in OUT/logs, its line in OUT/commands.sh, its threads set."""
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    log = open(log_path(out, stage), "a", encoding="utf-8")
    with open(os.path.join(out, "commands.sh"), "a", encoding="utf-8") as f:
        f.write(stage.shell() + "\n")
    env = dict(os.environ, OMP_NUM_THREADS=str(stage.threads), MKL_NUM_THREADS=str(stage.threads))
    stdout = log
    if stage.stdout:
        os.makedirs(os.path.dirname(stage.stdout) or ".", exist_ok=True)
        stdout = open(stage.stdout + ".tmp", "w", encoding="utf-8")
    try:
        return subprocess.Popen(stage.argv, stdout=stdout, stderr=subprocess.STDOUT if stage.stdout else log,
                                env=env, cwd=out)
    except OSError as e:
        raise StageFailed(f"stage {stage.name}: cannot run {stage.argv[0]}: {e.strerror}") from None
    finally:
        log.close()
        if stdout is not log:
            stdout.close()


def finish_stage(out: str, stage: Stage, seconds: float) -> None:
    """After success only: the output file under its own name, then the marker (both atomic)."""
    if stage.stdout:
        os.replace(stage.stdout + ".tmp", stage.stdout)
    atomic_write_text(marker(out, stage.name), json.dumps({"seconds": round(seconds, 1), "command": stage.shell()}) + "\n")


def failure(out: str, stage: Stage) -> StageFailed:
    # a stage whose output is a file logs into it: the unfinished file (.tmp) is what to read
    log = stage.stdout + ".tmp" if stage.stdout else log_path(out, stage)
    tail = _tail(log)
    return StageFailed(f"stage {stage.name} failed; its log: {log}" + (f" (last line: {tail})" if tail else ""))


def run_stage(out: str, stage: Stage) -> float:
    """Runs one stage to its end in this process's child (what a submitit job calls); its seconds."""
    if is_done(out, stage.name):
        return 0.0
    start = time.time()
    if start_stage(out, stage).wait() != 0:
        raise failure(out, stage)
    finish_stage(out, stage, time.time() - start)
    return time.time() - start


def _tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
        return lines[-1][:300] if lines else ""
    except OSError:
        return ""


def main_guard(fn, argv=None) -> int:
    """Runs a pipeline's main: its PlanError and StageFailed are one line on stderr, exit status 2 / 1."""
    try:
        return fn(argv) or 0
    except PlanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
