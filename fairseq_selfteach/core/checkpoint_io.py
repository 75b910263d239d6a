"""Safe checkpoint loading and atomic checkpoint writing (the file helpers without torch, sha256 and
atomic text writes, are selfteach_pipeline/files.py's).

torch >= 2.6 loads with weights_only=True, which refuses fairseq checkpoints because they pickle an
argparse.Namespace (the legacy model arguments). Importing this module allow-lists exactly that class,
so fairseq-generate, fairseq-train --restore-file and our own loaders work while torch stays in safe
mode: any other global in a pickle (os.system, a crafted __reduce__) is still refused. We never pass
weights_only=False and never set TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.

In distributed training rank 0 loads a checkpoint (resume, --restore-file, --finetune-from-model) and
broadcasts the state, which the other ranks torch.load in safe mode; that state holds the omegaconf
config load_checkpoint_to_cpu built, so the data classes it pickles are allow-listed too.
"""
import argparse
import collections
import os
import pickle
import re
import traceback
import typing

import omegaconf
import torch
from fairseq.distributed.utils import _TensorPlaceholder
from omegaconf.base import ContainerMetadata, Metadata
from omegaconf.nodes import AnyNode

from selfteach_pipeline.errors import SelfteachError
from selfteach_pipeline.files import written_beside

# The only global that fairseq 0.12/main translation and sentence_prediction checkpoints need
# (checked with torch.serialization.get_unsafe_globals_in_checkpoint, see docs/install.md#fairseq-on-python-311-and-torch-213).
CHECKPOINT_SAFE_GLOBALS = [argparse.Namespace]
# What fairseq's broadcast_object pickles of a loaded checkpoint besides (the same check, run on the
# buffer it sends, for translation and BERT checkpoints): the tensor placeholders and the omegaconf
# DictConfig built from the saved cfg, whose nodes are untyped (AnyNode) and whose metadata names the
# plain types dict, int, list and typing.Any. Data classes only: nothing here runs code when unpickled.
BROADCAST_SAFE_GLOBALS = [
    _TensorPlaceholder, omegaconf.DictConfig, omegaconf.ListConfig, ContainerMetadata, Metadata,
    AnyNode, typing.Any, collections.defaultdict, dict, int, list,
]
torch.serialization.add_safe_globals(CHECKPOINT_SAFE_GLOBALS + BROADCAST_SAFE_GLOBALS)


class CheckpointError(SelfteachError, RuntimeError):
    """A checkpoint that cannot be used, with a message naming the file and why."""


def load_checkpoint(path: str):
    """fairseq's load_checkpoint_to_cpu (with its upgrades), but with errors that name the file."""
    from fairseq import checkpoint_utils

    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"checkpoint not readable: {path}")
    try:
        return checkpoint_utils.load_checkpoint_to_cpu(path)
    except Exception as e:
        if not (isinstance(e, _READ_ERRORS) or failed_in_safe_unpickler(e)):
            raise
        raise CheckpointError(unreadable_checkpoint_message(path, e)) from e


# what reading a file that is not a (whole) fairseq checkpoint raises, in torch's loader or fairseq's upgrades
_READ_ERRORS = (pickle.UnpicklingError, EOFError, RuntimeError, KeyError, ValueError, OSError)


def failed_in_safe_unpickler(error: BaseException) -> bool:
    """Whether error was raised inside torch's weights_only unpickler: on malformed bytes it can fail with
    any exception (b"abc\\0\\1" pops an empty stack: IndexError), and each means an unreadable file."""
    return any(frame.f_code.co_filename.endswith("_weights_only_unpickler.py")
               for frame, _ in traceback.walk_tb(error.__traceback__))


def unreadable_checkpoint_message(path: str, error: Exception) -> str:
    """One line on why torch's safe loader could not read `path`. torch's own message starts with its
    advice to re-run with weights_only=False, which would run whatever code the file holds: only the
    facts are kept (the global it refused, or that the file is not a checkpoint at all)."""
    text = str(error)
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:
        return (f"refused to load {path}: it contains code (unpickling it would call {refused.group(1)}), "
                f"not only the tensors and plain data of a fairseq checkpoint")
    if isinstance(error, pickle.UnpicklingError):
        return f"cannot read checkpoint {path}: it is not a PyTorch checkpoint (neither torch's zip format nor a pickle)"
    with open(path, "rb") as f:
        head = f.read(4)
    zipped = head == b"PK\x03\x04"  # torch's format: a zip whose directory is at the end
    if head and not zipped and head[:1] != b"\x80":  # neither that nor a pickle (its protocol byte)
        return f"cannot read checkpoint {path}: it is not a PyTorch checkpoint (neither torch's zip format nor a pickle)"
    if isinstance(error, EOFError) or zipped or "central directory" in text or "failed reading" in text:
        size = os.path.getsize(path)
        return (f"cannot read checkpoint {path}: " + ("the file is empty" if size == 0 else
                f"it ends early ({size:,} bytes: truncated, or still being written)"))
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    if failed_in_safe_unpickler(error):
        return f"cannot read checkpoint {path}: its pickle is malformed ({type(error).__name__}: {first})"
    return f"cannot read checkpoint {path}: {first}"


def atomic_torch_save(obj, path: str) -> None:
    """torch.save to a temporary file in the same folder, then rename: a reader never sees a
    half-written checkpoint under the final name."""
    with written_beside(path, ".pt") as (fd, _):
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
