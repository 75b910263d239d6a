#!/usr/bin/env python
"""Self-speculative greedy decoding vs plain greedy decoding of the same online-trained checkpoint.

A benchmark, not a test: it prints numbers (issue #14's target: sentences/s of --speculative-exit ÷ plain
--beam 1 >= 1.5 at batch size 1, identical output). In one process, on the same sentences (the first
--sentences of --subset, batched as fairseq-generate batches them), for each batch size it times

  plain        fairseq's SequenceGenerator with --beam 1 (what fairseq-generate --beam 1 runs);
  exit K       the same, on the model cut to its first K decoder layers (--exit-layer K): the draft's own
               cost per token, for the cost ratio c (below);
  spec K/N     SelfSpeculativeGenerator drafting N tokens with exit K, for every K in --exits, N in --drafts;

interleaved over --rounds rounds (order reversed every other round, the first round a discarded warm-up),
medians reported. Every speculative run's hypotheses are compared with plain greedy decoding's and the
table says whether all were identical. Columns:

  sent/s     sentences per second (generation only: encoder and decoder, no loading or printing)
  ratio      sent/s ÷ plain's
  ÷ lean     spec sent/s ÷ lean greedy's: lean greedy is SelfSpeculativeGenerator with no drafts (plain
             greedy decoding in the speculative generator's own loop, without SequenceGenerator's beam
             bookkeeping), so this is what speculation itself gains, and ratio ÷ this what the loop gains
  accept     drafts accepted ÷ drafts made
  tok/step   tokens emitted per sentence-step (1 to N+1)
  c          exit K's seconds per token ÷ the full model's (plain greedy, both)
  ideal      tok/step ÷ (N·c + 1): the speed-up if the verification of N+1 positions cost one full step
             and the draft N steps of exit K; what is lost below it is the verification's extra cost and
             the bookkeeping

    python bench/bench_speculative.py --data BIN --path CKPT [--exits 2,3] [--drafts 2,4] [--batch-sizes 1,32]
"""
import argparse
import copy
import os

import common

USER_DIR = os.path.join(common.REPO, "fairseq_selfteach")


def load(args):
    import torch
    from fairseq import checkpoint_utils, options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_generation_parser()
    a = options.parse_args_and_arch(parser, [
        args.data, "--user-dir", USER_DIR, "--task", "self_distill_translation", "--path", args.path,
        "--beam", "1", "--max-len-a", str(args.max_len_a), "--max-len-b", str(args.max_len_b), "--gen-subset",
        args.subset] + (["--cpu"] if args.device == "cpu" else []))
    cfg = convert_namespace_to_omegaconf(a)
    task = tasks.setup_task(cfg.task)
    task.load_dataset(args.subset)
    (model,), _ = checkpoint_utils.load_model_ensemble([args.path], task=task)
    model.eval().to(args.device)
    torch.set_grad_enabled(False)
    return cfg, task, model


def batches(task, subset, sentences, batch_size, device):
    from fairseq import utils

    dataset = task.dataset(subset)
    ids = list(range(min(sentences, len(dataset))))
    ids.sort(key=lambda i: dataset.src_sizes[i])  # as fairseq batches them: by length
    out = []
    for start in range(0, len(ids), batch_size):
        sample = dataset.collater([dataset[i] for i in ids[start:start + batch_size]])
        out.append(utils.move_to_cuda(sample) if device == "cuda" else sample)
    return out


def decode(generator, model, samples):
    return {int(i): h[0]["tokens"].tolist() for s in samples
            for i, h in zip(s["id"], generator.generate([model], s))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="binarised data (fairseq-preprocess)")
    p.add_argument("--path", required=True, help="an online-trained checkpoint (--student-exits)")
    p.add_argument("--subset", default="test")
    p.add_argument("--sentences", type=int, default=100, help="the first N sentences of --subset (default 100)")
    p.add_argument("--exits", default="", help="draft exits (default: a third and half of the decoder depth)")
    p.add_argument("--drafts", default="2,4", help="draft lengths N (default 2,4)")
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds after one warm-up round (default 3)")
    p.add_argument("--max-len-a", type=float, default=1.5, help="as the pipeline decodes (default 1.5)")
    p.add_argument("--max-len-b", type=int, default=10, help="(default 10)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    common.add_device_option(p)
    args = p.parse_args(argv)
    common.check_device(p, args)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print("\n".join(common.machine_lines(__file__, argv, args.device,
                                         f" ({torch.get_num_threads()} threads)")))
    from fairseq_selfteach.translation.exits import cut_decoder_to_exit
    from fairseq_selfteach.translation.speculative import SelfSpeculativeGenerator

    cfg, task, model = load(args)
    depth = len(model.decoder.layers)
    exits = [int(x) for x in args.exits.split(",")] if args.exits else sorted({max(1, depth // 3), max(1, depth // 2)})
    drafts = [int(x) for x in args.drafts.split(",")]
    plain = task.build_generator([model], cfg.generation)
    cut = {}
    for k in exits:
        cut[k] = copy.deepcopy(model)
        cut_decoder_to_exit(cut[k].decoder, k)
    gen = {"plain": (plain, model)}
    gen.update({f"exit {k}": (task.build_generator([cut[k]], cfg.generation), cut[k]) for k in exits})
    # this generator with no drafts is plain greedy decoding in its own loop: what the loop alone gains
    lean = SelfSpeculativeGenerator([model], task.target_dictionary, exits[0], 0, max_len_a=args.max_len_a,
                                    max_len_b=args.max_len_b)
    gen["lean greedy"] = (lean, model)
    spec = {}
    for k in exits:
        for n in drafts:
            g = SelfSpeculativeGenerator([model], task.target_dictionary, k, n, max_len_a=args.max_len_a,
                                         max_len_b=args.max_len_b)
            spec[(k, n)] = g
            gen[f"spec {k}/{n}"] = (g, model)
    import logging
    logging.getLogger("fairseq_selfteach.translation.speculative").setLevel(logging.WARNING)
    print(f"model: {args.path}: decoder {depth} layers, d={model.decoder.embed_dim}, "
          f"vocabulary {len(task.target_dictionary)}; {args.sentences} sentences of {args.subset}; "
          f"--max-len-a {args.max_len_a} --max-len-b {args.max_len_b}; exits {exits}, drafts {drafts}")
    for bs in [int(x) for x in args.batch_sizes.split(",")]:
        samples = batches(task, args.subset, args.sentences, bs, args.device)
        n_sent = sum(len(s["id"]) for s in samples)
        outputs, tokens = {}, {}
        for g in list(spec.values()) + [lean]:
            g.stats = dict.fromkeys(g.stats, 0)
        watch = common.Stopwatch(args.device)

        def run(key, r):
            g, m = gen[key]
            seconds = watch.time(lambda: outputs.__setitem__(key, decode(g, m, samples)))
            tokens[key] = sum(len(t) for t in outputs[key].values())
            return seconds

        times, wall = common.interleaved(list(gen), args.rounds, run, warmup=1)
        base = common.median(times["plain"])
        print(f"\nbatch size {bs}: {n_sent} sentences, {len(samples)} batches; {wall:.0f} s in all")
        lean_t = common.median(times["lean greedy"])
        print(f"{'decoder':<12}{'sent/s':>9}{'ratio':>8}{'÷ lean':>8}{'accept':>8}{'tok/step':>10}{'c':>7}"
              f"{'ideal':>7}  identical")
        for key in gen:
            t = common.median(times[key])
            line = f"{key:<12}{n_sent / t:>9.2f}{base / t:>8.2f}"
            if key == "lean greedy":
                line += f"{'':>8}{'':>8}{'':>10}{'':>7}{'':>7}  {'yes' if outputs[key] == outputs['plain'] else 'NO'}"
            if key.startswith("spec"):
                line += f"{lean_t / t:>8.2f}"
                k, n = (int(x) for x in key.split()[1].split("/"))
                s = spec[(k, n)].stats
                c = (common.median(times[f"exit {k}"]) / tokens[f"exit {k}"]) / (base / tokens["plain"])
                per_step = s["emitted"] / max(s["steps"], 1)
                same = outputs[key] == outputs["plain"]
                line += (f"{s['accepted'] / max(s['drafted'], 1):>8.3f}{per_step:>10.2f}{c:>7.2f}"
                         f"{per_step / (n * c + 1):>7.2f}  {'yes' if same else 'NO'}")
            print(line)


if __name__ == "__main__":
    main()
