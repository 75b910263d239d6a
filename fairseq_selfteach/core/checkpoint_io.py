"""Safe checkpoint loading, atomic writing and the file helpers (sha256, umask) the package and
preprocess/ share.

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
import contextlib
import errno
import hashlib
import os
import pickle
import re
import shutil
import tempfile
import typing

import omegaconf
import torch
from fairseq.distributed.utils import _TensorPlaceholder
from omegaconf.base import ContainerMetadata, Metadata
from omegaconf.nodes import AnyNode

from fairseq_selfteach.core.errors import SelfteachError, disk_full

# The only global that fairseq 0.12/main translation and sentence_prediction checkpoints need
# (checked with torch.serialization.get_unsafe_globals_in_checkpoint, see shared/DEPENDENCIES.md).
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
    except (pickle.UnpicklingError, EOFError, RuntimeError, KeyError, ValueError, OSError) as e:
        raise CheckpointError(unreadable_checkpoint_message(path, e)) from e


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
    return f"cannot read checkpoint {path}: {first}"


def sha256_of_file(path: str, chunk_size: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _written_beside(path: str, suffix: str = ""):
    """A temporary file beside path, yielded as (fd, name), renamed onto path when the block ends well;
    on any error it is removed, and a full device becomes one DiskFullError naming path (whose previous
    version, if any, is then untouched)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    existed = os.path.exists(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    try:
        yield fd, tmp
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if is_disk_full(e):
            raise disk_full(path, existed) from e
        raise


def atomic_torch_save(obj, path: str) -> None:
    """torch.save to a temporary file in the same folder, then rename: a reader never sees a
    half-written checkpoint under the final name."""
    with _written_beside(path, ".pt") as (fd, _):
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)


def current_umask() -> int:
    """The process's umask (os.umask can only be read by setting it, so it is set back at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def usual_file_mode() -> int:
    """0666 less the umask: what open() would give; mkstemp's temporary files are private (0600)."""
    return 0o666 & ~current_umask()


def atomic_write_text(path: str, text: str) -> None:
    """Write text to a temporary file beside path, then rename it: path is whole or absent. The file
    gets the usual permissions (0666 less the umask), not mkstemp's private 0600."""
    with _written_beside(path) as (fd, tmp):
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, usual_file_mode())


def atomic_copy(source: str, path: str) -> None:
    """Copy source to a temporary file beside path, then rename it: path is whole or absent."""
    with _written_beside(path, ".pt") as (fd, tmp):
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(tmp, usual_file_mode())


def is_disk_full(error: BaseException) -> bool:
    """An OSError for a full device (ENOSPC, or EDQUOT: over quota), also where torch.save wraps it in a
    RuntimeError of its zip writer."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(error, RuntimeError) and "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


# output folders: filled privately beside the final name, then renamed into place whole


def publish_dir(tmp, final):
    """Make the complete folder tmp (made by mkdtemp beside final, so private) the folder final, with
    the usual permissions. An older final is replaced only once the new one is complete, then removed."""
    os.chmod(tmp, 0o777 & ~current_umask())
    if os.path.lexists(final):
        old = tempfile.mkdtemp(prefix=os.path.basename(final) + ".old-", dir=os.path.dirname(final))
        os.replace(final, os.path.join(old, "replaced"))
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def staged_dir(final):
    """A private temporary folder beside final to fill in the with block; it becomes final
    (publish_dir) when the block ends without error, and is removed when it does not."""
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(final) + ".tmp-", dir=parent)
    try:
        yield tmp
        publish_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
