"""The pipelines' settings tables (scripts/*_settings.tsv: one column per setting, one row per option),
read and typed without torch or fairseq, and the calculations the plans make from them: the sweep's grid
and pick, the depths a teacher can have, a budget split over stages.

A table's cells are typed by the family's KINDS (int, float, bool, tuple of whole numbers, str); "-"
means not used (None). `--set KEY=VALUE` and `--settings FILE` are typed the same way.
"""
import json
import os
import re
from typing import Dict, List, Sequence, Tuple

from selfteach_pipeline.plan import PlanError, parse_overrides, read_settings_file

ROW_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
PROTOTYPE = {int: 0, float: 0.0, bool: False, tuple: (), str: ""}  # what plan.typed types a value after


def read_table(path: str) -> Tuple[List[str], Dict[str, List[str]]]:
    """(setting names, {row: cells}), the table checked: a header row `setting`, as many cells in every
    row, row names lower-case identifiers given once, no empty cell."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise PlanError(f"cannot read the settings table {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise PlanError(f"the settings table {path} is not UTF-8 (byte {e.start})") from None
    header, rows = None, {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("#") or not line.strip():
            continue
        cells, where = line.split("\t"), f"{path} line {number}"
        if header is None:
            if cells[0] != "setting" or len(cells) < 2:
                raise PlanError(f"{where}: the first row must be the header `setting<TAB>NAME...`")
            header = cells[1:]
            if any(not name for name in header) or len(set(header)) != len(header):
                raise PlanError(f"{where}: a setting name is empty or given twice")
            continue
        if len(cells) != len(header) + 1:
            raise PlanError(f"{where}: {len(cells) - 1} cells, the header has {len(header)} settings")
        name = cells[0]
        if not ROW_NAME.match(name):
            raise PlanError(f"{where}: row name {name!r} is not a lower-case identifier ([a-z][a-z0-9_]*)")
        if name in rows:
            raise PlanError(f"{where}: row {name} given twice")
        if any(not cell for cell in cells[1:]):
            raise PlanError(f"{where}: row {name} has an empty cell (\"-\" means not used)")
        rows[name] = cells[1:]
    if header is None:
        raise PlanError(f"{path}: no header row `setting<TAB>NAME...`")
    return header, rows


def load(path: str, setting: str, kinds: Dict[str, type], overrides: Sequence[str] = (),
         settings_file: str = "") -> Dict[str, object]:
    """The table's column SETTING typed by KINDS, then a --settings file's values, then --set's."""
    header, rows = read_table(path)
    if setting not in header:
        raise PlanError(f"unknown setting {setting}; {path} has: {' '.join(header)}")
    if set(rows) != set(kinds):
        odd = sorted(set(rows) ^ set(kinds))
        raise PlanError(f"{path}: rows {', '.join(odd)}: the table's rows must be {', '.join(sorted(kinds))}")
    prototypes = {key: PROTOTYPE[kind] for key, kind in kinds.items()}
    column = header.index(setting)
    values = parse_overrides([f"{key}={cells[column]}" for key, cells in rows.items()], prototypes,
                             where=f"{path} ({setting}):", not_used=kinds)
    if settings_file:
        values.update(read_settings_file(settings_file, prototypes, not_used=kinds))
    values.update(parse_overrides(overrides, prototypes, not_used=kinds))
    return values


# --- what the plans calculate from the settings --------------------------------------------------

# what a sweep may vary: the distillation options of the criteria (core/distill.py's KDConfig), and the
# students' learning rate (a shallow student may need a higher one than the full model's recipe)
SWEEP_KEYS = {
    "kd_alpha": lambda v: 0.0 <= float(v) <= 1.0,
    "kd_temperature": lambda v: float(v) > 0,
    "kd_direction": lambda v: v in ("forward", "reverse", "symmetric"),
    "student_lr": lambda v: float(v) > 0,
}
LR_KEY = "student_lr"  # not a criterion option: the students' --lr


def sweep_grid(spec: str) -> List[Tuple[str, List[Tuple[str, str]]]]:
    """[(name, [(key, value), ...])]: every combination of the spec's values, the first key slowest."""
    axes: List[Tuple[str, List[str]]] = []
    for part in spec.split(";"):
        key, eq, values = part.strip().partition("=")
        if not eq or key not in SWEEP_KEYS:
            raise PlanError(f"sweep: {part.strip()!r} is not KEY=V,V with KEY one of {', '.join(SWEEP_KEYS)}")
        vals = [v.strip() for v in values.split(",")]
        for v in vals:
            try:
                ok = SWEEP_KEYS[key](v)
            except ValueError:
                ok = False
            if not ok:
                raise PlanError(f"sweep: {key}={v!r} is not a valid value")
        if len(set(vals)) != len(vals) or any(k == key for k, _ in axes):
            raise PlanError(f"sweep: {key} or one of its values is given twice in {spec!r}")
        axes.append((key, vals))
    points: List[List[Tuple[str, str]]] = [[]]
    for key, vals in axes:
        points = [p + [(key, v)] for p in points for v in vals]
    if len(points) > 16:
        raise PlanError(f"sweep: {len(points)} points in {spec!r}; at most 16")
    return [("_".join(f"{k}{v}" for k, v in p), p) for p in points]


def option_words(point: Sequence[Tuple[str, str]]) -> List[str]:
    """The criterion's options of a point (its student_lr is the students' --lr, not one of them)."""
    return [w for k, v in point if k != LR_KEY for w in ("--" + k.replace("_", "-"), v)]


def sweep_pick(spec: str, metric: str, results: Sequence[str], md: str, out_json: str) -> Tuple[str, List[Tuple[str, str]]]:
    """The grid's point (one results JSON per point, in grid order) with the highest METRIC (ties: the
    earlier point); the sweep's table (md) and rows (out_json, the report's --sweep) written atomically."""
    from selfteach_pipeline.files import atomic_write_text

    grid, rows = sweep_grid(spec), []
    for (name, point), path in zip(grid, results):
        try:
            with open(path, encoding="utf-8") as f:
                value = json.load(f)[metric]
        except (OSError, ValueError, KeyError, TypeError):
            raise PlanError(f"{path} is not a results row with {metric}") from None
        rows.append({"point": name, "options": dict(point), "metric": metric, "value": value,
                     "result": os.path.abspath(path)})
    best = max(range(len(rows)), key=lambda i: (rows[i]["value"], -i))
    for i, row in enumerate(rows):
        row["picked"] = i == best
    keys = [k for k, _ in grid[0][1]]
    lines = ["| " + " | ".join(keys + [metric + " (validation)", "picked"]) + " |", "|" + "---|" * (len(keys) + 2)]
    for row in rows:
        lines.append("| " + " | ".join([row["options"][k] for k in keys]
                                       + [f"{row['value']:.2f}", "✔" if row["picked"] else ""]) + " |")
    atomic_write_text(md, "\n".join(lines) + "\n")
    atomic_write_text(out_json, json.dumps(rows, indent=1) + "\n")
    return grid[best]


def check_depths(teacher: int, schedule: Sequence[int], students: Sequence[int], layers: str, where: str) -> None:
    """A student depth outside 1..teacher-1, or a gradual schedule that does not start at the teacher's
    depth and decrease at every step (a stage's teacher is deeper than its student), refused."""
    if not schedule or schedule[0] != teacher:
        raise PlanError(f"gradual schedule {','.join(map(str, schedule))} must start at the teacher's {teacher} "
                        f"{layers} ({where})")
    for up, down in zip(schedule, schedule[1:]):
        if down >= up:
            raise PlanError(f"gradual schedule {','.join(map(str, schedule))} must decrease at every step ({up} then "
                            f"{down}): each stage's student is shallower than its teacher ({where})")
    for k in list(students) + list(schedule[1:]):
        if not 1 <= k < teacher:
            raise PlanError(f"student depth {k} must be between 1 and {teacher - 1} (the teacher has {teacher} "
                            f"{layers}) ({where})")


def split_budget(total: int, stages: int) -> List[int]:
    """total updates split over `stages` as evenly as whole updates allow, the earlier ones one longer."""
    if total < stages:
        raise PlanError(f"a budget of {total} updates cannot be split over {stages} stages (at least 1 each)")
    base, extra = divmod(total, stages)
    return [base + (1 if i < extra else 0) for i in range(stages)]
