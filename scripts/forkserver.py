#!/usr/bin/env python3
"""A fork server: torch, fairseq and fairseq_cli.{train,generate,preprocess} imported once, each
fairseq-train / fairseq-generate / fairseq-preprocess run a fork of that process (and the plugin's
selfteach-export-student / -score-translation / -seqkd-corpus / -evaluate-glue / -convert-hf-bert, which
import the plugin in the fork).

    python -P scripts/forkserver.py serve --socket PATH [--log FILE]

(-P: scripts/ is not put on the children's module path, as a real fairseq-train has none of it)

The clients are scripts/forkserver-bin/fairseq-{train,generate,preprocess} and selfteach-* (SELFTEACH_FORKSERVER_SOCKET
names the socket). A client sends its argv, environment and working directory, with its stdin, stdout and
stderr (SCM_RIGHTS); the server forks a child that takes them over and runs the tool's cli_main as its
console script would. The server sends the child's pid, then its exit status (negative: the signal that
killed it). A child dies with its client: it watches the client's socket and SIGKILLs its own process
group at EOF, so `kill -9` of a client leaves no training behind. Signal lines from the client
("signal N") are passed to the child's process group, as a terminal's Ctrl-C reaches a real one.

A request whose run a fork cannot reproduce is answered "fallback" and the client execs the real tool:
SELFTEACH_KILL_AT (tests/fault/sitecustomize.py acts at interpreter start-up) or a variable read at
start-up (PYTHON*, the OpenMP/MKL settings, the locale, fairseq's LOGLEVEL) that differs from the
server's. The plugin is not imported here: plain-fairseq runs stay plugin-free, --user-dir imports it in
the child. The tests use it by default (tests/conftest.py; SELFTEACH_FORKSERVER=0 turns it off); the pipelines
only when run by them.
"""
import argparse
import json
import os
import select
import signal
import socket
import sys
import time

TOOLS = {"fairseq-train": "fairseq_cli.train", "fairseq-generate": "fairseq_cli.generate",
         "fairseq-preprocess": "fairseq_cli.preprocess"}
# the plugin's own tools: their module (and the plugin) is imported in the child, never in the server,
# so the plain-fairseq runs stay plugin-free; each starts as its console script does, MODULE:main()
PLUGIN_TOOLS = {"selfteach-export-student": "fairseq_selfteach.cli.export_student",
                "selfteach-score-translation": "fairseq_selfteach.cli.score_translation",
                "selfteach-seqkd-corpus": "fairseq_selfteach.cli.seqkd_corpus",
                "selfteach-evaluate-glue": "fairseq_selfteach.cli.evaluate_glue",
                "selfteach-convert-hf-bert": "fairseq_selfteach.cli.convert_hf_bert"}
PROBE = "forkserver-probe"  # a test-only tool, served with --testing: reports what its child sees
BIN = os.path.dirname(sys.executable)  # where the real console scripts are: argv[0] of each child
MAX_REQUEST = 1 << 22
START_ENV = dict(os.environ)  # before the imports, some of which set variables (sklearn: KMP_*)

# read once when the interpreter, the OpenMP runtime, MKL or fairseq's logging start, so a child would
# keep the server's value: a request that differs runs as a real process (the thread counts excepted:
# torch.set_num_threads sets them in the child)
START_UP_PREFIXES = ("PYTHON", "OMP_", "GOMP_", "KMP_", "MKL_", "LC_")
START_UP_NAMES = ("LANG", "LOGLEVEL", "LD_PRELOAD", "LD_LIBRARY_PATH", "SELFTEACH_KILL_AT")
PER_CHILD = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def start_up_differences(env, own):
    """The start-up variables whose value in env differs from their value in own, sorted."""
    names = {k for k in set(env) | set(own)
             if (k.startswith(START_UP_PREFIXES) or k in START_UP_NAMES) and k not in PER_CHILD}
    return sorted(k for k in names if env.get(k) != own.get(k))


def refusal(request, testing, import_env, loaded_env):
    """Why a request runs as a real process instead (None: it is served). import_env: what the imports
    set by default (os.environ.setdefault), as they would in the client's own process."""
    tool = request.get("tool")
    if tool not in TOOLS and tool not in PLUGIN_TOOLS and not (testing and tool == PROBE):
        return f"not a served tool: {tool!r}"
    if not isinstance(request.get("argv"), list) or not isinstance(request.get("env"), dict):
        return "malformed request"
    if "SELFTEACH_KILL_AT" in request["env"]:
        return "SELFTEACH_KILL_AT needs a real process"
    differ = start_up_differences({**import_env, **request["env"]}, loaded_env)
    return f"start-up variables differ from the server's: {', '.join(differ)}" if differ else None


def recv_request(conn):
    """(request, fds): a 4-byte length sent with the client's three descriptors, then that much JSON."""
    header, fds, _, _ = socket.recv_fds(conn, 4, 3)
    if not header and not fds:
        raise EOFError  # a connection that only checked the server answers
    try:
        if len(header) != 4 or len(fds) != 3:
            raise ValueError("incomplete request")
        length = int.from_bytes(header, "big")
        if length > MAX_REQUEST:
            raise ValueError("request too large")
        body = b""
        while len(body) < length:
            chunk = conn.recv(length - len(body))
            if not chunk:
                raise ValueError("client went away mid-request")
            body += chunk
        request = json.loads(body)
        if not isinstance(request, dict):
            raise ValueError("malformed request")
        return request, fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def send_line(conn, message):
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:  # the client is gone: its child was (or will be) killed by its watcher
        pass


# ------------------------------------------------------------------------------------------------
# the server


class Server:
    def __init__(self, path, log, testing, request_timeout=10.0, exit_with_parent=False):
        self.path, self.log_file, self.testing = path, log, testing
        self.request_timeout = request_timeout
        self.parent = os.getppid() if exit_with_parent else None
        self.running = {}  # child pid -> (conn, tool, start time)
        self.roots = {}  # tool -> (handlers, level) of the root logger a fresh process of it has

    def preload(self):
        """Import what every run would, leaving the root logger as each tool's fresh process has it:
        fairseq's import (a wav2vec module) configures it to stderr at DEBUG, unless fairseq_cli.train
        configured it first (stdout, INFO), as it does before importing fairseq."""
        import logging

        root = logging.getLogger()
        import fairseq_cli.generate  # noqa: F401
        import fairseq_cli.preprocess  # noqa: F401
        self.roots["fairseq-generate"] = self.roots["fairseq-preprocess"] = (list(root.handlers), root.level)
        self.roots[PROBE] = self.roots["fairseq-generate"]
        for tool in PLUGIN_TOOLS:  # their fresh process imports fairseq before anything logs
            self.roots[tool] = self.roots["fairseq-generate"]
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
        import fairseq_cli.train  # noqa: F401
        self.roots["fairseq-train"] = (list(root.handlers), root.level)

        import torch
        import torch._dynamo  # noqa: F401  (a training's first optimizer imports it: 1.2-1.9 s of CPU)

        # a real process's thread count where the client sets none; the server's own may be set
        self.default_threads = (len(os.sched_getaffinity(0)) if "OMP_NUM_THREADS" in os.environ
                                else torch.get_num_threads())
        if torch.cuda.is_initialized():  # a forked child could not use CUDA
            raise RuntimeError("CUDA was initialised while preloading")
        self.import_env = {k: v for k, v in os.environ.items() if k not in START_ENV}
        self.loaded_env = dict(os.environ)

    def log(self, *words):
        if self.log_file:
            with open(self.log_file, "a") as f:
                f.write(" ".join(str(w) for w in (time.strftime("%H:%M:%S"),) + words) + "\n")

    def serve(self):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(64)
        # SIGCHLD wakes the select through this pipe: one thread, no fork from a threaded process
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        self.wake_w = wake_w
        self.log("serving", self.path, "pid", os.getpid())
        print(f"forkserver: serving {self.path}", flush=True)
        try:
            while True:
                ready, _, _ = select.select([self.listener, self.wake_r], [], [], 2)
                if self.parent is not None and os.getppid() != self.parent:
                    sys.exit(0)  # its pytest worker was killed: no server left behind
                if self.wake_r in ready:
                    os.read(self.wake_r, 4096)
                    self.reap()
                if self.listener in ready:
                    self.accept()
        finally:
            self.listener.close()
            if os.path.exists(self.path):
                os.unlink(self.path)

    def accept(self):
        conn, _ = self.listener.accept()
        conn.settimeout(self.request_timeout)  # a client that connects and says nothing cannot hold the server
        try:
            request, fds = recv_request(conn)
        except EOFError:
            conn.close()
            return
        except (OSError, ValueError) as e:
            self.log("bad request:", e)
            conn.close()
            return
        reason = refusal(request, self.testing, self.import_env, self.loaded_env)
        if reason:
            return self.fallback(conn, fds, request, reason)
        conn.settimeout(None)  # the child's watcher blocks on it for the whole run
        sys.stdout.flush()  # nothing buffered here may be written again by the child
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as e:  # no memory or too many processes: the client runs the real tool
            return self.fallback(conn, fds, request, f"fork failed: {e}")
        if pid == 0:
            os._exit(self.child(conn, fds, request))
        for fd in fds:
            os.close(fd)
        self.running[pid] = (conn, request["tool"], time.time())
        self.log("start", request["tool"], "pid", pid)
        send_line(conn, {"pid": pid})

    def fallback(self, conn, fds, request, reason):
        """Tell the client to run the real tool itself."""
        for fd in fds:
            os.close(fd)
        self.log("fallback", request.get("tool"), reason)
        send_line(conn, {"fallback": reason})
        conn.close()

    def reap(self):
        while self.running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            conn, tool, start = self.running.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            self.log("end", tool, "pid", pid, "exit", code, f"{time.time() - start:.1f}s")
            send_line(conn, {"exit": code})
            conn.close()

    # --------------------------------------------------------------------------------------------
    # the child: becomes the client's process, runs the tool, never returns to the loop

    def child(self, conn, fds, request):
        try:
            self.become_client(conn, fds, request)
        except BaseException as e:  # the set-up failed (a cwd gone): one line, as a process would
            os.write(2, f"forkserver: {request['tool']}: {e}\n".encode(errors="replace"))
            return 1
        return run_tool(request["tool"])

    def become_client(self, conn, fds, request):
        import logging
        import threading

        os.setpgid(0, 0)  # its own group: killed with its client, the tool's own workers go too
        signal.set_wakeup_fd(-1)
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)
        self.listener.close()
        for other, _, _ in self.running.values():  # other clients must see EOF when the server goes
            other.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update({**self.import_env, **request["env"]})
        os.chdir(request["cwd"])
        tool = request["tool"]
        argv0 = os.path.join(BIN, tool)
        sys.argv = [argv0] + [str(a) for a in request["argv"]]
        # __main__ as the console script: multiprocessing's spawn re-imports it by this path
        main = type(sys)("__main__")
        main.__file__ = argv0
        sys.modules["__main__"] = main
        handlers, level = self.roots[tool]
        root = logging.getLogger()
        root.handlers[:] = handlers
        root.setLevel(level)
        sys.stdout.reconfigure(line_buffering=os.isatty(1))  # as a fresh process sets it for its fd 1

        import numpy
        import torch

        numpy.random.seed()  # a fresh process's numpy draws its seed; forks would share the server's
        threads = os.environ.get("OMP_NUM_THREADS", "")
        torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else self.default_threads)
        threading.Thread(target=watch_client, args=(conn,), daemon=True).start()


def watch_client(conn):
    """In the child: the client's signal lines reach this process group; EOF (the client died) kills it."""
    buffered = b""
    while True:
        try:
            data = conn.recv(256)
        except OSError:
            data = b""
        if not data:
            os.killpg(0, signal.SIGKILL)
        buffered += data
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            words = line.split()
            if len(words) == 2 and words[0] == b"signal" and words[1].isdigit():
                os.killpg(0, int(words[1]))


def exit_status(code):
    """What the interpreter makes of SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def run_tool(tool):
    """The console script's `sys.exit(cli_main())` and the interpreter's ending around it; the status."""
    import atexit
    import threading

    try:
        try:
            if tool == PROBE:
                code = probe()
            elif tool in PLUGIN_TOOLS:
                import importlib

                code = importlib.import_module(PLUGIN_TOOLS[tool]).main()
            else:
                code = sys.modules[TOOLS[tool]].cli_main()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        raise SystemExit(code)
    except SystemExit as e:
        status = exit_status(e.code)
    except KeyboardInterrupt:  # Python ends by SIGINT then, so the caller sees the signal
        sys.excepthook(*sys.exc_info())
        status = -signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        status = 1
    shutdown = getattr(threading, "_shutdown", None)  # the interpreter waits for non-daemon threads
    if shutdown:
        shutdown()
    atexit._run_exitfuncs()  # logging's flush, torch's and fairseq's handlers, as at a real exit
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 120  # as the interpreter reports a failed flush
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


def probe():
    """The test-only tool: prints what the child sees as JSON; `--pid-file F` then sleeps, `--sleep S`,
    `--exit N`, `--raise`."""
    import torch

    args = sys.argv[1:]
    report = {"pid": os.getpid(), "cwd": os.getcwd(), "argv": sys.argv, "threads": torch.get_num_threads(),
              "plugin": "fairseq_selfteach" in sys.modules, "env": dict(os.environ),
              "stdin": sys.stdin.read() if "--stdin" in args else None}
    print(json.dumps(report), flush=True)
    print("probe stderr", file=sys.stderr)
    if "--raise" in args:
        raise RuntimeError("probe failed")
    if "--sleep" in args:
        time.sleep(float(args[args.index("--sleep") + 1]))
    if "--exit" in args:
        return int(args[args.index("--exit") + 1])
    if "--pid-file" in args:
        with open(args[args.index("--pid-file") + 1], "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(60)
    return 0


def check_socket_path(path):
    """A one-line reason the socket cannot be made at path (None: it can; a stale socket is removed)."""
    if len(os.fsencode(path)) > 107:
        return f"socket path too long ({len(os.fsencode(path))} bytes; Unix sockets take at most 107)"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"no such folder: {folder}"
    if os.path.lexists(path):
        probe_socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe_socket.connect(path)
            return f"a server already answers on {path}"
        except OSError:
            if not os.path.exists(path) or not __import__("stat").S_ISSOCK(os.stat(path).st_mode):
                return f"{path} exists and is not a socket"
            os.unlink(path)  # left by a server that was killed
        finally:
            probe_socket.close()
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="forkserver.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="preload torch and fairseq, then serve the clients' runs")
    serve.add_argument("--socket", required=True, help="the Unix socket to listen on")
    serve.add_argument("--log", help="append one line per request to this file")
    serve.add_argument("--testing", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--request-timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    serve.add_argument("--exit-with-parent", action="store_true",
                       help="stop when the process that started it ends (a test session's server)")
    args = parser.parse_args(argv)
    problem = check_socket_path(args.socket)
    if problem:
        print(f"forkserver.py: {problem}", file=sys.stderr)
        return 2
    server = Server(os.path.abspath(args.socket), args.log and os.path.abspath(args.log), args.testing,
                    args.request_timeout, args.exit_with_parent)
    server.preload()
    try:
        server.serve()
    except SystemExit:  # stopped (SIGTERM): no need to wait for torch's and fairseq's interpreter teardown
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
