"""A training resumed from its checkpoint continues exactly as the uninterrupted one would have.

fairseq resumes the weights, the optimizer, the learning-rate schedule, the data position and the
dropout seed (seed + update number), but two things it keeps only in memory differ after a restart:

- The order of examples of equal length. fairseq-train draws it under numpy_seed(seed + epoch) with
  the epoch the batch iterator is first built at, and keeps that iterator for every later epoch: epoch
  1 in a run from the start, the resumed epoch after a restart, so a resumed run trains on other
  batches (measured: the valid loss one epoch after a restart differed in the second decimal). The
  mixin builds a reusable iterator's order as at epoch 1 whatever the epoch, as a run from the start
  always has: nothing changes for an uninterrupted run.
- `--patience`: fairseq_cli.train's should_stop_early counts the validations without improvement in
  attributes of the function itself, which a restart resets, so a resumed run stops later. The mixin
  saves them in the checkpoint's task state and, as fairseq-train does not hand a resumed task its
  state, reads them back from the checkpoint it will restore when the model is built.

- Half precision (--fp16): fairseq keeps the optimizer's float32 master copy of the weights and the
  loss scaler's counters in memory only (the checkpoint holds the float16 weights and the loss scale),
  so a resumed run would go on from weights rounded to float16, and double its loss scale at other
  updates. The mixin saves both in the checkpoint's task state (4 bytes per parameter) and puts them
  back before the resumed run's first update.

And one thing fairseq does not write atomically: it saves a checkpoint once (checkpoint_best.pt, say)
and copies it to the others (checkpoint_last.pt) in place, so a kill during the copy leaves a
checkpoint_last.pt cut short. Before the restore, such a file is replaced by the complete checkpoint it
was being copied from, which holds the same state.
"""
import logging
import os
import sys
import zipfile
from dataclasses import dataclass
from typing import Optional

import torch
from fairseq.data import data_utils
from fairseq.dataclass import FairseqDataclass
from omegaconf import II
from omegaconf.errors import InterpolationResolutionError

from selfteach_pipeline.files import atomic_copy

logger = logging.getLogger(__name__)

_EARLY_STOP = "early_stop"
_HALF_PRECISION = "half_precision"
# fairseq's DynamicLossScaler keeps these between updates (fairseq/optim/dynamic_loss_scaler.py)
_SCALER_FIELDS = ("loss_scale", "_iter", "_last_overflow_iter", "_last_rescale_iter", "_overflows_since_rescale")


def _should_stop_early():
    """fairseq-train's should_stop_early, from the module that runs it (fairseq-train imports
    fairseq_cli.train; `python -m fairseq_cli.train`, as under torchrun, runs it as __main__)."""
    for name in ("fairseq_cli.train", "__main__"):
        function = getattr(sys.modules.get(name), "should_stop_early", None)
        if callable(function):
            return function
    return None


@dataclass
class ResumeConfig(FairseqDataclass):
    """Read, never set: where fairseq-train resumes from."""

    save_dir: Optional[str] = II("checkpoint.save_dir")
    restore_file: Optional[str] = II("checkpoint.restore_file")
    reset_optimizer: bool = II("checkpoint.reset_optimizer")
    reset_meters: bool = II("checkpoint.reset_meters")


def saved_task_state(path: str) -> dict:
    """The task state of the checkpoint at PATH ({} where there is none, or the file is not one fairseq
    could restore, which fairseq itself then reports). Memory-mapped: the weights are not read."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not for this reader to explain: fairseq's restore of the same file does
        return {}
    task_state = state.get("task_state") if isinstance(state, dict) else None
    return task_state if isinstance(task_state, dict) else {}


def _cut_short(path: str) -> bool:
    """A zip file (as torch.save writes) whose end is missing; never a complete or a legacy checkpoint."""
    with open(path, "rb") as f:
        starts_as_zip = f.read(4) == b"PK\x03\x04"
    return starts_as_zip and not zipfile.is_zipfile(path)


def repair_cut_copy(path: str) -> Optional[str]:
    """Where the checkpoint at PATH is cut short, replace it (atomically) with the newest complete
    checkpoint*.pt beside it not newer than it, the file fairseq was copying; return that file's path
    (None: nothing to repair, or nothing to repair it from, which fairseq's restore then reports)."""
    if not _cut_short(path):
        return None
    folder, written = os.path.dirname(os.path.abspath(path)), os.path.getmtime(path)
    sources = []
    for name in os.listdir(folder):
        candidate = os.path.join(folder, name)
        if (name.startswith("checkpoint") and name.endswith(".pt") and candidate != os.path.abspath(path)
                and os.path.getmtime(candidate) <= written and zipfile.is_zipfile(candidate)):
            sources.append((os.path.getmtime(candidate), candidate))
    if not sources:
        return None
    source = max(sources)[1]
    atomic_copy(source, path)
    return source


class ExactResumeTaskMixin:
    """Mixed in front of a fairseq task whose config has ResumeConfig's fields (see the module's
    docstring)."""

    def resume_path(self) -> Optional[str]:
        """The checkpoint fairseq-train will restore, as fairseq finds it: --restore-file, or
        checkpoint_last.pt in --save-dir (None where the config has no checkpoint group)."""
        try:
            save_dir, restore = getattr(self.cfg, "save_dir", None), getattr(self.cfg, "restore_file", None)
        except InterpolationResolutionError:
            return None
        if not restore:
            return None
        return os.path.join(save_dir or ".", restore) if restore == "checkpoint_last.pt" else restore

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        path = None if from_checkpoint else self.resume_path()
        if path is not None and os.path.isfile(path):
            source = repair_cut_copy(path)
            if source is not None:
                logger.warning(f"{path} was cut short (killed while fairseq copied a checkpoint to it): replaced "
                               f"with {source}, the complete checkpoint it was a copy of")
            if not self._starts_afresh():
                saved = saved_task_state(path)
                self._restore_early_stop(saved.get(_EARLY_STOP))
                half = saved.get(_HALF_PRECISION)
                # restored at the first update, once fairseq has built the optimizer and loaded its state
                self._pending_half_precision = None if half is None else {
                    "scaler": dict(half["scaler"]), "master": [t.clone() for t in half.get("master", [])]}
        return model

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        self._optimizer = optimizer  # read when a checkpoint is saved (state_dict)
        pending = getattr(self, "_pending_half_precision", None)
        if pending is not None:
            self._pending_half_precision = None
            restore_half_precision_state(optimizer, model, pending)
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def get_batch_iterator(self, dataset, *args, seed=1, epoch=1, disable_iterator_cache=False,
                           update_epoch_batch_itr=False, **kwargs):
        reused = (not disable_iterator_cache and not update_epoch_batch_itr and self.can_reuse_epoch_itr(dataset)
                  and dataset not in self.dataset_to_epoch_iter)
        patched = reused and epoch != 1 and "ordered_indices" not in vars(dataset)
        if patched:
            ordered_indices = dataset.ordered_indices

            def as_at_epoch_1():
                with data_utils.numpy_seed(seed + 1):
                    return ordered_indices()

            dataset.ordered_indices = as_at_epoch_1  # for this call only: fairseq calls it inside
        try:
            return super().get_batch_iterator(
                dataset, *args, seed=seed, epoch=epoch, disable_iterator_cache=disable_iterator_cache,
                update_epoch_batch_itr=update_epoch_batch_itr, **kwargs)
        finally:
            if patched:
                del dataset.ordered_indices

    def state_dict(self):
        state = dict(super().state_dict())
        stop = _should_stop_early()
        if stop is not None and getattr(stop, "best", None) is not None:
            state[_EARLY_STOP] = {"best": float(stop.best), "num_runs": int(getattr(stop, "num_runs", 0))}
        half = half_precision_state(getattr(self, "_optimizer", None))
        if half is not None:
            state[_HALF_PRECISION] = half
        return state

    def _starts_afresh(self) -> bool:
        """--reset-optimizer or --reset-meters: a new training from the checkpoint's weights, for which
        fairseq does not restore the best score either."""
        try:
            return bool(getattr(self.cfg, "reset_optimizer", False) or getattr(self.cfg, "reset_meters", False))
        except InterpolationResolutionError:
            return False

    def _restore_early_stop(self, record) -> None:
        stop = _should_stop_early()
        if isinstance(record, dict) and stop is not None:
            stop.best, stop.num_runs = record["best"], record["num_runs"]
            logger.info(f"--patience: {record['num_runs']} validations without improvement on the best "
                        f"{record['best']} so far, as when the checkpoint was saved")


def _master_params(optimizer) -> list:
    """fairseq's FP16Optimizer's float32 copy of the weights, as a list of tensors (one per parameter
    with --fp16-no-flatten-grads, one per device when flattened); [] for --memory-efficient-fp16."""
    params = getattr(optimizer, "fp32_params", None)
    if params is None:
        return []
    if torch.is_tensor(params):
        return [params.data]
    return [p.data for p in (params.values() if isinstance(params, dict) else params)]


def half_precision_state(optimizer) -> Optional[dict]:
    """What a half-precision optimizer keeps only in memory: its loss scaler's counters and its float32
    master weights (None: not a half-precision optimizer)."""
    scaler = getattr(optimizer, "scaler", None)
    if scaler is None or not all(hasattr(scaler, f) for f in _SCALER_FIELDS):
        return None
    return {"scaler": {f: getattr(scaler, f) for f in _SCALER_FIELDS},
            "master": [t.detach().cpu() for t in _master_params(optimizer)]}


def restore_half_precision_state(optimizer, model, saved: dict) -> None:
    """Put back what half_precision_state saved, where it belongs to these weights: the master copy
    rounded to float16 must be the model's weights, else (another checkpoint's state) nothing is restored."""
    scaler, master = getattr(optimizer, "scaler", None), _master_params(optimizer)
    if scaler is None or len(master) != len(saved["master"]) or any(
            a.shape != b.shape for a, b in zip(master, saved["master"])):
        logger.warning("the checkpoint's half-precision optimizer state does not fit this run's optimizer: "
                       "not restored (the run goes on from the float16 weights)")
        return
    if master:
        flat = torch.cat([p.data.reshape(-1) for p in model.parameters() if p.requires_grad])
        saved_flat = torch.cat([t.reshape(-1) for t in saved["master"]])
        if flat.numel() != saved_flat.numel() or not torch.equal(saved_flat.to(flat.dtype), flat.cpu()):
            logger.warning("the checkpoint's float32 master weights are not its model's weights: not restored")
            return
        for param, value in zip(master, saved["master"]):
            param.copy_(value.to(param.device))
    for field, value in saved["scaler"].items():
        setattr(scaler, field, value)
    logger.info(f"half precision: the float32 master weights ({len(master)} tensors) and the loss scaler "
                f"(scale {scaler.loss_scale}, update {scaler._iter}) restored as they were saved")
