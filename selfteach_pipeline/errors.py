"""The user-facing errors of the plugin and of its light tools: each is printed as one line,
`error: MESSAGE`, with no traceback.

Every error a user can cause (a bad option, file or checkpoint) is a SelfteachError. The plugin's tools
print them; in fairseq's own command-line tools (which catch nothing) fairseq_selfteach/core/
error_report.py's excepthook does; the light tools (the report) run their main under one_line_errors.
They live here, not in the plugin, so that a light module can raise them without importing the plugin
package (whose __init__ imports fairseq); this module imports nothing but os and sys.
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


def one_line_errors(main, argv=None) -> int:
    """Runs a light tool's main (one that imports no fairseq, so no excepthook of the plugin's): a
    SelfteachError is `error: MESSAGE` on stderr and exit status 1, as the plugin's tools print it;
    SELFTEACH_TRACEBACK=1 shows the traceback instead."""
    try:
        return main(argv) or 0
    except SelfteachError as e:
        if os.environ.get("SELFTEACH_TRACEBACK"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
