"""Encoder throughput of k-layer BERT students ÷ the L-layer teacher, measured in one run.

    python bench/bench_encoder_throughput.py [--arch selfteach_bert_base] [--students 6,4,3]
        [--batch-size 16] [--seq-len 128] [--repeats 7] [--threads 2] [--device cpu|cuda] [--json OUT]

Target (issue #4): throughput(k) / throughput(L) ≥ 0.85 · L / k. Every model is the plugin's
`selfteach_bert` (random init, the arch's real dimensions) with a classification head, running the
forward pass a GLUE fine-tuning/evaluation runs (embeddings, k layers, pooler, head) in eval mode
under no_grad on the same batch (real-length mix: lengths uniform in [seq_len/4, seq_len], right-padded).
Students are the first k layers of the teacher (same weights), as self-teaching makes them. Models are
timed interleaved (teacher, students, then reversed order) and medians reported. A benchmark prints
ratios; it asserts nothing.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import fields

import torch


def build(arch, layers_override=None):
    from omegaconf import OmegaConf

    import fairseq_selfteach  # noqa: F401  (registers the model and archs)
    from fairseq.models import ARCH_MODEL_REGISTRY, ARCH_CONFIG_REGISTRY

    from fairseq_selfteach.classification.bert.dictionary import BertDictionary
    from fairseq_selfteach.classification.bert.model import SelfteachBertConfig

    cfg = OmegaConf.create({f.name: f.default for f in fields(SelfteachBertConfig)})
    ARCH_CONFIG_REGISTRY[arch](cfg)
    vocab = 30522
    d = BertDictionary()
    for tok in ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]:
        d.add_symbol(tok)
    while len(d) < vocab:
        d.add_symbol(f"tok{len(d)}")
    d._set_special_indices("synthetic vocabulary")
    cfg.vocab_size = vocab
    model = ARCH_MODEL_REGISTRY[arch].build_from_dictionary(cfg, d)
    model.register_classification_head("sentence_classification_head", 2)
    return model.eval(), d


def batch(d, batch_size, seq_len, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(seq_len // 4, seq_len + 1, (batch_size,), generator=g)
    tokens = torch.full((batch_size, seq_len), d.pad())
    for i, n in enumerate(lengths.tolist()):
        tokens[i, 0] = d.bos()
        tokens[i, 1:n] = torch.randint(1000, len(d), (n - 1,), generator=g)
    return tokens, torch.zeros_like(tokens), int(lengths.sum())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="selfteach_bert_base", help="teacher architecture")
    ap.add_argument("--students", default="6,4,3", help="student depths k (first k layers)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7, help="timed forward passes per model")
    ap.add_argument("--warmup", type=int, default=2, help="untimed forward passes per model first")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher, d = build(args.arch)
    L = len(teacher.encoder.layers)
    depths = [int(k) for k in args.students.split(",")]
    models = {L: teacher}
    for k in depths:
        student, _ = build(args.arch)
        student.load_state_dict(teacher.state_dict(), strict=False)
        student.encoder.layers = student.encoder.layers[:k]  # the first k layers, same weights
        models[k] = student
    tokens, segments, real_tokens = batch(d, args.batch_size, args.seq_len)
    dev = torch.device(args.device)
    tokens, segments = tokens.to(dev), segments.to(dev)
    for m in models.values():
        m.to(dev)

    def run(m):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            m(tokens, segment_labels=segments, classification_head_name="sentence_classification_head")
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for m in models.values():
        for _ in range(args.warmup):
            run(m)
    times = {k: [] for k in models}
    order = list(models)
    for r in range(args.repeats):
        for k in (order if r % 2 == 0 else order[::-1]):
            times[k].append(run(models[k]))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"command: python bench/bench_encoder_throughput.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"machine: {platform.processor() or platform.machine()}; {os.cpu_count()} logical CPUs; "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    print(f"{args.arch} teacher ({L} layers) and students = its first k layers; batch {args.batch_size} x "
          f"{args.seq_len} ({real_tokens} real tokens), eval forward + pooler + head, median of "
          f"{args.repeats} interleaved runs")
    print(f"{'layers':>6} {'params':>12} {'ms/batch':>10} {'sentences/s':>12} {'ratio':>7} {'target':>7}")
    rows = []
    for k in [L] + depths:
        params = sum(p.numel() for p in models[k].parameters())
        ratio = med[L] / med[k]
        target = 0.85 * L / k
        verdict = "" if k == L else ("PASS" if ratio >= target else "MISS")
        print(f"{k:>6} {params:>12,} {med[k] * 1000:>10.1f} {args.batch_size / med[k]:>12.1f} "
              f"{ratio:>7.2f} {'' if k == L else f'{target:.2f}':>7} {verdict}")
        rows.append({"layers": k, "params": params, "ms_per_batch": med[k] * 1000,
                     "sentences_per_s": args.batch_size / med[k], "ratio_vs_teacher": ratio,
                     "target": None if k == L else target, "runs_ms": [t * 1000 for t in times[k]]})
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump({"arch": args.arch, "device": args.device, "rows": rows}, f, indent=1)
        os.replace(args.json + ".tmp", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
