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
import os
import sys
import tempfile
from dataclasses import fields

import torch

import common  # bench/common.py: the machine's description, timing

VOCAB = 30522  # BERT's uncased WordPiece vocabulary size


def synthetic_dictionary():
    """A BertDictionary laid out like BERT's uncased vocab.txt ([PAD] 0, [unused*], [UNK] 100,
    [CLS] 101, [SEP] 102, [MASK] 103, then made-up tokens), read as a vocab.txt is."""
    from fairseq_selfteach.classification.bert.dictionary import BertDictionary

    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"tok{i}" for i in range(len(tokens), VOCAB)]
    with tempfile.TemporaryDirectory(prefix="bench_encoder.") as tmp:
        vocab = os.path.join(tmp, "vocab.txt")
        with open(vocab, "w") as f:
            f.writelines(t + "\n" for t in tokens)
        return BertDictionary.from_vocab(vocab)


def build(arch, d):
    from fairseq.models import ARCH_CONFIG_REGISTRY
    from omegaconf import OmegaConf

    from fairseq_selfteach.classification.bert.config import SelfteachBertConfig
    from fairseq_selfteach.classification.bert.model import SelfteachBertModel  # and its archs

    cfg = OmegaConf.create({f.name: f.default for f in fields(SelfteachBertConfig)})
    ARCH_CONFIG_REGISTRY[arch](cfg)
    cfg.vocab_size = len(d)
    model = SelfteachBertModel.build_from_dictionary(cfg, d)
    model.register_classification_head("sentence_classification_head", 2)
    return model.eval()


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
    common.add_device_option(ap)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    common.check_device(ap, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    d = synthetic_dictionary()
    teacher = build(args.arch, d)
    L = len(teacher.encoder.layers)
    depths = [int(k) for k in args.students.split(",")]
    models = {L: teacher}
    for k in depths:
        student = build(args.arch, d)
        student.load_state_dict(teacher.state_dict(), strict=False)
        student.encoder.layers = student.encoder.layers[:k]  # the first k layers, same weights
        models[k] = student
    tokens, segments, real_tokens = batch(d, args.batch_size, args.seq_len)
    dev = torch.device(args.device)
    tokens, segments = tokens.to(dev), segments.to(dev)
    for m in models.values():
        m.to(dev)

    watch = common.Stopwatch(dev)

    @torch.no_grad()
    def run(k, _round):
        return watch.time(lambda: models[k](tokens, segment_labels=segments,
                                            classification_head_name="sentence_classification_head"))

    times, _wall = common.interleaved(models, args.repeats, run, warmup=args.warmup)
    med = {k: common.median(v) for k, v in times.items()}
    print(common.command_line(__file__, argv))
    print(f"{common.cpu_line()}; torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"device {args.device}")
    if args.device == "cuda":
        print(common.gpu_line())
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
        common.write_json(args.json, {"arch": args.arch, "device": args.device, "rows": rows}, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
