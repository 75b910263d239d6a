"""The plugin's user-facing errors: one line on stderr, no traceback.

Every error a user can cause (a bad option, file or checkpoint) is a SelfteachError. fairseq-train and
fairseq-generate do not catch exceptions, so importing the plugin installs a sys.excepthook that prints
these as `error: MESSAGE` (exit status 1) and leaves every other exception to Python's usual report.
SELFTEACH_TRACEBACK=1 shows the traceback anyway.
"""
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


def _excepthook(exc_type, exc, tb, _previous=sys.excepthook):
    if issubclass(exc_type, SelfteachError) and not os.environ.get("SELFTEACH_TRACEBACK"):
        print(f"error: {exc}", file=sys.stderr)
        return
    _previous(exc_type, exc, tb)


sys.excepthook = _excepthook
