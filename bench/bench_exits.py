#!/usr/bin/env python
"""Decoding speed at every exit of one model: fairseq-generate --exit-layer K, each exit ÷ the whole model.

This is a benchmark, not a test: it prints numbers and asserts nothing (issue #14's anydepth table:
sentences/s per exit of one online checkpoint). Each exit K is decoded by the real fairseq-generate CLI
(`python -m fairseq_cli.generate` with --user-dir fairseq_selfteach --task self_distill_translation
--exit-layer K, run from / as a subprocess), with the same data, --beam, --batch-size and the pipeline's
--max-len-a 1.5 --max-len-b 10. The figures are fairseq's own `Translated N sentences ... (X
sentences/s)` line, whose timer covers generation only. The exits run interleaved, --repeats times
each (1, 2, ..., L, L, ..., 1, ...), and the median of each exit's runs is reported, with

    ratio(K) = median sentences/s at exit K / median sentences/s at exit L (the whole model)

Each exit stops where its own beam search ends, so an exit that writes longer hypotheses is slower for
that reason too: the table shows tokens per sentence beside the speed.

    python bench/bench_exits.py --checkpoint RUN/models/anydepth_s1/checkpoint_best.pt \\
        --data RUN/data/prep/bin --threads 2 --repeats 3 --json /tmp/exits.json
"""
import argparse
import os
import shlex
import sys

import common  # bench/common.py: the machine's description, timing
from bench_decoding import child_env, generate_cmd, run_generate

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint trained with exits (e.g. the pipeline's "
                                                       "models/anydepth_s1/checkpoint_best.pt)")
    p.add_argument("--data", required=True, help="binarised data folder (fairseq-preprocess output)")
    p.add_argument("--exit-layers", help="comma list of exits (default: every decoder layer, 1..L)")
    p.add_argument("--gen-subset", default="test", help="the split to decode")
    common.add_device_option(p, help="cpu passes --cpu to fairseq-generate")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128, help="fairseq-generate --batch-size")
    p.add_argument("--repeats", type=int, default=3, help="fairseq-generate runs per exit")
    p.add_argument("--threads", type=int, default=0,
                   help="OMP_NUM_THREADS / MKL_NUM_THREADS for the generate processes (0: inherit)")
    p.add_argument("--max-len-a", type=float, default=1.5, help="the pipeline's")
    p.add_argument("--max-len-b", type=int, default=10, help="the pipeline's")
    p.add_argument("--json", metavar="OUT", help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.beam < 1 or args.batch_size < 1:
        p.error("--repeats, --beam and --batch-size must be >= 1")
    common.check_device(p, args)
    args.synthetic = False  # bench_decoding.generate_cmd's checkpoint mode
    return args


def exit_info(path, exits):
    """{K: parameters of the first K decoder layers' model}, and the decoder's depth."""
    from fairseq_selfteach.cli.param_count import count_parameters
    from fairseq_selfteach.core.checkpoint_io import load_checkpoint
    from fairseq_selfteach.core.layer_map import layer_count

    model = load_checkpoint(path)["model"]
    depth = layer_count(model, "decoder.layers")
    exits = exits or list(range(1, depth + 1))
    bad = [k for k in exits if not 1 <= k <= depth]
    if bad:
        raise SystemExit(f"bench_exits: --exit-layers {bad[0]}: {path} has {depth} decoder layers (1..{depth})")
    encoder = layer_count(model, "encoder.layers")
    return depth, {k: int(count_parameters(model, {"encoder.layers": encoder, "decoder.layers": k})["total"])
                   for k in exits}


def main(argv=None):
    args = parse_args(argv)
    exits = [int(k) for k in args.exit_layers.split(",")] if args.exit_layers else None
    depth, params = exit_info(args.checkpoint, exits)
    machine = common.machine_lines(__file__, argv, device=args.device, versions_tail=(
        f"; generate threads: {args.threads or 'inherited'}"))
    for line in machine:
        print(line)
    plugin = ["--user-dir", os.path.join(REPO, "fairseq_selfteach"), "--task", "self_distill_translation"]
    cmds = {k: generate_cmd(args, args.checkpoint, args.data) + plugin + ["--exit-layer", str(k)] for k in params}
    print(f"{args.checkpoint}: {depth} decoder layers; decoding {args.data} subset {args.gen_subset} at exits "
          f"{', '.join(map(str, params))}, --beam {args.beam} --batch-size {args.batch_size}, {args.repeats} runs "
          f"each, interleaved")
    print(f"  e.g. {' '.join(shlex.quote(c) for c in cmds[max(params)])}")
    sys.stdout.flush()

    def one_run(k, r):
        res = run_generate(args, cmds[k])
        print(f"  run {r + 1} exit {k}: {res['sentences']} sentences, {res['tokens']} tokens in "
              f"{res['gen_seconds']:.1f} s: {res['sentences_per_s']:.2f} sentences/s")
        sys.stdout.flush()
        return res

    runs, wall = common.interleaved(list(params), args.repeats, one_run)
    full = max(params)
    summary = {k: {"params": params[k], "sentences_per_s": common.median(r["sentences_per_s"] for r in rs),
                   "tokens_per_sentence": common.median(r["tokens"] / r["sentences"] for r in rs),
                   "sentences_per_s_runs": [r["sentences_per_s"] for r in rs]} for k, rs in runs.items()}
    for k in summary:
        summary[k]["ratio"] = summary[k]["sentences_per_s"] / summary[full]["sentences_per_s"]
    print()
    print(f"{'exit':>4} {'params':>11} {'tok/sent':>8} {'sent/s (median)':>15} {'÷ exit ' + str(full):>9}   sent/s per run")
    for k, s in sorted(summary.items()):
        print(f"{k:>4} {s['params']:>11,} {s['tokens_per_sentence']:>8.1f} {s['sentences_per_s']:>15.2f} "
              f"{s['ratio']:>8.2f}×   {', '.join(f'{x:.2f}' for x in s['sentences_per_s_runs'])}")
    print(f"(timing loop wall time {wall:.0f} s)")
    if args.json:
        common.write_json(args.json, {"machine": machine, "checkpoint": args.checkpoint, "beam": args.beam,
                                      "batch_size": args.batch_size, "repeats": args.repeats,
                                      "summary": {str(k): v for k, v in summary.items()},
                                      "runs": {str(k): v for k, v in runs.items()}})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
