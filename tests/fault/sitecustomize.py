"""Fault injection for the crash tests: `kill -9` at a point the test chooses, not after a sleep.

A test puts this folder first on PYTHONPATH (Python imports `sitecustomize` at start-up) and sets

    SELFTEACH_KILL_AT=MODULE:QUALNAME:N[:SCOPE]

Once MODULE is imported, QUALNAME (a function, or Class.method) is wrapped: when its N-th call in this
process returns, SIGKILL is sent, to the process alone (SCOPE `process`, the default) or to its whole
process group (SCOPE `group`: a pipeline and every lane it started, as `kill -9 -PGID` would). Nothing
after the call runs, no handler, no cleanup, as with a real `kill -9`. SCOPE `halfway` is for a copy
function called as (source, destination, ...): its N-th call writes the first half of source to
destination and kills the process, as a kill during the copy would leave it. SCOPE `enospc` kills
nothing: the N-th call and every later one raise OSError(ENOSPC) instead of running, as a full disk would. Without the
variable this file does nothing. It is test code: the package never imports it.
"""
import errno
import importlib.abc
import importlib.util
import os
import signal
import sys

_SPEC = os.environ.get("SELFTEACH_KILL_AT", "")


def _kill(scope):
    sys.stdout.flush()
    sys.stderr.flush()
    if scope == "group":
        os.killpg(os.getpgid(0), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _wrap(module, qualname, n, scope):
    *owner_path, name = qualname.split(".")
    owner = module
    for part in owner_path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        if scope == "enospc" and calls[0] + 1 >= n:  # a full disk stays full: retries fail too
            calls[0] += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if scope == "halfway" and calls[0] + 1 == n:
            with open(args[0], "rb") as src, open(args[1], "wb") as dst:
                data = src.read()
                dst.write(data[: len(data) // 2])
            _kill("process")
        result = original(*args, **kwargs)
        calls[0] += 1
        if calls[0] == n:
            _kill(scope)
        return result

    setattr(owner, name, wrapper)


class _AfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds MODULE with the other finders, runs it, then wraps QUALNAME."""

    def __init__(self, module_name, qualname, n, scope):
        self.module_name, self.qualname, self.n, self.scope = module_name, qualname, n, scope
        self.inner = None

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.module_name or self.inner is not None:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None:
            return None
        self.inner = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        _wrap(module, self.qualname, self.n, self.scope)


if _SPEC:
    _parts = _SPEC.split(":")
    if len(_parts) not in (3, 4) or not _parts[2].isdigit() or (len(_parts) == 4 and _parts[3] not in ("process", "group", "halfway", "enospc")):
        sys.exit(f"SELFTEACH_KILL_AT={_SPEC!r}: expected MODULE:QUALNAME:N[:process|group|halfway|enospc]")
    _module, _qualname, _n = _parts[0], _parts[1], int(_parts[2])
    _scope = _parts[3] if len(_parts) == 4 else "process"
    if _module in sys.modules:
        _wrap(sys.modules[_module], _qualname, _n, _scope)
    else:
        sys.meta_path.insert(0, _AfterImport(_module, _qualname, _n, _scope))
