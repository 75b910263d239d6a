"""The teacher behind one interface.

A criterion asks a Teacher for logits of a batch and nothing else; a teacher whose training-set
outputs come from a cache on disk (core/teacher_cache.py, --teacher-cache) answers training batches
from it and everything else through the frozen model.
"""
import logging
import os
import torch

from fairseq_selfteach.core.checkpoint_io import CheckpointError, load_checkpoint
from selfteach_pipeline.files import sha256_of_file

logger = logging.getLogger(__name__)


class Teacher:
    """What a student learns from. Every caller (criteria, the student's initialisation, benchmarks)
    goes through these methods only, so a teacher whose outputs come from a cache on disk can replace
    the frozen model without touching them."""

    path: str  # the file the teacher came from
    sha256: str  # and its digest, recorded in the student's checkpoints
    cached = False  # whether training batches are answered from a cache (core/teacher_cache.py)

    def logits(self, sample, **forward_kwargs) -> torch.Tensor:  # pragma: no cover - interface
        """The teacher's logits for a batch (forward_kwargs: e.g. classification_head_name)."""
        raise NotImplementedError

    def follow(self, student: torch.nn.Module) -> None:  # pragma: no cover - interface
        """Be ready to answer on the student's device and in its dtype."""
        raise NotImplementedError

    def state_dict(self) -> dict:  # pragma: no cover - interface
        """The teacher's weights, for initialising a student from its layers."""
        raise NotImplementedError

    def layer_count(self, side: str) -> int:  # pragma: no cover - interface
        """Layers of `side` (encoder or decoder)."""
        raise NotImplementedError


class FrozenModelTeacher(Teacher):
    """A trained fairseq model, frozen: eval mode (no dropout), no gradients.

    The model is deliberately *not* an nn.Module attribute of the criterion or the student, so it is
    never saved into student checkpoints, never handed to the optimizer and never wrapped for DDP.
    It follows the student's device and dtype lazily on the first batch.
    """

    def __init__(self, path: str, model: torch.nn.Module, sha256: str):
        self.path = path
        self.sha256 = sha256
        self.model = model
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @classmethod
    def load(cls, path: str, task, build_model) -> "FrozenModelTeacher":
        """Load a checkpoint and build its model for `task` with `build_model(cfg.model)`.

        build_model is the task's plain (non-distilling) model builder, so a distillation task does
        not recurse into itself. Errors name the file and what is wrong.
        """
        state = load_checkpoint(path)
        cfg = state.get("cfg")
        if cfg is None or "model" not in state:
            raise CheckpointError(f"{path} is not a fairseq training checkpoint (no cfg/model)")
        check_teacher_dictionaries(path, cfg, task)
        try:
            model = build_model(cfg.model)
            model.load_state_dict(state["model"], strict=True, model_cfg=cfg.model)
        except (RuntimeError, ValueError, KeyError, AttributeError) as e:
            # RuntimeError: weights of other shapes; the others: a model of another family (a BERT
            # checkpoint for a translation task builds nothing from its config)
            arch = getattr(cfg.model, "_name", None) or getattr(cfg.model, "arch", "?")
            raise CheckpointError(
                f"teacher {path} (arch {arch}) does not fit this task's data (different vocabulary, "
                f"architecture or model family?): {(str(e).splitlines() or [type(e).__name__])[0]}"
            ) from e
        logger.info("loaded frozen teacher %s", path)
        return cls(path, model, sha256_of_file(path))

    @torch.no_grad()
    def logits(self, sample, **forward_kwargs) -> torch.Tensor:
        # forward_kwargs: e.g. classification_head_name for a sentence classifier
        return self.model(**sample["net_input"], **forward_kwargs)[0]

    def follow(self, student: torch.nn.Module) -> None:
        """Put the teacher on the student's device and dtype (cheap when already there): beside an --fp16
        student it runs in float16 (fairseq's .half() of the model does not reach it), which halves its
        cost on a GPU; the criteria compute the distillation term in float32 from its logits."""
        like = next(student.parameters())
        p = next(self.model.parameters())
        if p.device != like.device or p.dtype != like.dtype:
            self.model.to(device=like.device, dtype=like.dtype)
        if not getattr(self, "_announced", False):
            logger.info(f"frozen teacher {self.path} runs on {like.device} in {str(like.dtype).replace('torch.', '')}, "
                        f"the student's precision")
            self._announced = True

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def layer_count(self, side: str) -> int:
        return len(getattr(self.model, side).layers)


def check_teacher_dictionaries(path: str, teacher_cfg, task) -> None:
    """The teacher's vocabulary must be the data's, index for index: otherwise its soft targets
    describe other tokens. Compared symbol by symbol when the teacher's data folder is still there."""
    data = getattr(teacher_cfg.task, "data", None)
    if not data:
        return
    data = str(data).split(os.pathsep)[0]
    src_lang = getattr(teacher_cfg.task, "source_lang", None)
    tgt_lang = getattr(teacher_cfg.task, "target_lang", None)
    if (src_lang is None or tgt_lang is None) and os.path.isdir(data):
        from fairseq.data import data_utils

        src_lang, tgt_lang = data_utils.infer_language_pair(data)
    pairs = []
    if getattr(task, "src_dict", None) is not None and src_lang:
        pairs.append((task.src_dict, src_lang))
    if getattr(task, "tgt_dict", None) is not None and tgt_lang:
        pairs.append((task.tgt_dict, tgt_lang))
    for ours, lang in pairs:
        dict_file = os.path.join(data, f"dict.{lang}.txt")
        if not os.path.exists(dict_file):
            logger.warning(
                "cannot compare dictionaries: the teacher's %s is gone; relying on shape checks",
                dict_file,
            )
            continue
        from fairseq.data import Dictionary

        theirs = Dictionary.load(dict_file)
        if theirs.symbols != ours.symbols:
            first = next(
                (i for i, (a, b) in enumerate(zip(theirs.symbols, ours.symbols)) if a != b),
                min(len(theirs), len(ours)),
            )
            raise CheckpointError(
                f"teacher dictionary {dict_file} ({len(theirs)} symbols) differs from the data "
                f"dictionary ({len(ours)} symbols) at index {first}: the teacher {path} was trained "
                f"on differently binarised data; binarise with the teacher's dictionary "
                f"(fairseq-preprocess --srcdict/--tgtdict)"
            )
