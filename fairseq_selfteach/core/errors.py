"""The plugin's user-facing errors: one line on stderr, no traceback.

Every error a user can cause (a bad option, file or checkpoint) is a SelfteachError. fairseq-train and
fairseq-generate do not catch exceptions, so importing the plugin installs a sys.excepthook that prints
these as `error: MESSAGE` (exit status 1), and so a checkpoint torch's safe loader refused inside
fairseq's own loading (its message would advise weights_only=False) and a full disk met in fairseq's own
checkpoint saving (whose traceback fairseq also logs before re-raising: a logging filter drops that
one); every other exception is left to Python's usual report. SELFTEACH_TRACEBACK=1 shows the traceback
anyway.
"""
import errno
import logging
import os
import sys


class SelfteachError(Exception):
    """An error the user can fix; its message names the option, file or line."""


class OptionError(SelfteachError, ValueError):
    """A command-line option (or a combination of them) this plugin cannot honour."""


class DiskFullError(SelfteachError, OSError):
    """No space left on the device while writing an output; the previous complete file, if any, is left
    in place and the partial one removed."""


def disk_full(path: str, existed: bool) -> DiskFullError:
    kept = f"the previous {os.path.basename(path)} is unchanged" if existed else "nothing was left under that name"
    return DiskFullError(f"no space left on the device writing {path}: {kept}; free some space and run again")


def _refused_checkpoint(exc, tb):
    """The one line for a checkpoint torch's safe loader refused inside fairseq's own code (fairseq-generate
    --path, fairseq-train resuming or --restore-file), where no plugin loader could catch it: the file is
    read from the torch.load frame of the traceback. None when it is not that."""
    import pickle
    import traceback

    if not isinstance(exc, pickle.UnpicklingError):
        return None
    path = None
    for frame, _ in traceback.walk_tb(tb):
        code = frame.f_code
        if code.co_name == "load" and code.co_filename.endswith(os.path.join("torch", "serialization.py")):
            f = frame.f_locals.get("f")
            path = f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", None)
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        return None
    from fairseq_selfteach.core.checkpoint_io import unreadable_checkpoint_message

    return unreadable_checkpoint_message(os.fspath(path), exc)


def _disk_full(exc, tb):
    """The one line for a full device met inside fairseq's own writing (a checkpoint: fairseq writes it to
    NAME.tmp and renames it, so the previous NAME stays whole), naming the file from the traceback's
    innermost frame that holds one. None when it is not that."""
    import traceback

    from fairseq_selfteach.core.checkpoint_io import is_disk_full

    if not is_disk_full(exc):
        return None
    path = None
    for frame, _ in traceback.walk_tb(tb):
        for name in ("filename", "path", "dst_path", "out_file"):
            value = frame.f_locals.get(name)
            if isinstance(value, (str, os.PathLike)):
                path = os.fspath(value)
    where = f" writing {path}" if path else ""
    return (f"no space left on the device{where}: free some space and run the same command again, which "
            f"continues from the last complete checkpoint")


def _excepthook(exc_type, exc, tb, _previous=sys.excepthook):
    if not os.environ.get("SELFTEACH_TRACEBACK"):
        if issubclass(exc_type, SelfteachError):
            print(f"error: {exc}", file=sys.stderr)
            return
        line = _refused_checkpoint(exc, tb) or _disk_full(exc, tb)
        if line:
            print(f"error: {line}", file=sys.stderr)
            return
    _previous(exc_type, exc, tb)


sys.excepthook = _excepthook


class _DiskFullTraceback(logging.Filter):
    """fairseq logs the traceback of a checkpoint write that failed three times before it re-raises the
    error (checkpoint_utils._torch_persistent_save); for a full disk the excepthook's line says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if os.environ.get("SELFTEACH_TRACEBACK") or record.levelno < logging.ERROR:
            return True
        text = record.getMessage()
        return not (text.startswith("Traceback") and os.strerror(errno.ENOSPC) in text)


logging.getLogger("fairseq.checkpoint_utils").addFilter(_DiskFullTraceback())
