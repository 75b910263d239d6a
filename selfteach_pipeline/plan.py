"""A pipeline as data: stages, each a command a user could copy, with what it needs and what it waits for.

Planning imports neither torch nor fairseq: a plan is a list of `Stage`s built in milliseconds, printed by
`--dry-run` and run by `selfteach_pipeline.runner`. A stage's command is an argv list (no shell); where
its output is the product (fairseq-generate's log: hypotheses on stdout, the summary on stderr)
`stdout` names the file, written under a
temporary name and renamed only after the command succeeded.
"""
import shlex
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple


class PlanError(ValueError):
    """A plan or a setting that cannot run: the message is the one line a user sees."""


@dataclass(frozen=True)
class Stage:
    name: str
    argv: Tuple[str, ...]
    after: Tuple[str, ...] = ()
    threads: int = 1  # cores the stage uses (OMP_NUM_THREADS); the runner never oversubscribes
    stdout: Optional[str] = None  # file the command's output (stdout and stderr) becomes, else the stage's log
    log: Optional[str] = None  # the stage's log (appended to) where not OUT/logs/NAME.log
    note: str = ""  # why the stage exists, printed by --dry-run

    def shell(self) -> str:
        """The stage as one line of shell, the threads and the redirection included."""
        line = f"OMP_NUM_THREADS={self.threads} " + shlex.join(self.argv)
        return line + (f" > {shlex.quote(self.stdout)} 2>&1" if self.stdout else "")


@dataclass
class Plan:
    stages: List[Stage] = field(default_factory=list)
    choices: List[str] = field(default_factory=list)  # what the pipeline chose on the user's behalf

    def add(self, name: str, argv: Sequence[str], after: Iterable[str] = (), **kw) -> str:
        after = tuple(a for a in after if a)
        known = {s.name for s in self.stages}
        if name in known:
            raise PlanError(f"two stages are named {name}")
        for dep in after:
            if dep not in known:
                raise PlanError(f"stage {name} waits for {dep}, which is not planned before it")
        self.stages.append(Stage(name, tuple(str(a) for a in argv), after, **kw))
        return name

    def choose(self, line: str) -> None:
        self.choices.append(line)

    def names(self) -> List[str]:
        return [s.name for s in self.stages]

    def __getitem__(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def dry_run(self) -> str:
        """Every choice, then every stage's command in order: a shell script a user could run."""
        lines = [f"# {c}" for c in self.choices]
        for s in self.stages:
            lines.append(f"# stage {s.name}" + (f" (after {', '.join(s.after)})" if s.after else "")
                         + (f": {s.note}" if s.note else ""))
            lines.append(s.shell())
        return "\n".join(lines) + "\n"


# --- settings ------------------------------------------------------------------------------------

def parse_overrides(pairs: Sequence[str], defaults: Dict[str, object], where: str = "--set",
                    not_used: Iterable[str] = ()) -> Dict[str, object]:
    """KEY=VALUE strings typed after the defaults' values; an unknown key or a wrong kind is one line.
    For the keys in not_used, "-" is None (a settings table's "not used")."""
    out: Dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise PlanError(f"{where} {pair!r}: expected KEY=VALUE")
        if key not in defaults:
            raise PlanError(f"{where} {key}: no such setting (known: {', '.join(sorted(defaults))})")
        out[key] = None if text == "-" and key in not_used else typed(key, text, defaults[key], where)
    return out


def typed(key: str, text: str, default: object, where: str):
    kind = type(default)
    try:
        if kind is bool:
            if text.lower() not in ("yes", "no", "true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("yes", "true", "1")
        if kind is tuple:  # comma-separated whole numbers (depths, seeds, schedules)
            values = tuple(int(v) for v in text.split(","))
            if not values or any(v < 0 for v in values):
                raise ValueError
            return values
        value = kind(text)
    except ValueError:
        what = {bool: "yes or no", tuple: "comma-separated whole numbers", int: "a whole number",
                float: "a number"}.get(kind, kind.__name__)
        raise PlanError(f"{where} {key}={text}: expected {what}") from None
    if kind in (int, float) and value < 0:
        raise PlanError(f"{where} {key}={text}: must not be negative")
    return value


def read_settings_file(path: str, defaults: Dict[str, object], not_used: Iterable[str] = ()) -> Dict[str, object]:
    """A user's settings: one `KEY VALUE` (or KEY=VALUE) per line, # comments; typed like --set."""
    pairs = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                key, value = (line.split("=", 1) if "=" in line else (line.split(None, 1) + [""])[:2])
                pairs.append((number, f"{key.strip()}={value.strip()}"))
    except OSError as e:
        raise PlanError(f"--settings {path}: {e.strerror}") from None
    out = {}
    for number, pair in pairs:
        out.update(parse_overrides([pair], defaults, where=f"{path}:{number}:", not_used=not_used))
    return out
