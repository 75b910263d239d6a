#!/usr/bin/env python
"""The GPU check (issue #34): what a lent GPU measures, in at most 8 minutes, as ONE markdown table.

Each part runs the project's own benchmarks or fairseq-train as child processes, under a time budget;
a part that would overrun is stopped (its process group killed) and its row says so. --parts picks them:

  train        fp16 ÷ fp32 time per update, in one process, interleaved, medians (bench_self_distill.py's
               variants and batches): the 6+6 transformer_iwslt_de_en teacher (plain label-smoothed CE)
               and the offline 6+3 student distilling from it (its frozen teacher's forward included);
               also P1 and P2 in fp16 and fp32. fp16 is fairseq's FP16Optimizer over fairseq's Adam, fp32
               fairseq's Adam, so the ratio is the precision alone
  bible        the translation demo's teacher (scripts/translation_settings.tsv, setting bible; the options
               of the translation pipeline, selfteach_pipeline/translation_family.py) through
               fairseq-train --fp16 on --bible-bin,
               --bible-updates updates without validation or checkpoints: updates/s and the last logged
               train loss; then the same updates in float32 if the budget still covers them
  speculative  bench_speculative.py on CUDA at batch size 1: self-speculative greedy ÷ plain greedy
               sentences/s, and whether the hypotheses were identical; the model is the demo's shape trained
               online (--student-exits all, fp16) on --bible-bin, or without it a random-init 6+6 model over
               synthetic data (bench_decoding.py's), whose drafts say nothing about acceptance
  decoding     bench_decoding.py --synthetic on CUDA: decoder-3 ÷ decoder-6 fairseq-generate time

    python bench/gpu_check.py --out gpu_check.md [--bible-bin DIR]
    python bench/gpu_check.py --dry-run [--bible-bin DIR]      # the commands and budgets; no CUDA needed

The table goes to --out (written as FILE.tmp, then renamed) and to stdout; each command's output to
FILE.logs/. Without a CUDA device it refuses in one line (exit 2).
"""
import argparse
import datetime
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import common  # bench/common.py: REPO, medians, interleaving, atomic JSON
from gpu_check_rows import ROWS, SPEC_DRAFTS, SPEC_ROUNDS, SPEC_SENTENCES

SCRIPT = "gpu_check"
BENCH = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(common.REPO, "scripts", "translation_settings.tsv")
PARTS = {"train": 80, "bible": 140, "speculative": 140, "decoding": 100}  # seconds each
TOTAL_BUDGET_S = 480  # the issue's 8 minutes; the parts' budgets add up to 460
NO_CUDA = f"{SCRIPT}: no CUDA device: this script measures a GPU (use --dry-run to see what it runs)"
TRAIN_STEPS, TRAIN_WARMUP = 30, 5
TRAIN_VARIANTS = ("full_lsce", "full_online", "student_lsce", "student_offline")
BIBLE_SETTINGS = ("src", "tgt", "teacher_decoder_layers", "student_depths", "kd_alpha", "kd_temperature")


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (`gpu_check: ...`) and exit status 2."""

    def error(self, message):
        print(f"{SCRIPT}: {message}", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv=None):
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", metavar="FILE", help="where the markdown table goes (FILE.tmp, then renamed)")
    p.add_argument("--bible-bin", metavar="DIR", help="the demo's binarised data (fairseq-preprocess output)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    p.add_argument("--bible-updates", type=int, default=300, help="updates of each Bible training")
    p.add_argument("--dry-run", action="store_true", help="print the parts, commands and budgets; run nothing")
    p.add_argument("--measure-updates", metavar="JSON", help=argparse.SUPPRESS)  # the train part's child
    p.add_argument("--build-synthetic", metavar="DIR", help=argparse.SUPPRESS)  # the speculative part's child
    args = p.parse_args(argv)
    parts = [x for x in args.parts.split(",") if x]
    unknown = [x for x in parts if x not in PARTS]
    if unknown or not parts:
        p.error(f"--parts {args.parts!r}: unknown part {', '.join(unknown) or '(none given)'}; "
                f"choose from {','.join(PARTS)}")
    args.parts = [x for x in PARTS if x in parts]  # the table's order, each once
    child = args.measure_updates or args.build_synthetic
    if not (args.dry_run or child or args.out):
        p.error("--out FILE is required (or --dry-run)")
    if args.bible_updates < 100:  # fairseq-train logs every 50 updates; the first interval is warm-up
        p.error(f"--bible-updates {args.bible_updates}: at least 100")
    if args.bible_bin:
        settings = bible_settings()
        need = [f"dict.{settings[k]}.txt" for k in ("src", "tgt")]
        if not all(os.path.isfile(os.path.join(args.bible_bin, n)) for n in need):
            p.error(f"--bible-bin {args.bible_bin}: no {' and '.join(need)} there (not fairseq-preprocess output)")
    return args


# ---------------------------------------------------------------------------------------------
# the demo's options, read the way the pipeline reads them (no second copy of them here)


def bible_settings():
    """{name: value} of BIBLE_SETTINGS, column bible of the settings table (selfteach_pipeline/settings_table.py)."""
    from selfteach_pipeline.settings_table import read_table

    settings, rows = read_table(TABLE)
    col = settings.index("bible")
    return {name: rows[name][col] for name in BIBLE_SETTINGS}


def bible_options():
    """The demo's teacher's fairseq-train options as the translation pipeline builds them for setting bible
    (selfteach_pipeline/translation_family.py), without device, precision or distributed options."""
    from types import SimpleNamespace

    from selfteach_pipeline import settings_table
    from selfteach_pipeline.translation_family import KINDS, TranslationFamily

    settings = settings_table.load(TABLE, "bible", KINDS)
    family = TranslationFamily("", "bible", settings, SimpleNamespace(train_options=list))
    return [str(word) for word in [*family.train_options(), *family.schedule(False), "--seed", 1]]


# ---------------------------------------------------------------------------------------------
# planning: what each part runs


@dataclass
class Step:
    key: str  # its output is kept under this name
    what: str
    cmd: list
    optional: bool = False  # runs only if the part's remaining budget covers the previous step's time


@dataclass
class Part:
    name: str
    title: str
    steps: list = field(default_factory=list)
    skipped: str = ""  # why it does not run

    @property
    def budget_s(self):
        return PARTS[self.name]

    @property
    def row(self):  # its rows' number in the table
        return str(list(PARTS).index(self.name) + 1)


def bible_train_cmd(args, options, settings, extra):
    """fairseq-train on --bible-bin with the demo's options and its teacher's depth; no validation."""
    return ([sys.executable, "-m", "fairseq_cli.train", args.bible_bin, "--max-update", str(args.bible_updates)]
            + options + ["--decoder-layers", settings["teacher_decoder_layers"], "--disable-validation",
                         "--source-lang", settings["src"], "--target-lang", settings["tgt"]] + extra)


def speculative_cmd(data, checkpoint, exit_layer):
    return [sys.executable, os.path.join(BENCH, "bench_speculative.py"), "--data", data, "--path", checkpoint,
            "--device", "cuda", "--exits", str(exit_layer), "--drafts", SPEC_DRAFTS, "--batch-sizes", "1",
            "--sentences", str(SPEC_SENTENCES), "--rounds", str(SPEC_ROUNDS)]


def plan(args, workdir):
    """[Part] for --parts, in the table's order; without --bible-bin the bible part is marked skipped."""
    me = [sys.executable, os.path.abspath(__file__)]
    parts = {
        "train": Part("train", "fp16 and fp32 updates of bench_self_distill.py's variants, interleaved", [
            Step("measure", "one child process on CUDA", me + ["--measure-updates", f"{workdir}/updates.json"])]),
        "bible": Part("bible", f"the Bible demo teacher, fairseq-train, {args.bible_updates} updates"),
        "speculative": Part("speculative", "self-speculative greedy vs plain greedy, batch size 1"),
        "decoding": Part("decoding", "decoder-3 vs decoder-6 fairseq-generate, synthetic data", [
            Step("decode", "bench_decoding.py --synthetic on CUDA", [
                sys.executable, os.path.join(BENCH, "bench_decoding.py"), "--device", "cuda", "--synthetic",
                "--sentences", "1000", "--repeats", "2", "--json", f"{workdir}/decoding.json"])]),
    }
    if args.bible_bin and {"bible", "speculative"} & set(args.parts):
        settings, options = bible_settings(), bible_options()
        teacher = ["--criterion", "label_smoothed_cross_entropy", "--no-save"]
        parts["bible"].steps = [
            Step("fp16", "--fp16", bible_train_cmd(args, options, settings, teacher + ["--fp16"])),
            Step("fp32", "float32, the same updates", bible_train_cmd(args, options, settings, teacher), True)]
        model_dir, depth = f"{workdir}/online_model", settings["student_depths"]
        online = ["--criterion", "self_distill", "--student-exits", "all", "--kd-alpha", settings["kd_alpha"],
                  "--kd-temperature", settings["kd_temperature"], "--fp16", "--save-dir", model_dir,
                  "--save-interval", "1000000"]  # one checkpoint, when training stops
        parts["speculative"].steps = [
            Step("train", "the demo's model trained online (--fp16), every exit a student",
                 bible_train_cmd(args, options, settings, online)),
            Step("decode", f"drafts from exit {depth} (the demo's student depth)",
                 speculative_cmd(args.bible_bin, f"{model_dir}/checkpoint_last.pt", depth))]
    else:
        parts["bible"].skipped = "skipped: no --bible-bin"
        synthetic = f"{workdir}/synthetic"
        parts["speculative"].steps = [
            Step("build", "random-init 6+6 model, synthetic test set (no --bible-bin)",
                 me + ["--build-synthetic", synthetic]),
            Step("decode", "drafts from exit 3",
                 speculative_cmd(f"{synthetic}/bin", f"{synthetic}/teacher_dec6.pt", 3))]
    return [parts[name] for name in args.parts]


def describe(parts):
    """The dry run's text: each part, its budget and its commands."""
    lines = [f"{SCRIPT}: at most {TOTAL_BUDGET_S} s in all; each part stopped at its budget"]
    for part in parts:
        lines.append(f"part {part.name} ({part.budget_s} s): {part.title}"
                     + (f" -- {part.skipped}" if part.skipped else ""))
        if part.skipped:
            continue
        for step in part.steps:
            lines.append(f"  {step.key}{' (if time allows)' if step.optional else ''}: {step.what}")
            lines.append("    " + " ".join(shlex.quote(str(c)) for c in step.cmd))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the table


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_table(machine, outcomes):
    """ONE markdown table: the machine's row, then each part's rows. machine: gpu, torch, cuda, fairseq,
    date, seconds; outcomes: [{part, seconds, budget, rows: [{row, measured, compares, result}]}]."""
    lines = ["| row | measured | compares | result | time / budget |", "|---|---|---|---|---|",
             f"| 0 | GPU: {cell(machine['gpu'])} | torch.cuda.get_device_name() | torch {cell(machine['torch'])}, "
             f"CUDA {cell(machine['cuda'])}, fairseq {cell(machine['fairseq'])}; {cell(machine['date'])} "
             f"| {machine['seconds']:.0f} s / {TOTAL_BUDGET_S} s |"]
    for o in outcomes:
        for i, r in enumerate(o["rows"]):
            spent = f"{o['seconds']:.0f} s / {o['budget']} s ({o['part']})" if i == 0 else ""
            lines.append(f"| {cell(r['row'])} | {cell(r['measured'])} | {cell(r['compares'])} "
                         f"| {cell(r['result'])} | {spent} |")
    return "\n".join(lines) + "\n"


def write_table(path, text):
    """The file appears only complete: written as PATH.tmp, then renamed."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# running


class Overrun(Exception):
    """A step would run past its part's budget."""


def run_step(step, deadline, log_path):
    """Run one step's command in its own process group; kill the group at the deadline (Overrun).
    Returns its output (stdout and stderr); a non-zero exit raises RuntimeError with its last line."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise Overrun
    with open(log_path, "w") as log:
        proc = subprocess.Popen(step.cmd, stdout=log, stderr=subprocess.STDOUT, cwd=common.REPO,
                                start_new_session=True)  # a group, so its own children die with it
        try:
            proc.wait(timeout=left)
        except BaseException as e:  # the budget's end, or ^C: the child's whole group goes with it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if isinstance(e, subprocess.TimeoutExpired):
                raise Overrun from None
            raise
    with open(log_path) as f:
        text = f.read()
    if proc.returncode != 0:
        last = next((line for line in reversed(text.splitlines()) if line.strip()), "no output")
        raise RuntimeError(f"{step.key} exited {proc.returncode}: {last.strip()[:200]} (log {log_path})")
    return text


def outcome(part, seconds, rows=None, status=""):
    """What format_table takes for one part: its rows, or one row saying why there are none."""
    rows = rows or [{"row": part.row, "measured": part.title, "compares": "", "result": status}]
    return {"part": part.name, "seconds": seconds, "budget": part.budget_s, "rows": rows}


def run_part(part, total_deadline, workdir, logdir):
    """Run the part's steps within its budget and read their results (outcome). An optional step that
    cannot run or fails leaves the others' rows, with a word in its own."""
    start = time.monotonic()
    deadline = min(start + part.budget_s, total_deadline)
    outputs, previous, status = {}, 0.0, ""
    if part.skipped:
        return outcome(part, 0, status=part.skipped)
    for step in part.steps:
        left = deadline - time.monotonic()
        if step.optional and left < 1.2 * previous:
            outputs[f"{step.key}:skipped"] = (f"skipped: {left:.0f} s of the budget left, the step before "
                                              f"took {previous:.0f} s")
            continue
        t0 = time.monotonic()
        print(f"{SCRIPT}: {part.name}: {step.key}: {step.what}", flush=True)
        try:
            outputs[step.key] = run_step(step, deadline, os.path.join(logdir, f"{part.name}.{step.key}.log"))
            previous = time.monotonic() - t0
            continue
        except Overrun:
            spent = time.monotonic() - start
            problem = f"stopped: {step.key} would overrun the {part.budget_s} s budget ({spent:.0f} s spent)"
        except RuntimeError as e:
            problem = f"failed: {e}"
        if not step.optional:
            status = problem
            break
        outputs[f"{step.key}:skipped"] = problem
    rows = None
    if not status:
        try:
            rows = ROWS[part.name](outputs, workdir)
        except (OSError, ValueError, KeyError) as e:
            status = f"failed: reading its results: {e}"
    return outcome(part, time.monotonic() - start, rows, status)


def measure_updates(path):
    """The train part's child: bench_self_distill.py's variants in fp16 and fp32, interleaved update by
    update on the same batches (fairseq's Adam in both, so the ratio is the precision alone)."""
    import bench_self_distill as bsd

    base = ["--device", "cuda", "--max-tokens", "4096", "--no-memory", "--steps", str(TRAIN_STEPS),
            "--warmup", str(TRAIN_WARMUP)]
    variants, dictionary = {}, None
    for precision, extra in (("fp32", ["--fairseq-optimizer"]), ("fp16", ["--precision", "fp16"])):
        args = bsd.parse_args(base + extra)
        bsd.quiet_and_threads(args)
        built, dictionary = bsd.build_variants(args, list(TRAIN_VARIANTS))
        variants.update({f"{v.name}/{precision}": v for v in built})
    batches = bsd.make_batches(args, dictionary)
    times, wall = common.interleaved(
        variants, TRAIN_STEPS, lambda key, step: variants[key].run(batches[step % len(batches)])["total"],
        warmup=TRAIN_WARMUP)
    common.write_json(path, {"median_s": {k: common.median(v) for k, v in times.items()},
                             "overflows": {k: v.overflows for k, v in variants.items()},
                             "steps": TRAIN_STEPS, "warmup": TRAIN_WARMUP, "wall_s": wall})


def build_synthetic(workdir):
    """The speculative part's child without --bible-bin: bench_decoding.py's random-init 6+6 teacher
    and its synthetic test set (src-len 20)."""
    import bench_decoding

    args = bench_decoding.parse_args(["--synthetic", "--sentences", str(SPEC_SENTENCES), "--src-len", "20"])
    os.makedirs(workdir, exist_ok=True)
    bench_decoding.build_synthetic(args, workdir)


def machine():
    import fairseq
    import torch

    return {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "fairseq": fairseq.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def main(argv=None):
    args = parse_args(argv)
    if args.measure_updates:
        return measure_updates(args.measure_updates)
    if args.build_synthetic:
        return build_synthetic(args.build_synthetic)
    if args.dry_run:
        print(describe(plan(args, "WORKDIR")))
        print(f"would write the table to {args.out or 'FILE'} (as .tmp, then renamed)")
        return 0
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    start = time.monotonic()
    info = machine()
    logdir = f"{args.out}.logs"
    os.makedirs(logdir, exist_ok=True)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as workdir:
        for part in plan(args, workdir):
            outcomes.append(run_part(part, start + TOTAL_BUDGET_S, workdir, logdir))
    info["seconds"] = time.monotonic() - start
    text = format_table(info, outcomes)
    write_table(args.out, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
