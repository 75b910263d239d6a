#!/usr/bin/env python
"""Decoding speed: fairseq-generate sentences/s of the decoder-3 student vs the 6-layer teacher.

This is a benchmark, not a test: it prints numbers and asserts nothing (issue #3's speed target:
student sentences/s >= 1.5 x teacher sentences/s, same beam and batch size, measured in one run).

Both models are decoded by the real fairseq-generate CLI (`python -m fairseq_cli.generate`, the
module behind the `fairseq-generate` entry point, run as a subprocess with this interpreter), without
--user-dir, with the same data, --beam, --batch-size and --required-batch-size-multiple 1. The
figures are fairseq's own: the line

    Translated N sentences (M tokens) in Ts (X sentences/s, Y tokens/s)

that fairseq-generate prints, whose timer covers generation only (task.inference_step per batch, the
first batch's warm-up included), not start-up, model loading or printing. The two models run
alternately, --repeats times each (teacher, student, student, teacher, ...), so drifts in machine
speed hit both alike; the median of each model's runs is reported, and

    ratio = median student sentences/s / median teacher sentences/s      (target >= 1.5)

Two modes:

  checkpoints   --teacher CKPT --student CKPT --data BIN
                trained plain fairseq checkpoints, e.g. the pipeline's models/teacher_dec6.pt and
                models/offline_dec3.pt, on BIN's --gen-subset (default test). Decoding options are
                the pipeline's (--max-len-a 1.5 --max-len-b 10), so each model stops where its
                beam search ends: a model that writes longer or shorter hypotheses is slower or
                faster for that reason too (the table shows tokens per sentence).
  --synthetic   (the default without checkpoints) a transformer_iwslt_de_en teacher with the real
                dimensions (d=512, FFN 1024, 4 heads, 6 encoder + 6 decoder layers, shared decoder
                input/output embeddings), randomly initialised, and its student with the first 3
                decoder layers (written by fairseq_selfteach.cli.export_student --decoder-layers 3),
                over a joined dictionary of --vocab types; a random test set of --sentences
                sentences of --src-len tokens binarised by fairseq-preprocess. The output length is
                forced (--min-len N --max-len-a 0 --max-len-b N, N = --tgt-len): every hypothesis
                has exactly N tokens + </s>, so both models run exactly the same number of decoder
                steps and the ratio is the architecture's cost alone (checked: every hypothesis's
                length is verified).

    python bench/bench_decoding.py                                   # synthetic, CPU
    python bench/bench_decoding.py --device cuda --synthetic --sentences 2000   # synthetic, GPU
    python bench/bench_decoding.py --device cuda --teacher RUN/models/teacher_dec6.pt \\
        --student RUN/models/offline_dec3.pt --data RUN/data/prep/bin
The CPU measurement for docs/benchmarks.md (2-core machine; one generate process at a time, 2 threads):
    python bench/bench_decoding.py --synthetic --threads 2 --repeats 3 --json /tmp/decoding_cpu.json
"""
import argparse
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import common  # bench/common.py: the machine's description, timing

TARGET = 1.5


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--teacher", help="teacher checkpoint (plain fairseq); with --student and --data")
    p.add_argument("--student", help="student checkpoint (plain fairseq)")
    p.add_argument("--data", help="binarised data folder (fairseq-preprocess output)")
    p.add_argument("--gen-subset", default="test", help="checkpoint mode: the split to decode")
    p.add_argument("--synthetic", action="store_true",
                   help="random-init teacher/student with the real dims, random test set, forced "
                        "output length (the default when no checkpoints are given)")
    common.add_device_option(p, help="cpu passes --cpu to fairseq-generate")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128, help="fairseq-generate --batch-size")
    p.add_argument("--repeats", type=int, default=3, help="fairseq-generate runs per model")
    p.add_argument("--threads", type=int, default=0,
                   help="OMP_NUM_THREADS / MKL_NUM_THREADS for the generate processes (0: inherit)")
    p.add_argument("--max-len-a", type=float, default=1.5, help="checkpoint mode (the pipeline's)")
    p.add_argument("--max-len-b", type=int, default=10, help="checkpoint mode (the pipeline's)")
    p.add_argument("--sentences", type=int, default=500, help="synthetic: test sentences")
    p.add_argument("--src-len", type=int, default=25, help="synthetic: source tokens per sentence")
    p.add_argument("--tgt-len", type=int, default=25,
                   help="synthetic: forced hypothesis length N (tokens before </s>)")
    p.add_argument("--vocab", type=int, default=8000,
                   help="synthetic: joined dictionary size, fairseq's 4 special symbols included")
    p.add_argument("--teacher-decoder-layers", type=int, default=6, help="synthetic")
    p.add_argument("--student-decoder-layers", type=int, default=3, help="synthetic")
    p.add_argument("--seed", type=int, default=1, help="synthetic: weights and data")
    p.add_argument("--workdir", help="synthetic: where to write the data and checkpoints "
                                     "(default: a temporary folder, removed afterwards)")
    p.add_argument("--json", metavar="OUT", help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    given = [x is not None for x in (args.teacher, args.student, args.data)]
    if any(given) and not all(given):
        p.error("checkpoint mode needs all of --teacher, --student and --data")
    if all(given) and args.synthetic:
        p.error("--synthetic builds its own models: drop --teacher/--student/--data")
    args.synthetic = not all(given)
    if args.repeats < 1 or args.beam < 1 or args.batch_size < 1:
        p.error("--repeats, --beam and --batch-size must be >= 1")
    if args.synthetic and (args.sentences < 1 or args.src_len < 1 or args.tgt_len < 1
                           or args.vocab < 10):
        p.error("need --sentences, --src-len, --tgt-len >= 1 and --vocab >= 10")
    common.check_device(p, args)
    return args


def child_env(args):
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    return env


# ---------------------------------------------------------------------------------------------
# synthetic models and data


def build_synthetic(args, workdir):
    """Random test set (binarised by fairseq-preprocess) + teacher and student checkpoints."""
    import torch
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    from fairseq_selfteach.cli.export_student import export
    from fairseq_selfteach.core.checkpoint_io import atomic_torch_save
    from fairseq_selfteach.core.export import checkpoint_skeleton

    rng = random.Random(args.seed)
    nspecial = 4  # <s> <pad> </s> <unk>
    words = [f"w{i}" for i in range(args.vocab - nspecial)]
    text = os.path.join(workdir, "text")
    os.makedirs(text, exist_ok=True)
    with open(os.path.join(text, "dict.txt"), "w") as f:  # fairseq's format: "symbol count"
        f.writelines(f"{w} 1\n" for w in words)
    for lang, length in (("src", args.src_len), ("tgt", args.tgt_len)):
        with open(os.path.join(text, f"test.{lang}"), "w") as f:
            for _ in range(args.sentences):
                f.write(" ".join(rng.choice(words) for _ in range(length)) + "\n")
    bin_dir = os.path.join(workdir, "bin")
    dict_txt = os.path.join(text, "dict.txt")
    cmd = [sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", "src",
           "--target-lang", "tgt", "--testpref", os.path.join(text, "test"), "--srcdict", dict_txt,
           "--tgtdict", dict_txt, "--destdir", bin_dir, "--workers", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=child_env(args))
    if out.returncode != 0:
        raise RuntimeError(f"fairseq-preprocess failed:\n{out.stderr[-3000:]}")

    # the teacher, built through fairseq's own option parser, task and model registry
    train_args = [bin_dir, "--task", "translation", "--source-lang", "src", "--target-lang", "tgt",
                  "--arch", "transformer_iwslt_de_en", "--share-decoder-input-output-embed",
                  "--decoder-layers", str(args.teacher_decoder_layers), "--seed", str(args.seed),
                  "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam"]
    with warnings.catch_warnings():  # hydra's deprecation notices about fairseq's config files
        warnings.simplefilter("ignore")
        ns = options.parse_args_and_arch(options.get_training_parser(), train_args)
        cfg = convert_namespace_to_omegaconf(ns)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(args.seed)
    model = task.build_model(cfg.model)
    # what fairseq's trainer writes (Trainer.state_dict), minus the optimizer state: a fresh model
    plain_cfg = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for key, part in plain_cfg.items():
        if isinstance(part, argparse.Namespace):
            plain_cfg[key] = dict(vars(part))
    raw = os.path.join(workdir, "raw_teacher.pt")
    atomic_torch_save(
        checkpoint_skeleton(plain_cfg, model.state_dict(), "label_smoothed_cross_entropy", {}), raw
    )
    del model
    # both through the project's exporter: the same writer, plain fairseq checkpoints
    teacher = os.path.join(workdir, f"teacher_dec{args.teacher_decoder_layers}.pt")
    student = os.path.join(workdir, f"student_dec{args.student_decoder_layers}.pt")
    export(raw, teacher)
    export(raw, student, decoder_layers=args.student_decoder_layers)
    os.remove(raw)
    return teacher, student, bin_dir


# ---------------------------------------------------------------------------------------------
# one fairseq-generate run


def generate_cmd(args, ckpt, data):
    cmd = [sys.executable, "-m", "fairseq_cli.generate", data, "--path", ckpt,
           "--gen-subset", "test" if args.synthetic else args.gen_subset,
           "--beam", str(args.beam), "--batch-size", str(args.batch_size),
           "--required-batch-size-multiple", "1"]
    if args.synthetic:
        n = str(args.tgt_len)
        cmd += ["--min-len", n, "--max-len-a", "0", "--max-len-b", n]
    else:
        cmd += ["--max-len-a", str(args.max_len_a), "--max-len-b", str(args.max_len_b)]
    if args.device == "cpu":
        cmd.append("--cpu")
    return cmd


def run_generate(args, cmd):
    from fairseq_selfteach.cli.generate_log import SPEED, parse_generate_output

    t0 = time.perf_counter()
    # from /: the checkpoint must load without the plugin (no --user-dir, nothing imported)
    out = subprocess.run(cmd, capture_output=True, text=True, env=child_env(args), cwd="/")
    wall = time.perf_counter() - t0
    text = out.stdout + out.stderr
    m = SPEED.search(text)
    if out.returncode != 0 or m is None:
        raise RuntimeError(f"fairseq-generate failed (exit {out.returncode}): "
                           f"{' '.join(shlex.quote(c) for c in cmd)}\n{text[-3000:]}")
    hyps, _speed = parse_generate_output(out.stdout.splitlines())
    hyp_lens = [len(text.split()) for text in hyps.values()]
    return {
        "sentences": int(m.group(1).replace(",", "")),
        "tokens": int(m.group(2).replace(",", "")),
        "gen_seconds": float(m.group(3)),
        "sentences_per_s": float(m.group(4)),
        "tokens_per_s": float(m.group(5)),
        "hypotheses": len(hyp_lens),
        "hyp_tokens_min": min(hyp_lens) if hyp_lens else None,
        "hyp_tokens_max": max(hyp_lens) if hyp_lens else None,
        "process_wall_seconds": wall,
    }


def checkpoint_info(path):
    from fairseq_selfteach.cli.param_count import count_parameters
    from fairseq_selfteach.core.checkpoint_io import load_checkpoint
    from fairseq_selfteach.core.layer_map import layer_count

    state = load_checkpoint(path)
    model = state["model"]
    return {
        "path": path,
        "encoder_layers": layer_count(model, "encoder.layers"),
        "decoder_layers": layer_count(model, "decoder.layers"),
        "parameters": int(count_parameters(model)["total"]),
    }


def machine_lines(args, argv=None):
    threads = args.threads or f"inherited ({os.environ.get('OMP_NUM_THREADS', 'torch default')})"
    return common.machine_lines(__file__, argv, device=args.device,
                                versions_tail=f"; generate threads: {threads}")


def main(argv=None):
    args = parse_args(argv)
    report = {"machine": machine_lines(args, argv), "device": args.device, "beam": args.beam,
              "batch_size": args.batch_size, "repeats": args.repeats, "target": TARGET,
              "mode": "synthetic" if args.synthetic else "checkpoints"}
    for line in report["machine"]:
        print(line)
    workdir = None
    try:
        if args.synthetic:
            workdir = args.workdir or tempfile.mkdtemp(prefix="bench_decoding.")
            os.makedirs(workdir, exist_ok=True)
            t0 = time.perf_counter()
            teacher, student, data = build_synthetic(args, workdir)
            print(f"synthetic: random test set of {args.sentences} sentences x {args.src_len} source "
                  f"tokens, joined dictionary of {args.vocab} types; random-init "
                  f"transformer_iwslt_de_en teacher and its first-{args.student_decoder_layers}-"
                  f"decoder-layer student (built in {time.perf_counter() - t0:.0f} s)")
            print(f"forced output length: --min-len {args.tgt_len} --max-len-a 0 --max-len-b "
                  f"{args.tgt_len}: every hypothesis is {args.tgt_len} tokens + </s>, so both "
                  f"models run the same number of decoder steps; the ratio is the architecture's "
                  f"cost alone")
        else:
            teacher, student, data = args.teacher, args.student, args.data
            print(f"checkpoints: decoding {data} subset {args.gen_subset} with the pipeline's "
                  f"--max-len-a {args.max_len_a} --max-len-b {args.max_len_b}")
        models = {"teacher": checkpoint_info(teacher), "student": checkpoint_info(student)}
        cmds = {name: generate_cmd(args, info["path"], data) for name, info in models.items()}
        report["models"] = models
        report["commands"] = {n: " ".join(shlex.quote(c) for c in cmd) for n, cmd in cmds.items()}
        print(f"fairseq-generate --beam {args.beam} --batch-size {args.batch_size} "
              f"--required-batch-size-multiple 1 on {args.device}, {args.repeats} runs per model, "
              f"interleaved (teacher, student, student, teacher, ...)")
        for name in models:
            print(f"  {name}: {report['commands'][name]}")
        sys.stdout.flush()

        def one_run(name, r):
            res = run_generate(args, cmds[name])
            print(f"  run {r + 1} {name:<8} {res['sentences']} sentences, {res['tokens']} tokens "
                  f"in {res['gen_seconds']:.1f} s: {res['sentences_per_s']:.2f} sentences/s, "
                  f"{res['tokens_per_s']:.1f} tokens/s (process {res['process_wall_seconds']:.1f} s)")
            sys.stdout.flush()
            return res

        # teacher, student, student, teacher, ...
        runs, report["timing_wall_seconds"] = common.interleaved(["teacher", "student"],
                                                                 args.repeats, one_run)
    finally:
        if workdir and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    problems = []
    for name, rs in runs.items():
        sents = {r["sentences"] for r in rs}
        if len(sents) != 1 or any(r["hypotheses"] != r["sentences"] for r in rs):
            problems.append(f"{name}: runs decoded different numbers of sentences/hypotheses")
        if args.synthetic and any(r["hyp_tokens_min"] != args.tgt_len
                                  or r["hyp_tokens_max"] != args.tgt_len for r in rs):
            problems.append(f"{name}: a hypothesis is not exactly {args.tgt_len} tokens long")
    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "sentences_per_s": common.median(r["sentences_per_s"] for r in rs),
            "tokens_per_s": common.median(r["tokens_per_s"] for r in rs),
            "sentences_per_s_runs": [r["sentences_per_s"] for r in rs],
            "sentences": rs[0]["sentences"],
            "tokens_per_sentence": common.median(r["tokens"] / r["sentences"] for r in rs),
        }
    ratio = summary["student"]["sentences_per_s"] / summary["teacher"]["sentences_per_s"]
    tok_ratio = summary["student"]["tokens_per_s"] / summary["teacher"]["tokens_per_s"]
    verdict = "PASS" if ratio >= TARGET else "MISS"
    report.update(runs=runs, summary=summary, ratio=ratio, tokens_per_s_ratio=tok_ratio,
                  verdict=verdict, problems=problems)

    print()
    print(f"{'model':<8} {'enc+dec':>7} {'params':>11} {'sentences':>9} {'tok/sent':>8} "
          f"{'sent/s (median)':>15} {'tok/s (median)':>14}   sent/s per run")
    for name in ("teacher", "student"):
        m, s = models[name], summary[name]
        per_run = ", ".join(f"{x:.2f}" for x in s["sentences_per_s_runs"])
        print(f"{name:<8} {m['encoder_layers']:>3}+{m['decoder_layers']:<3} {m['parameters']:>11,} "
              f"{s['sentences']:>9} {s['tokens_per_sentence']:>8.1f} {s['sentences_per_s']:>15.2f} "
              f"{s['tokens_per_s']:>14.1f}   {per_run}")
    print(f"(timing loop wall time {report['timing_wall_seconds']:.0f} s)")
    print()
    print(f"ratio student / teacher sentences/s (medians) = {ratio:.3f}   "
          f"(target >= {TARGET}: {verdict}; tokens/s ratio {tok_ratio:.3f})")
    for problem in problems:
        print(f"WARNING: {problem}")
    if args.json:
        common.write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
