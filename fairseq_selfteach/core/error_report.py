"""The one-line report of a user's error in a command-line process: `error: MESSAGE` on stderr, exit
status 1, no traceback (SELFTEACH_TRACEBACK=1 shows it anyway).

fairseq-train and fairseq-generate catch no exceptions, so in their processes (and in the plugin's own
tools) install() sets a sys.excepthook that prints a SelfteachError as that line, and so a checkpoint
torch's safe loader could not read inside fairseq's own loading (its message would advise
weights_only=False) and a full disk met in fairseq's own checkpoint saving (whose traceback fairseq also
logs before re-raising: a logging filter drops that one). Every other exception keeps Python's report.

Importing the package calls install_in_fairseq_cli(), which installs it only when the process is one
of fairseq's command-line tools (they import the plugin through --user-dir): a notebook, a test or a
downloader that imports the package keeps its own excepthook and logging.
"""
import errno
import logging
import os
import sys

from selfteach_pipeline.errors import SelfteachError
from selfteach_pipeline.files import is_disk_full


def _checkpoint_unreadable(exc, tb):
    """The one line for a checkpoint torch's safe loader refused or could not read inside fairseq's own
    code (fairseq-generate --path, fairseq-train resuming or --restore-file), where no plugin loader could
    catch it: the file is read from the torch.load frame of the traceback. None when it is not that."""
    import pickle
    import traceback

    from fairseq_selfteach.core.checkpoint_io import failed_in_safe_unpickler, unreadable_checkpoint_message

    if not (isinstance(exc, pickle.UnpicklingError) or failed_in_safe_unpickler(exc)):
        return None
    path = None
    for frame, _ in traceback.walk_tb(tb):
        code = frame.f_code
        if code.co_name == "load" and code.co_filename.endswith(os.path.join("torch", "serialization.py")):
            f = frame.f_locals.get("f")
            path = f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", None)
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        return None
    return unreadable_checkpoint_message(os.fspath(path), exc)


def _disk_full(exc, tb):
    """The one line for a full device met inside fairseq's own writing (a checkpoint: fairseq writes it to
    NAME.tmp and renames it, so the previous NAME stays whole), naming the file from the traceback's
    innermost frame that holds one. None when it is not that."""
    import traceback

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


_previous_excepthook = sys.__excepthook__  # what reports every other exception: the hook install() replaced


def _excepthook(exc_type, exc, tb):
    if not os.environ.get("SELFTEACH_TRACEBACK"):
        if issubclass(exc_type, SelfteachError):
            print(f"error: {exc}", file=sys.stderr)
            return
        line = _checkpoint_unreadable(exc, tb) or _disk_full(exc, tb)
        if line:
            print(f"error: {line}", file=sys.stderr)
            return
    _previous_excepthook(exc_type, exc, tb)


class _DiskFullTraceback(logging.Filter):
    """fairseq logs the traceback of a checkpoint write that failed three times before it re-raises the
    error (checkpoint_utils._torch_persistent_save); for a full disk the excepthook's line says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if os.environ.get("SELFTEACH_TRACEBACK") or record.levelno < logging.ERROR:
            return True
        text = record.getMessage()
        return not (text.startswith("Traceback") and os.strerror(errno.ENOSPC) in text)


_disk_full_filter = _DiskFullTraceback()


def install() -> None:
    """Make this process report a user's error in one line (the excepthook and fairseq's log filter);
    a command-line tool's main calls it. Installing twice changes nothing."""
    global _previous_excepthook
    if sys.excepthook is not _excepthook:
        _previous_excepthook, sys.excepthook = sys.excepthook, _excepthook
    logging.getLogger("fairseq.checkpoint_utils").addFilter(_disk_full_filter)  # a no-op the second time


def is_fairseq_cli() -> bool:
    """Whether this process is one of fairseq's command-line tools: a console script fairseq-train,
    fairseq-generate, ... (sys.argv[0]; a torch.multiprocessing worker keeps its parent's), or
    `python -m fairseq_cli.NAME` / `python .../fairseq_cli/NAME.py` (torchrun's way)."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is not None and (main_spec.name or "").startswith("fairseq_cli."):
        return True
    script = sys.argv[0] if sys.argv and sys.argv[0] else ""
    folder, name = os.path.split(script)
    return name.startswith("fairseq-") or os.path.basename(folder) == "fairseq_cli"


def install_in_fairseq_cli() -> None:
    """install() when this process is one of fairseq's command-line tools (see is_fairseq_cli)."""
    if is_fairseq_cli():
        install()
