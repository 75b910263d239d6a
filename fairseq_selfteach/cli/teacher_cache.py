"""Run a frozen teacher over the training split once and store its outputs (core/teacher_cache.py), so
that offline students train from the cache instead of running the teacher every update.

It takes the offline student's own fairseq-train command line (data, task, --teacher-path, criterion,
batch size) plus where to write the cache, so the cache is made with exactly the training's task:

    python -m fairseq_selfteach.cli.teacher_cache DATA --user-dir fairseq_selfteach \\
        --task self_distill_translation --teacher-path teacher.pt --criterion self_distill \\
        --arch transformer_iwslt_de_en --max-tokens 4096 --cache-out cache/teacher [--cache-top-k 8]
    fairseq-train DATA ... --teacher-path teacher.pt --teacher-cache cache/teacher

Translation stores each target token's top k logits (k = 8 by default), classification every logit.
The folder is written as CACHE.tmp and renamed when complete; an existing CACHE is never overwritten.
"""
import logging
import sys
import time

import torch

from fairseq_selfteach.core import error_report
from selfteach_pipeline.errors import SelfteachError

logger = logging.getLogger("fairseq_selfteach.cli.teacher_cache")


def add_cache_args(parser) -> None:
    group = parser.add_argument_group("teacher cache")
    group.add_argument("--cache-out", required=True, metavar="DIR",
                       help="the cache folder to write (must not exist; written as DIR.tmp, then renamed)")
    group.add_argument("--cache-top-k", type=int, default=8, metavar="K",
                       help="translation: how many of the teacher's largest logits to keep per target token "
                            "(the KL renormalises over them; the vocabulary size makes it exact)")
    group.add_argument("--cache-split", default="train", metavar="SPLIT",
                       help="the split to cache (the training split; validation always runs the teacher)")


def build(argv=None) -> dict:
    from fairseq import options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from fairseq_selfteach.core.teacher_cache import build_cache, data_fingerprint

    parser = options.get_training_parser()
    add_cache_args(parser)
    try:
        args = options.parse_args_and_arch(parser, argv)
    except RuntimeError as e:  # fairseq's parser raises a bare RuntimeError when --arch is missing
        if str(e) or getattr(parser.parse_known_args(argv)[0], "arch", None):
            raise
        raise SelfteachError("--arch is missing: give the architecture of the student this cache is for, "
                             "as on its fairseq-train command line (e.g. --arch transformer_iwslt_de_en)") from None
    if args.cache_top_k < 1:
        raise SelfteachError(f"--cache-top-k must be at least 1; got {args.cache_top_k}")
    cfg = convert_namespace_to_omegaconf(args)
    utils.import_user_module(cfg.common)
    if getattr(cfg.task, "teacher_cache", None):
        raise SelfteachError("--teacher-cache is what this tool writes (--cache-out); leave it out here")
    if not getattr(cfg.task, "teacher_path", None):
        raise SelfteachError("give the teacher to cache with --teacher-path (and a distilling --task: "
                             "self_distill_translation or self_distill_glue)")
    torch.manual_seed(cfg.common.seed)
    try:  # fairseq's own errors about the data folder are plain exceptions: named here in one line
        task = tasks.setup_task(cfg.task)
    except SelfteachError:
        raise
    except Exception as e:
        raise SelfteachError(f"data {cfg.task.data}: {e}") from e
    criterion = task.build_criterion(cfg.criterion)
    if not hasattr(criterion, "teacher_rows"):
        raise SelfteachError(f"--criterion {cfg.criterion._name} is not a self-teaching criterion: use "
                             f"self_distill or sentence_prediction_self_distill")
    teacher = task.teacher
    use_cuda = torch.cuda.is_available() and not cfg.common.cpu
    dtype = torch.float16 if cfg.common.fp16 else torch.bfloat16 if cfg.common.bf16 else torch.float32
    teacher.follow(torch.nn.Linear(1, 1).to(device="cuda" if use_cuda else "cpu", dtype=dtype))

    split = args.cache_split
    try:
        task.load_dataset(split, combine=False, epoch=1)
    except Exception as e:
        raise SelfteachError(f"data {cfg.task.data}: cannot load split {split!r}: {e}") from e
    dataset = task.dataset(split)
    translation = hasattr(dataset, "tgt_sizes")
    kind = "top_k" if translation else "logits"
    counts = dataset.tgt_sizes if translation else [1] * len(dataset)
    batches = task.get_batch_iterator(
        dataset=dataset, max_tokens=cfg.dataset.max_tokens, max_sentences=cfg.dataset.batch_size,
        max_positions=None, ignore_invalid_inputs=False, required_batch_size_multiple=1,
        seed=cfg.common.seed, num_workers=0, epoch=1, disable_iterator_cache=True,
    ).next_epoch_itr(shuffle=False)

    def samples():
        t0 = time.time()
        for i, sample in enumerate(batches):
            if use_cuda:
                sample = utils.move_to_cuda(sample)
            if i % 200 == 0:
                logger.info(f"batch {i} of {len(batches)} ({time.time() - t0:.0f} s)")
            yield sample

    meta = dict(teacher_path=str(cfg.task.teacher_path), teacher_sha256=teacher.sha256,
                data=str(cfg.task.data), split=split, data_fingerprint=data_fingerprint(cfg.task.data, split),
                temperature_recorded=float(getattr(cfg.criterion, "kd_temperature", 1.0)))
    t0 = time.time()
    meta = build_cache(args.cache_out, samples(), counts, criterion.teacher_rows, kind, args.cache_top_k, meta)
    unit = "token" if translation else "sentence"
    print(f"teacher_cache: wrote {args.cache_out}: {meta['samples']} samples, {meta['rows']} {unit}s, "
          f"{kind} k={meta['k']}, {meta['bytes'] / 2**20:.1f} MiB ({meta['bytes_per_row']} bytes per {unit}), "
          f"in {time.time() - t0:.1f} s")
    return meta


def main(argv=None) -> int:
    error_report.install()  # a user's error is one line, no traceback, also inside fairseq's code
    try:
        build(argv)
    except SelfteachError as e:
        print(f"teacher_cache: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
