#!/usr/bin/env python
"""What one training update of `--criterion self_distill` costs, relative to plain training.

This is a benchmark, not a test: it prints numbers and asserts nothing (issue #2).

Models have the `transformer_iwslt_de_en` dimensions (d=512, FFN 1024, 4 heads, 6 encoder and 6
decoder layers, decoder input/output embeddings shared) over a dummy fairseq Dictionary of --vocab
symbols. Everything is built in-process through fairseq's Python API, by a real
`self_distill_translation` task (SelfDistillTranslationTask over that dictionary, no data on disk):
task.build_model builds every model, and initialises the students from the teacher as training
does; the offline criterion's teacher is given to its task with task.use_teacher. The batches are
random tokens in fairseq's sample format, padded as fairseq pads them (source on the left, target on
the right).

An "update" is what fairseq's trainer does per batch, minus its bookkeeping:
optimizer.zero_grad() + criterion forward (model forward + loss) + loss.backward() + Adam step.

Five variants run in the same process on the same batches, step by step (within one step every
variant sees the same batch; the order of the variants is reversed every other step), so machine
noise and cache effects hit all of them alike. The first --warmup steps are discarded; medians of
the remaining --steps are reported.

    full_lsce        6+6 model, fairseq's label_smoothed_cross_entropy
    full_online      the same 6+6 model (an identical copy with its own Adam), self_distill with
                     student_exits="3": decoder layer 3 is a student exit, the top layer its teacher
    student_lsce     6+3 student (initialised from the teacher's first 3 decoder layers),
                     label_smoothed_cross_entropy
    student_offline  the same student, self_distill with a frozen 6+6 teacher
                     (FrozenModelTeacher: eval mode, no_grad) giving the soft targets
    teacher_forward  the frozen teacher's part of an offline update alone, as the criterion calls
                     it: teacher.follow(student) + teacher.logits(sample) (what offline
                     distillation adds at least)

Figures printed:
    P1 = full_online / full_lsce                            (target <= 1.20)
    P2 = student_offline / student_lsce
    floor = 1 + teacher_forward / student_lsce              (the unavoidable cost of a teacher)
    P2 / floor                                              (target <= 1.05: the KD loss itself
                                                             and the plumbing add little)
and the peak memory of each variant, measured in a fresh subprocess per variant that builds only
what that variant needs (so one variant's memory never hides in another's):
    on CUDA: torch.cuda.max_memory_allocated() after the updates (weights, gradients, Adam state,
             activations, teacher; not the caching allocator's reserve);
    on CPU:  peak resident set size (VmHWM in /proc/self/status) minus the RSS just before the
             models were built; the same things plus allocator fragmentation, which PyTorch cannot report on CPU.

Example (the real IWSLT size, on a GPU):
    python bench/bench_self_distill.py --device cuda --max-tokens 4096 --steps 50
    ... --precision fp16: the same in half precision, as fairseq-train --fp16 (bench/gpu_check.py
    runs both precisions interleaved, with --fairseq-optimizer on the float32 side)
What docs/benchmarks.md reports, on a 2-core CPU (about 6.5 minutes; one thread because
oversubscribed OpenMP threads on a shared 2-core machine make every op many times slower):
    python bench/bench_self_distill.py --max-tokens 1024 --steps 25 --warmup 3 --threads 1
"""
import argparse
import json
import logging
import os
import subprocess
import sys
import warnings
from argparse import Namespace

import torch
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
from fairseq.data import Dictionary

import common  # bench/common.py: the machine's description, timing
from fairseq_selfteach.core.teacher import FrozenModelTeacher
from fairseq_selfteach.translation.criterion import SelfDistillCriterion
from fairseq_selfteach.translation.task import SelfDistillTranslationConfig, SelfDistillTranslationTask

TRAINED_VARIANTS = ("full_lsce", "full_online", "student_lsce", "student_offline")
ALL_VARIANTS = TRAINED_VARIANTS + ("teacher_forward",)
PHASES = ("forward", "backward", "step")  # forward = model forward + loss


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    common.add_device_option(p)
    p.add_argument("--max-tokens", type=int, default=4096,
                   help="tokens per batch, padding included, as fairseq's --max-tokens counts them")
    p.add_argument("--vocab", type=int, default=10000,
                   help="dictionary size, the 4 fairseq special symbols included")
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant (after warm-up)")
    p.add_argument("--warmup", type=int, default=3, help="steps per variant run first and discarded")
    p.add_argument("--batches", type=int, default=4,
                   help="distinct random batches, cycled through (every variant sees the same one "
                        "at the same step)")
    p.add_argument("--min-len", type=int, default=16,
                   help="shortest padded sentence length a batch can have")
    p.add_argument("--max-len", type=int, default=40,
                   help="longest padded sentence length a batch can have")
    p.add_argument("--student-exits", default="3", help="online mode: decoder exits that are students")
    p.add_argument("--student-decoder-layers", type=int, default=3,
                   help="offline mode: decoder depth of the student (encoder stays at 6)")
    p.add_argument("--kd-alpha", type=float, default=0.5, help="self_distill --kd-alpha")
    p.add_argument("--kd-temperature", type=float, default=1.0, help="self_distill --kd-temperature")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="both criteria's label smoothing")
    p.add_argument("--dropout", type=float, default=0.3,
                   help="model dropout (0.3 as in fairseq's IWSLT'14 de-en recipe)")
    p.add_argument("--seed", type=int, default=1, help="torch.manual_seed for weights and batches")
    p.add_argument("--threads", type=int, default=0,
                   help="torch.set_num_threads (0: leave torch's default)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the per-variant peak memory subprocesses")
    p.add_argument("--memory-steps", type=int, default=2,
                   help="updates run in each memory subprocess (the peak is reached in the first)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, run torch.profiler over N updates of full_lsce and "
                        "full_online and print their most expensive operators")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16"),
                   help="fp16: an update as fairseq-train --fp16 does it (the model in float16, fairseq's "
                        "FP16Optimizer: float32 master weights, dynamic loss scale, over fairseq's Adam); "
                        "CUDA only")
    p.add_argument("--fairseq-optimizer", action="store_true",
                   help="fp32 updates through fairseq's own Adam (what fairseq-train builds) instead of "
                        "torch.optim.Adam, so that fp16 / fp32 compares the precision alone")
    p.add_argument("--memory-variant", choices=ALL_VARIANTS, help=argparse.SUPPRESS)  # internal
    args = p.parse_args(argv)
    common.check_device(p, args)
    if args.precision == "fp16" and args.device != "cuda":
        p.error("--precision fp16 needs --device cuda (fairseq's FP16Optimizer is a GPU feature)")
    if args.min_len < 3 or args.max_len < args.min_len or args.max_tokens < args.max_len:
        p.error("need 3 <= --min-len <= --max-len <= --max-tokens")
    return args


# ---------------------------------------------------------------------------------------------
# building blocks


def make_dictionary(size):
    d = Dictionary()  # <s>, <pad>, </s>, <unk>
    for i in range(size - len(d)):
        d.add_symbol(f"w{i}")
    return d


def make_task(dictionary, teacher=None):
    """A self_distill_translation task over `dictionary` (source and target), with no data on
    disk: the batches are made here. With a teacher it distils from it (offline: its criterion and
    the students it builds use that teacher); without one it has none (plain or online training)."""
    task = SelfDistillTranslationTask(SelfDistillTranslationConfig(), dictionary, dictionary)
    if teacher is not None:
        task.use_teacher(teacher)
    return task


def model_args(decoder_layers, dropout):
    """transformer_iwslt_de_en (d=512, FFN 1024, 4 heads, 6 encoder layers), as --arch gives it."""
    return Namespace(
        arch="transformer_iwslt_de_en",
        decoder_layers=decoder_layers,
        share_decoder_input_output_embed=True,
        dropout=dropout,
    )


def make_batch(gen, dictionary, max_tokens, min_len, max_len, device):
    """One fairseq-format batch: sentences of similar length (as fairseq's length bucketing makes
    them), up to 25% shorter than the batch's padded length, so there is some padding."""
    pad, eos, first = dictionary.pad(), dictionary.eos(), dictionary.nspecial
    n_sym = len(dictionary)
    width = int(torch.randint(min_len, max_len + 1, (1,), generator=gen))
    bsz = max(1, max_tokens // width)

    def lengths():
        shortest = max(2, (3 * width) // 4)
        return torch.randint(shortest, width + 1, (bsz,), generator=gen)

    src_len, tgt_len = lengths(), lengths()
    src = torch.full((bsz, int(src_len.max())), pad, dtype=torch.long)
    tgt = torch.full((bsz, int(tgt_len.max())), pad, dtype=torch.long)
    prev = torch.full_like(tgt, pad)
    for i in range(bsz):
        s, t = int(src_len[i]), int(tgt_len[i])
        words = torch.randint(first, n_sym, (s - 1,), generator=gen)
        src[i, src.size(1) - s:] = torch.cat([words, torch.tensor([eos])])  # left-padded
        words = torch.randint(first, n_sym, (t - 1,), generator=gen)
        tgt[i, :t] = torch.cat([words, torch.tensor([eos])])  # right-padded
        prev[i, :t] = torch.cat([torch.tensor([eos]), words])  # eos + target[:-1]
    sample = {
        "id": torch.arange(bsz),
        "nsentences": bsz,
        "ntokens": int(tgt.ne(pad).sum()),
        "net_input": {"src_tokens": src, "src_lengths": src_len, "prev_output_tokens": prev},
        "target": tgt,
    }
    return _to(sample, device)


def _to(obj, device):
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def build_fairseq_optimizer(params, fp16):
    """What fairseq-train's trainer builds for `--optimizer adam --adam-betas '(0.9,0.98)' --lr 5e-4`
    (with `--fp16`: FP16Optimizer around it), from fairseq's own option parser and defaults."""
    from fairseq import optim, options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.optim.fp16_optimizer import FP16Optimizer

    with warnings.catch_warnings():  # hydra's deprecation notices about fairseq's config files
        warnings.simplefilter("ignore")
        ns = options.parse_args_and_arch(options.get_training_parser(), [
            "unused-data", "--task", "translation", "--arch", "transformer_iwslt_de_en",
            "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "5e-4"] + (["--fp16"] if fp16 else []))
        cfg = convert_namespace_to_omegaconf(ns)
    params = [p for p in params if p.requires_grad]
    if fp16:
        return FP16Optimizer.build_optimizer(cfg, params)
    return optim.build_optimizer(cfg.optimizer, params)


class Variant:
    """One model + criterion + Adam; `run(sample)` does one update and returns phase times (s).
    precision fp16 or fairseq_optimizer: fairseq's optimizer, stepped as its trainer steps it."""

    def __init__(self, name, model, criterion, device, precision="fp32", fairseq_optimizer=False):
        self.name = name
        self.model = model.to(device).train()
        if precision == "fp16":
            self.model.half()
        self.criterion = criterion
        self.fairseq = precision == "fp16" or fairseq_optimizer
        if self.fairseq:
            self.optimizer = build_fairseq_optimizer(model.parameters(), precision == "fp16")
        else:
            self.optimizer = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.98))
        self.overflows = 0  # fp16 updates skipped because the scaled gradients overflowed
        self.watch = common.Stopwatch(device)

    def run(self, sample):
        watch = self.watch
        watch.start()
        if self.fairseq:
            self.optimizer.zero_grad()
        else:
            self.optimizer.zero_grad(set_to_none=True)
        loss, _sample_size, _log = self.criterion(self.model, sample)
        forward = watch.lap()
        if self.fairseq:
            self.optimizer.backward(loss)  # fp16: scaled by the loss scale
        else:
            loss.backward()
        backward = watch.lap()
        if self.fairseq:
            try:  # as fairseq's trainer: unscale and check for overflow (--clip-norm 0), then step
                self.optimizer.clip_grad_norm(0.0)
                self.optimizer.step()
            except OverflowError:  # the scaler halved the loss scale; the trainer skips this update
                self.overflows += 1
        else:
            self.optimizer.step()
        step = watch.lap()
        return {"total": forward + backward + step, "forward": forward, "backward": backward,
                "step": step}


class TeacherForward:
    """The frozen teacher's part of an offline update alone, exactly as the criterion calls it:
    follow the student (cheap once on its device and dtype), then the logits of the batch."""

    def __init__(self, teacher, student, device):
        self.name = "teacher_forward"
        self.teacher = teacher
        self.student = student  # the model the teacher serves (not timed here)
        self.watch = common.Stopwatch(device)

    def run(self, sample):
        def forward():
            self.teacher.follow(self.student)
            self.teacher.logits(sample)

        t = self.watch.time(forward)
        return {"total": t, "forward": t}


def build_variants(args, names):
    """Build the variants named, and only what they need (so a memory subprocess holds nothing
    else), deterministically from --seed: every model is built afresh from the same seed, so the
    two 6+6 models and the teacher have the same weights, and so do the two students.

    The teacher is built on the CPU, like the students; the criterion's teacher.follow(model)
    moves it to the student's device on the first update, as in training."""
    device = args.device
    dictionary = make_dictionary(args.vocab)
    plain = make_task(dictionary)  # no teacher: plain training and online self-distillation

    def full_model():
        torch.manual_seed(args.seed)
        return plain.build_model(model_args(6, args.dropout))

    def frozen_teacher():
        return FrozenModelTeacher("bench", full_model(), sha256="bench")

    update = {"precision": getattr(args, "precision", "fp32"),
              "fairseq_optimizer": getattr(args, "fairseq_optimizer", False)}
    teacher = None
    if {"student_offline", "teacher_forward"} & set(names):
        teacher = frozen_teacher()

    def student_model():
        """The 6+k student as self_distill_translation's build_model makes it: initialised from the
        teacher's first k decoder layers (its default --student-decoder-layer-map first). Without a
        variant that distils, from a teacher of its own that is dropped afterwards."""
        init_from = teacher if teacher is not None else frozen_teacher()
        torch.manual_seed(args.seed + 1)
        return make_task(dictionary, init_from).build_model(
            model_args(args.student_decoder_layers, args.dropout)
        )

    def lsce():
        return LabelSmoothedCrossEntropyCriterion(plain, False, args.label_smoothing)

    def self_distill(task, exits):
        # the criterion reads task.teacher: the offline task's teacher, or None (online)
        return SelfDistillCriterion(
            task, False, args.label_smoothing,
            kd_alpha=args.kd_alpha, kd_temperature=args.kd_temperature, student_exits=exits,
        )

    built = {}

    def offline_student():
        """The model the teacher serves: student_offline's, or (built alone) one of its own."""
        if "student_offline" in built:
            return built["student_offline"].model
        alone = student_model().to(device)
        return alone.half() if update["precision"] == "fp16" else alone

    builders = {
        "full_lsce": lambda: Variant("full_lsce", full_model(), lsce(), device, **update),
        "full_online": lambda: Variant(
            "full_online", full_model(), self_distill(plain, args.student_exits), device, **update
        ),
        "student_lsce": lambda: Variant("student_lsce", student_model(), lsce(), device, **update),
        "student_offline": lambda: Variant(
            "student_offline", student_model(), self_distill(make_task(dictionary, teacher), ""),
            device, **update,
        ),
        "teacher_forward": lambda: TeacherForward(teacher, offline_student(), device),
    }
    for n in names:
        built[n] = builders[n]()
    return [built[n] for n in names], dictionary


def make_batches(args, dictionary):
    gen = torch.Generator().manual_seed(args.seed)
    return [
        make_batch(gen, dictionary, args.max_tokens, args.min_len, args.max_len, args.device)
        for _ in range(args.batches)
    ]


# ---------------------------------------------------------------------------------------------
# memory: one fresh subprocess per variant


def _proc_status_bytes(field):
    """A kB field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(args):
    """Runs in the subprocess: build one variant, run a few updates, print its peak as JSON."""
    name = args.memory_variant
    dictionary = make_dictionary(args.vocab)
    batches = make_batches(args, dictionary)
    if args.device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _proc_status_bytes("VmRSS")
    (variant,), _ = build_variants(args, [name])
    for i in range(args.memory_steps):
        variant.run(batches[i % len(batches)])
    if args.device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        # VmHWM, not getrusage's ru_maxrss: after fork+exec ru_maxrss still counts the parent's
        # resident set, VmHWM belongs to this process's own address space.
        peak = _proc_status_bytes("VmHWM")
    print(json.dumps({"variant": name, "peak_bytes": peak - base}))


def measure_memory(args, names):
    peaks = {}
    base_cmd = [sys.executable, os.path.abspath(__file__)]
    for name in names:
        cmd = base_cmd + [
            "--device", args.device, "--max-tokens", str(args.max_tokens), "--vocab", str(args.vocab),
            "--batches", str(args.batches), "--min-len", str(args.min_len),
            "--max-len", str(args.max_len), "--student-exits", args.student_exits,
            "--student-decoder-layers", str(args.student_decoder_layers),
            "--kd-alpha", str(args.kd_alpha), "--kd-temperature", str(args.kd_temperature),
            "--label-smoothing", str(args.label_smoothing), "--dropout", str(args.dropout),
            "--seed", str(args.seed), "--threads", str(args.threads),
            "--memory-steps", str(args.memory_steps), "--memory-variant", name,
            "--precision", args.precision,
        ] + (["--fairseq-optimizer"] if args.fairseq_optimizer else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"memory run for {name} failed:\n{out.stderr[-3000:]}")
        peaks[name] = json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"]
    return peaks


# ---------------------------------------------------------------------------------------------
# reporting


def machine_lines(args):
    return common.machine_lines(
        __file__, device=args.device,
        torch_detail=f" (threads {torch.get_num_threads()}, "
                     f"mkldnn {torch.backends.mkldnn.is_available()})",
    )


def quiet_and_threads(args):
    """What every training benchmark sets first: fairseq's attention passes a float attn_mask with a
    bool key_padding_mask and torch warns each time; importing fairseq sets the root logger to DEBUG,
    so the task's line about each student's initialisation is kept out of the report."""
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
    logging.getLogger("fairseq_selfteach").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)


def main():
    args = parse_args()
    quiet_and_threads(args)
    if args.memory_variant:
        memory_child(args)
        return

    for line in machine_lines(args):
        print(line)
    variants, dictionary = build_variants(args, list(ALL_VARIANTS))
    batches = make_batches(args, dictionary)
    n_params = {v.name: sum(p.numel() for p in v.model.parameters()) for v in variants
                if hasattr(v, "model")}
    ntok = [b["ntokens"] for b in batches]
    shapes = [tuple(b["target"].shape) for b in batches]
    print(
        f"models: transformer_iwslt_de_en d=512 ffn=1024 heads=4, shared decoder embeddings, "
        f"vocab {len(dictionary)}, dropout {args.dropout}; full 6+6 = {n_params['full_lsce'] / 1e6:.1f}M "
        f"params, student 6+{args.student_decoder_layers} = {n_params['student_lsce'] / 1e6:.1f}M"
    )
    print(
        f"self_distill: kd_alpha {args.kd_alpha}, T {args.kd_temperature}, forward KL, online "
        f"student_exits={args.student_exits!r}; label smoothing {args.label_smoothing}; Adam"
    )
    print(
        f"batches: {len(batches)} random, --max-tokens {args.max_tokens}; target (bsz x len) "
        f"{shapes}; real target tokens {ntok}"
    )
    print(f"precision {args.precision}; optimizer "
          f"{'fairseq' if args.precision == 'fp16' or args.fairseq_optimizer else 'torch.optim'} Adam")
    print(f"device {args.device}; {args.warmup} warm-up + {args.steps} timed steps per variant, "
          f"interleaved, same batch for every variant within a step")
    sys.stdout.flush()

    by_name = {v.name: v for v in variants}
    times, wall = common.interleaved(
        by_name, args.steps, lambda name, step: by_name[name].run(batches[step % len(batches)]),
        warmup=args.warmup,
    )

    print()
    print(f"{'variant':<16} {'median ms':>10} {'p25-p75 ms':>16}   median phases ms "
          f"(forward+loss / backward / Adam step)")
    totals = {}
    for name in ALL_VARIANTS:
        tt = [t["total"] * 1e3 for t in times[name]]
        totals[name] = common.median(tt)
        lo, hi = common.quartiles(tt)
        phases = " / ".join(
            f"{common.median(t[p] * 1e3 for t in times[name]):.1f}"
            for p in PHASES if p in times[name][0]
        )
        print(f"{name:<16} {totals[name]:>10.1f} {lo:>7.1f}-{hi:<8.1f}   {phases}")
    print(f"(timing loop wall time {wall:.0f} s)")

    def paired(a, b):  # median of the per-step ratios: a cross-check less sensitive to drift
        return common.median(x["total"] / y["total"] for x, y in zip(times[a], times[b]))

    p1 = totals["full_online"] / totals["full_lsce"]
    p2 = totals["student_offline"] / totals["student_lsce"]
    floor = 1 + totals["teacher_forward"] / totals["student_lsce"]
    print()
    print(f"P1  online update / plain update (6+6)          = {p1:.3f}   "
          f"(target <= 1.20: {'met' if p1 <= 1.20 else 'MISSED'}; per-step paired median "
          f"{paired('full_online', 'full_lsce'):.3f})")
    print(f"P2  offline update / plain student update       = {p2:.3f}   "
          f"(per-step paired median {paired('student_offline', 'student_lsce'):.3f})")
    print(f"    floor 1 + teacher forward / student update  = {floor:.3f}")
    print(f"    P2 / floor                                  = {p2 / floor:.3f}   "
          f"(target <= 1.05: {'met' if p2 / floor <= 1.05 else 'MISSED'})")
    sys.stdout.flush()

    if not args.no_memory:
        peaks = measure_memory(args, list(TRAINED_VARIANTS))
        what = ("torch.cuda.max_memory_allocated" if args.device == "cuda"
                else "peak RSS (VmHWM) - RSS before building the models")
        print()
        print(f"peak memory, one fresh process per variant, {args.memory_steps} updates; "
              f"measure: {what}")
        for name in TRAINED_VARIANTS:
            print(f"  {name:<16} {peaks[name] / 2**20:>8.0f} MiB")
        print(f"  online / plain (6+6)          = {peaks['full_online'] / peaks['full_lsce']:.3f}")
        print(f"  offline / plain student       = "
              f"{peaks['student_offline'] / peaks['student_lsce']:.3f}   "
              f"(offline includes the frozen teacher's weights)")

    if args.profile:
        profile(variants, batches, args.profile)


def profile(variants, batches, n):
    from torch.profiler import ProfilerActivity, profile as torch_profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available() and next(variants[0].model.parameters()).is_cuda:
        activities.append(ProfilerActivity.CUDA)
    for v in variants:
        if v.name not in ("full_lsce", "full_online"):
            continue
        with torch_profile(activities=activities) as prof:
            for i in range(n):
                v.run(batches[i % len(batches)])
        print()
        print(f"torch.profiler, {v.name}, {n} update(s), top operators by self time:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))


if __name__ == "__main__":
    main()
