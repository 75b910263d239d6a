#!/usr/bin/env python
"""What an offline update costs when the teacher's outputs come from a cache (--teacher-cache).

A benchmark, not a test: it prints ratios measured in one run and asserts nothing (issue #12, P3).
It reuses bench_self_distill.py's building blocks: the same transformer_iwslt_de_en models (6+6
teacher, 6+3 student initialised from it), the same random fairseq-format batches, the same update
(zero_grad + criterion forward + backward + Adam step), the variants interleaved step by step.

    student_lsce     the 6+3 student, label_smoothed_cross_entropy
    student_offline  the same student, self_distill with the frozen 6+6 teacher run every update
    student_cached   the same student, self_distill reading the teacher's top-k logits per target
                     token from a cache built once from the same batches (core/teacher_cache.py:
                     memory-mapped .npy files, the rows of each sample looked up by its id)

Figures printed:
    P3 = student_cached / student_lsce      (target <= 1.05)
    P2 = student_offline / student_lsce     (for comparison: what the cache removes)
and the cache's build time and size per target token.

    python bench/bench_teacher_cache.py --max-tokens 1024 --steps 20 --warmup 3 --threads 1
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

import common  # bench/common.py
import bench_self_distill as sd
from fairseq_selfteach.core.teacher import FrozenModelTeacher
from fairseq_selfteach.core.teacher_cache import CachedTeacher, TeacherCache, build_cache

VARIANTS = ("student_lsce", "student_offline", "student_cached")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    common.add_device_option(p)
    p.add_argument("--max-tokens", type=int, default=4096, help="tokens per batch, padding included")
    p.add_argument("--vocab", type=int, default=10000, help="dictionary size")
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant (after warm-up)")
    p.add_argument("--warmup", type=int, default=3, help="steps per variant run first and discarded")
    p.add_argument("--batches", type=int, default=4, help="distinct random batches, cycled through")
    p.add_argument("--min-len", type=int, default=16, help="shortest padded sentence length")
    p.add_argument("--max-len", type=int, default=40, help="longest padded sentence length")
    p.add_argument("--student-decoder-layers", type=int, default=3, help="decoder depth of the student")
    p.add_argument("--top-k", type=int, default=8, help="logits kept per target token in the cache")
    p.add_argument("--kd-alpha", type=float, default=0.5, help="self_distill --kd-alpha")
    p.add_argument("--kd-temperature", type=float, default=1.0, help="self_distill --kd-temperature")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing")
    p.add_argument("--dropout", type=float, default=0.3, help="model dropout")
    p.add_argument("--seed", type=int, default=1, help="torch.manual_seed for weights and batches")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    args = p.parse_args(argv)
    common.check_device(p, args)
    return args


def main():
    args = parse_args()
    sd.quiet_and_threads(args)
    for line in common.machine_lines(__file__, device=args.device):
        print(line)
    device = args.device
    dictionary = sd.make_dictionary(args.vocab)
    plain = sd.make_task(dictionary)
    torch.manual_seed(args.seed)
    teacher = FrozenModelTeacher("bench", plain.build_model(sd.model_args(6, args.dropout)), sha256="bench")
    batches = sd.make_batches(args, dictionary)
    start = 0
    for b in batches:  # ids unique across the batches, as a dataset's are
        b["id"] = torch.arange(start, start + b["target"].size(0), device=b["target"].device)
        start += b["target"].size(0)

    def student(t):
        torch.manual_seed(args.seed + 1)
        return sd.make_task(dictionary, t).build_model(sd.model_args(args.student_decoder_layers, args.dropout))

    def criterion(task):
        return sd.SelfDistillCriterion(task, False, args.label_smoothing, kd_alpha=args.kd_alpha,
                                       kd_temperature=args.kd_temperature)

    with tempfile.TemporaryDirectory() as tmp:
        pad = dictionary.pad()
        counts = np.concatenate([b["target"].ne(pad).sum(1).cpu().numpy() for b in batches])
        lsce_model = student(teacher)
        teacher.follow(lsce_model.to(device))

        def rows(sample):
            mask = sample["target"].ne(pad)
            return teacher.logits(sample)[mask], mask.sum(1)

        t0 = time.perf_counter()
        meta = build_cache(os.path.join(tmp, "cache"), batches, counts, rows, "top_k", args.top_k,
                           dict(teacher_path="bench", teacher_sha256="bench", data="bench", split="train",
                                data_fingerprint="bench"))
        build_s = time.perf_counter() - t0
        arrays = {n: np.load(os.path.join(tmp, "cache", n + ".npy"), mmap_mode="r") for n in meta["sha256"]}
        cached = CachedTeacher(teacher, TeacherCache(os.path.join(tmp, "cache"), meta, arrays))
        variants = {
            "student_lsce": sd.Variant("student_lsce", lsce_model, sd.LabelSmoothedCrossEntropyCriterion(
                plain, False, args.label_smoothing), device),
            "student_offline": sd.Variant("student_offline", student(teacher), criterion(sd.make_task(dictionary, teacher)),
                                          device),
            "student_cached": sd.Variant("student_cached", student(teacher), criterion(sd.make_task(dictionary, cached)),
                                         device),
        }
        print(f"batches: {len(batches)} random, --max-tokens {args.max_tokens}; real target tokens "
              f"{[b['ntokens'] for b in batches]}; student 6+{args.student_decoder_layers}, vocab {len(dictionary)}")
        print(f"cache: top {meta['k']} of {len(dictionary)} per target token, {meta['rows']} tokens, "
              f"{meta['bytes_per_row']} bytes per token, built in {build_s:.1f} s (the teacher's forward over the batches)")
        times, wall = common.interleaved(variants, args.steps,
                                         lambda name, step: variants[name].run(batches[step % len(batches)]),
                                         warmup=args.warmup)
    print()
    print(f"{'variant':<16} {'median ms':>10} {'p25-p75 ms':>16}")
    totals = {}
    for name in VARIANTS:
        tt = [t["total"] * 1e3 for t in times[name]]
        totals[name] = common.median(tt)
        lo, hi = common.quartiles(tt)
        print(f"{name:<16} {totals[name]:>10.1f} {lo:>7.1f}-{hi:<8.1f}")
    print(f"(timing loop wall time {wall:.0f} s)")

    def paired(a, b):
        return common.median(x["total"] / y["total"] for x, y in zip(times[a], times[b]))

    p3 = totals["student_cached"] / totals["student_lsce"]
    p2 = totals["student_offline"] / totals["student_lsce"]
    print()
    print(f"P3  cached update / plain student update   = {p3:.3f}   (target <= 1.05: "
          f"{'met' if p3 <= 1.05 else 'MISSED'}; per-step paired median {paired('student_cached', 'student_lsce'):.3f})")
    print(f"P2  offline update / plain student update  = {p2:.3f}   (per-step paired median "
          f"{paired('student_offline', 'student_lsce'):.3f})")
    print(f"    cached / offline                       = {totals['student_cached'] / totals['student_offline']:.3f}")
    sys.stdout.flush()
    return json.dumps({"p3": p3, "p2": p2})


if __name__ == "__main__":
    main()
