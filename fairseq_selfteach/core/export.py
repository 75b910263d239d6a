"""Turning a training checkpoint into a plain fairseq one that holds only the student's layers."""
import argparse
import dataclasses
from typing import Dict, Optional

from fairseq_selfteach.core.checkpoint_io import load_checkpoint
from fairseq_selfteach.core.layer_map import keep_first_layers, layer_count
from selfteach_pipeline.files import sha256_of_file


def _as_dict(cfg_part):
    if isinstance(cfg_part, argparse.Namespace):
        return dict(vars(cfg_part))
    from omegaconf import OmegaConf

    if OmegaConf.is_config(cfg_part):
        return OmegaConf.to_container(cfg_part, resolve=True)
    return dict(cfg_part) if cfg_part is not None else None


def training_record(path: str, state: dict, started_from: Optional[str] = None, trained: bool = True) -> dict:
    """What the model behind training checkpoint `path` (its loaded `state`) cost: the seed, the updates
    and the seconds of its training run, read from the run's checkpoint_last.pt beside `path` (the
    budget that was spent, not the update at which `path` was the best), and what it started from.
    trained=False (a teacher cut without training): no seed, 0 updates, 0 seconds of its own."""
    import os

    best_update = (state.get("optimizer_history") or [{}])[-1].get("num_updates", 0)
    record = {"started_from": started_from, "best_update": best_update}
    if not trained:
        return {**record, "seed": None, "updates": 0, "train_seconds": 0.0}
    last = state
    sibling = os.path.join(os.path.dirname(os.path.abspath(path)), "checkpoint_last.pt")
    if os.path.basename(path) != "checkpoint_last.pt" and os.path.exists(sibling):
        last = load_checkpoint(sibling)
    common = _as_dict(state["cfg"].get("common")) or {}
    return {
        **record,
        "seed": common.get("seed"),
        "updates": (last.get("optimizer_history") or [{}])[-1].get("num_updates", 0),
        "train_seconds": round(float((last.get("extra_state") or {}).get("previous_training_time", 0.0)), 1),
    }


def plain_checkpoint(
    path: str,
    keep_layers: Dict[str, Optional[int]],
    depth_options: Dict[str, str],
    plain_arch,
    plain_task: str,
    plain_task_config,
    plain_criterion: str,
    started_from: Optional[str] = None,
    trained: bool = True,
):
    """Build the state of a plain fairseq checkpoint from training checkpoint `path`.

    keep_layers: {state-dict prefix: number of first layers to keep, or None for all}
    depth_options: {state-dict prefix: model-config field holding that depth}
    plain_arch(arch) -> an arch name plain fairseq knows; plain_task: the task name to write, with
    plain_task_config its fairseq dataclass (only its fields are kept from the training task's
    config); plain_criterion: the criterion name to record.
    """
    state = load_checkpoint(path)
    cfg = state["cfg"]
    model_state = state["model"]
    provenance = {"source_checkpoint": path, "source_sha256": sha256_of_file(path),
                  "training": training_record(path, state, started_from, trained)}
    for prefix, keep in keep_layers.items():
        have = layer_count(model_state, prefix)
        if keep is None:
            keep = have
        if not 1 <= keep <= have:
            raise ValueError(
                f"cannot keep {keep} {prefix}: {path} has {have} (choose 1..{have})"
            )
        model_state = keep_first_layers(model_state, prefix, keep)
        provenance[f"{prefix}_kept"] = keep
        keep_layers[prefix] = keep

    model_cfg = _as_dict(cfg["model"])
    for prefix, keep in keep_layers.items():
        model_cfg[depth_options[prefix]] = keep
    arch = plain_arch(model_cfg.get("_name") or model_cfg.get("arch"))
    model_cfg["_name"] = arch
    model_cfg["arch"] = arch
    # legacy model configs carry a copy of every command-line option; drop the plugin's traces
    model_cfg.update({"user_dir": None, "task": plain_task, "criterion": plain_criterion})
    for key in list(model_cfg):
        if key.startswith(("kd_", "teacher_", "student_")):
            del model_cfg[key]

    task_cfg = _as_dict(cfg["task"])
    wanted = {f.name for f in dataclasses.fields(plain_task_config)}
    task_out = {k: v for k, v in task_cfg.items() if k in wanted}
    task_out["_name"] = plain_task

    new_cfg = {k: _as_dict(v) for k, v in cfg.items() if k not in ("model", "task", "criterion")}
    new_cfg["model"] = model_cfg
    new_cfg["task"] = task_out
    new_cfg["criterion"] = {"_name": plain_criterion}
    if new_cfg.get("common"):
        new_cfg["common"]["user_dir"] = None

    task_state = state.get("task_state") or {}
    for key in ("teacher_path", "teacher_sha256"):
        if key in task_state:
            provenance[key] = task_state[key]
    last = (state.get("optimizer_history") or [{}])[-1]
    return checkpoint_skeleton(new_cfg, model_state, plain_criterion, provenance, last)


def checkpoint_skeleton(cfg, model_state, criterion_name: str, provenance: dict, last_optimizer=None) -> dict:
    """A checkpoint dict with exactly what fairseq's loader reads (see fairseq.checkpoint_utils), plus
    our provenance under "selfteach". last_optimizer: the source's last optimizer_history entry, whose
    optimizer name, scheduler state and update count are kept (the optimizer state itself is the
    training run's business); none: a fresh model."""
    last = last_optimizer or {}
    return {
        "args": None,
        "cfg": cfg,
        "model": model_state,
        "optimizer_history": [
            {
                "criterion_name": criterion_name,
                "optimizer_name": last.get("optimizer_name", "none"),
                "lr_scheduler_state": last.get("lr_scheduler_state", {"best": None}),
                "num_updates": last.get("num_updates", 0),
            }
        ],
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0}},
        "task_state": {},
        "selfteach": provenance,
    }
