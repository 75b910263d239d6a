"""The plugin's user-facing errors: each is printed as one line, `error: MESSAGE`, with no traceback.

Every error a user can cause (a bad option, file or checkpoint) is a SelfteachError. The plugin's tools
print them; in fairseq's own command-line tools (which catch nothing) core/error_report.py's excepthook
does. This module imports nothing of the package, torch or fairseq, so every module can import it.
"""
import os


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
