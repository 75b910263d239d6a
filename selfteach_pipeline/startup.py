"""Start-up paid once: the fork server (scripts/forkserver.py) imports torch and fairseq one time, and
every fairseq-train / -generate / -preprocess and the plugin's export, score and seqkd tools of a run
start as forks of it (their clients, scripts/forkserver-bin/, go first on PATH). A run that finds one
already serving (SELFTEACH_FORKSERVER_SOCKET set, as in the tests) uses that one.
"""
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORKSERVER = os.path.join(ROOT, "scripts", "forkserver.py")
FORKSERVER_BIN = os.path.join(ROOT, "scripts", "forkserver-bin")  # the clients: fairseq-train & co.
BIN = os.path.dirname(sys.executable)  # the real console scripts


def start_forkserver(folder, *options):
    """scripts/forkserver.py serving a socket in folder (its log: folder/forkserver.log), started with
    this process's environment and ready, with options added to `serve`; (its Popen, the socket's path)."""
    sock = os.path.join(folder, "forkserver.sock")
    if len(os.fsencode(sock)) > 100:  # a Unix socket's path is short: a fresh folder in /tmp then
        sock = os.path.join(tempfile.mkdtemp(prefix="selfteach-fs-"), "forkserver.sock")
    with open(os.path.join(folder, "forkserver.out"), "ab") as out:
        proc = subprocess.Popen([sys.executable, "-P", FORKSERVER, "serve", "--socket", sock, "--log",
                                 os.path.join(folder, "forkserver.log"), "--exit-with-parent", *options],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while proc.poll() is None and time.time() < deadline:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(sock)
                return proc, sock
            except OSError:
                time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the fork server did not start; see {folder}/forkserver.out")


def stop_forkserver(proc):
    proc.terminate()
    proc.wait(timeout=30)


@contextlib.contextmanager
def served(folder, echo=print):
    """Within: this process's children find the fork server's clients first on PATH."""
    if os.environ.get("SELFTEACH_FORKSERVER_SOCKET") or not os.path.exists(FORKSERVER):
        yield  # one serves already (the tests'), or a checkout without scripts/: the real tools
        return
    os.makedirs(folder, exist_ok=True)
    proc, sock = start_forkserver(folder)
    echo(f"pipeline: fork server {sock} (torch and fairseq imported once; its log {folder}/forkserver.log)")
    saved = {k: os.environ.get(k) for k in ("PATH", "SELFTEACH_FORKSERVER_SOCKET", "SELFTEACH_FORKSERVER_REAL_BIN")}
    os.environ.update(PATH=os.pathsep.join([FORKSERVER_BIN, BIN, os.environ.get("PATH", "")]),
                      SELFTEACH_FORKSERVER_SOCKET=sock, SELFTEACH_FORKSERVER_REAL_BIN=BIN)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop_forkserver(proc)
