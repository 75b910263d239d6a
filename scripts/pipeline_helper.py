#!/usr/bin/env python3
"""The recorded studies' calculations (docs/results/*/run.sh call it through scripts/pipeline_lib.sh's
`helper`; the pipelines themselves are Python, selfteach_pipeline/). Each subcommand prints its answer
on stdout; an error is one line on stderr ("PROG: ...", PROG from --prog) and exit status 2, never a
traceback. Run by the project's environment's python3 (use_project_env first): it reads the tables
with the package's settings reader.

  settings TABLE SETTING             the table's column SETTING as NAME<TAB>VALUE lines, after checking
                                     the table (selfteach_pipeline/settings_table.py's read_table)
  json-get [--int] FILE KEY.PATH     one value of a JSON file (KEY.PATH: keys, or list indices, joined
                                     by dots); strings as they are, other values as JSON writes them
                                     (true, 3); --int: the value must be an integer
  updates EXAMPLES BATCH_SIZE EPOCHS epochs × ceil(examples / batch size)
  warmup RATIO UPDATES               max(1, round(ratio × updates))
  trained-updates CHECKPOINT         the updates a fairseq checkpoint was trained for (its last
                                     optimizer_history entry; torch and the package, safe loading)
"""
import argparse
import json
import math
import re
import sys

from selfteach_pipeline.plan import PlanError  # the project's environment (use_project_env) has the package
from selfteach_pipeline.settings_table import read_table


class Refused(Exception):
    """A one-line message for stderr."""


def cmd_settings(args):
    try:
        settings, rows = read_table(args.table)
    except PlanError as e:
        raise Refused(str(e))
    if args.setting not in settings:
        raise Refused(f"unknown setting {args.setting}; {args.table} has: {' '.join(settings)}")
    col = settings.index(args.setting)
    return "".join(f"{name}\t{cells[col]}\n" for name, cells in rows.items())


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
    p = sub.add_parser("updates", help="epochs × ceil(examples / batch size)")
    p.add_argument("examples")
    p.add_argument("batch_size")
    p.add_argument("epochs")
    p.set_defaults(run=cmd_updates)
    p = sub.add_parser("warmup", help="max(1, round(ratio × updates))")
    p.add_argument("ratio")
    p.add_argument("updates")
    p.set_defaults(run=cmd_warmup)
    p = sub.add_parser("trained-updates", help="the updates a fairseq checkpoint was trained for")
    p.add_argument("checkpoint")
    p.set_defaults(run=cmd_trained_updates)

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
