"""The fork server (scripts/forkserver.py) and its clients (scripts/forkserver-bin/): a run through
them ends, prints and fails as the real tool's process does, dies with its caller, stays plugin-free
without --user-dir, and falls back to the real tool where a fork cannot stand in for it.

forkserver-probe is the server's test-only tool (served with --testing): it prints, as JSON, the pid, cwd,
argv, thread count, environment and whether the plugin is imported, as its child sees them."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from tests.helpers import BIN, FORKSERVER_BIN, OPTIM, SMALL, USER_DIR, start_forkserver, stop_forkserver

CLIENT = os.path.join(FORKSERVER_BIN, "fairseq-train")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fs")
    # --request-timeout 1: a run outliving the server's read timeout must not be cut by it
    proc, sock = start_forkserver(str(folder), "--testing", "--request-timeout", "1")
    os.symlink(CLIENT, folder / "forkserver-probe")
    yield {"socket": sock, "log": folder / "forkserver.log", "probe": str(folder / "forkserver-probe"),
           "proc": proc}
    stop_forkserver(proc)


def env_for(server, **extra):
    env = dict(os.environ, SELFTEACH_FORKSERVER_SOCKET=server["socket"], SELFTEACH_FORKSERVER_REAL_BIN=BIN)
    env.update(extra)
    return env


def client(name, *args, server, cwd=None, **extra):
    exe = server["probe"] if name == "forkserver-probe" else os.path.join(FORKSERVER_BIN, name)
    return subprocess.run([exe, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=env_for(server, **extra), timeout=300)


def direct(name, *args, cwd=None):
    return subprocess.run([os.path.join(BIN, name), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def log_lines(server):
    return server["log"].read_text().splitlines()


def served(server, before, tool):
    """The server's log lines since index before show tool started by a fork (not a fallback)."""
    return any(f"start {tool} pid" in line for line in log_lines(server)[before:])


def wait_gone(pid, seconds=20):
    """True once pid is no process (reaped) or a zombie."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_help_and_argument_error_as_the_real_tool(server):
    before = len(log_lines(server))
    for args in (["--help"], ["--bogus-option"]):
        through, real = client("fairseq-preprocess", *args, server=server), direct("fairseq-preprocess", *args)
        assert (through.returncode, through.stdout, through.stderr) == (real.returncode, real.stdout, real.stderr)
    assert through.returncode == 2 and "unrecognized arguments: --bogus-option" in through.stderr
    assert served(server, before, "fairseq-preprocess")


def test_exit_status_stdout_stderr_and_exception(server):
    p = client("forkserver-probe", "--exit", 3, server=server)
    assert p.returncode == 3 and json.loads(p.stdout.splitlines()[0])["argv"][1:] == ["--exit", "3"]
    assert p.stderr == "probe stderr\n"
    p = client("forkserver-probe", "--raise", server=server)
    assert p.returncode == 1  # an uncaught exception: sys.excepthook's traceback, then status 1
    assert p.stderr.splitlines()[-1] == "RuntimeError: probe failed" and "Traceback" in p.stderr


def test_a_run_longer_than_the_request_timeout_ends_normally(server):
    p = client("forkserver-probe", "--sleep", 2.5, "--exit", 4, server=server)
    assert p.returncode == 4, p.stderr


def test_env_cwd_argv0_threads_and_stdin_reach_the_child(server, tmp_path):
    p = subprocess.run([server["probe"], "--stdin"], cwd=tmp_path, input="from the caller", capture_output=True,
                       text=True, env=env_for(server, SELFTEACH_PROBE_VALUE="x y", OMP_NUM_THREADS="2"))
    seen = json.loads(p.stdout.splitlines()[0])
    assert seen["cwd"] == str(tmp_path) and seen["stdin"] == "from the caller"
    assert seen["env"]["SELFTEACH_PROBE_VALUE"] == "x y" and seen["threads"] == 2
    assert seen["argv"][0] == os.path.join(BIN, "forkserver-probe")  # the console script's path
    seen = json.loads(client("forkserver-probe", server=server, OMP_NUM_THREADS="1").stdout.splitlines()[0])
    assert seen["threads"] == 1 and "SELFTEACH_PROBE_VALUE" not in seen["env"]


def start_sleeper(server, tmp_path, **popen):
    pid_file = tmp_path / "pid"
    caller = subprocess.Popen([server["probe"], "--pid-file", pid_file], env=env_for(server),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    return caller, int(pid_file.read_text())


def test_a_run_killed_by_a_signal_reports_it(server, tmp_path):
    caller, pid = start_sleeper(server, tmp_path)
    assert pid != caller.pid
    os.kill(pid, signal.SIGKILL)
    assert caller.wait(timeout=30) == -signal.SIGKILL
    p = subprocess.run(["bash", "-c", f'"{server["probe"]}" --raise; echo "status $?"'], capture_output=True,
                       text=True, env=env_for(server))
    assert p.stdout.splitlines()[-1] == "status 1"


def test_sigterm_to_the_caller_reaches_the_run(server, tmp_path):
    caller, pid = start_sleeper(server, tmp_path)
    caller.send_signal(signal.SIGTERM)
    assert caller.wait(timeout=30) == -signal.SIGTERM
    assert wait_gone(pid)


def test_killing_the_caller_kills_the_run(server, tmp_path):
    caller, pid = start_sleeper(server, tmp_path, start_new_session=True)
    os.killpg(caller.pid, signal.SIGKILL)  # as the kill tests do to a pipeline: kill -9 -PGID
    caller.wait(timeout=30)
    assert wait_gone(pid), "the forked run outlived its caller"


def test_plain_runs_stay_plugin_free(server):
    assert json.loads(client("forkserver-probe", server=server).stdout.splitlines()[0])["plugin"] is False
    with_plugin = client("fairseq-train", "--user-dir", USER_DIR, "--criterion", "self_distill", "--help",
                         server=server)
    assert with_plugin.returncode == 0 and ",self_distill}" in with_plugin.stdout
    # the next fork comes from the server, which never imported the plugin: its criterion is unknown
    plain = client("fairseq-train", "--criterion", "self_distill", "--help", server=server)
    assert plain.returncode == 2 and "invalid choice: 'self_distill'" in plain.stderr
    assert json.loads(client("forkserver-probe", server=server).stdout.splitlines()[0])["plugin"] is False


def test_fallback_to_the_real_tool(server, tmp_path):
    """The probe has no real tool: its one-line 'not found' shows the client went for the real one."""
    not_found = ("forkserver-probe: the real forkserver-probe was not found (set SELFTEACH_FORKSERVER_REAL_BIN "
                 "to its folder)")
    before = len(log_lines(server))
    for extra in ({"SELFTEACH_FORKSERVER_SOCKET": str(tmp_path / "no-such.sock")},
                  {"SELFTEACH_KILL_AT": "nowhere:f:1"}):  # the fault injection needs a real interpreter
        p = client("forkserver-probe", server=server, **extra)
        assert (p.returncode, p.stderr.strip()) == (1, not_found)
    assert len(log_lines(server)) == before  # neither reached the server
    p = client("forkserver-probe", server=server, PYTHONPATH=str(tmp_path))  # the server says: fallback
    assert (p.returncode, p.stderr.strip()) == (1, not_found)
    assert log_lines(server)[-1].endswith(
        "fallback forkserver-probe start-up variables differ from the server's: PYTHONPATH")
    real = client("fairseq-preprocess", "--help", server=server, SELFTEACH_FORKSERVER_SOCKET=str(tmp_path / "s"))
    assert real.returncode == 0 and real.stdout.startswith("usage: fairseq-preprocess")


def test_a_server_whose_parent_dies_stops(tmp_path):
    from tests.helpers import FORKSERVER
    import sys

    sock = tmp_path / "s"
    parent = subprocess.Popen([sys.executable, "-c", f"""
import subprocess, sys, time
p = subprocess.Popen([sys.executable, {FORKSERVER!r}, "serve", "--socket", {str(sock)!r}, "--exit-with-parent"])
print(p.pid, flush=True)
time.sleep(600)
"""], stdout=subprocess.PIPE, text=True)
    server_pid = int(parent.stdout.readline())
    deadline = time.time() + 120
    while not sock.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert sock.exists()
    parent.kill()  # as a pytest worker killed -9: its fixture's teardown never runs
    parent.wait()
    assert wait_gone(server_pid, seconds=30) and not sock.exists()


def test_bad_socket_path_is_one_line(tmp_path):
    from tests.helpers import FORKSERVER
    import sys

    p = subprocess.run([sys.executable, FORKSERVER, "serve", "--socket", tmp_path / "missing" / "s"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr == f"forkserver.py: no such folder: {tmp_path / 'missing'}\n"
    p = subprocess.run([sys.executable, FORKSERVER, "serve", "--socket", "/tmp/" + "x" * 120],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("forkserver.py: socket path too long")


def test_toy_training_and_decoding_through_the_server(server, toy_data, tmp_path):
    """A 2-update toy fairseq-train with the plugin: rc 0, its checkpoint, fairseq's log on stdout as
    the real tool's; then fairseq-generate through the server and directly print the same hypotheses,
    its log on stderr as in a real process (fairseq's import configures logging there)."""
    before = len(log_lines(server))
    p = client("fairseq-train", toy_data, "--save-dir", tmp_path / "ck", "--arch", "transformer_iwslt_de_en",
               "--encoder-layers", 1, "--decoder-layers", 1, "--lr", "1e-3", "--max-update", 2,
               "--criterion", "label_smoothed_cross_entropy", "--user-dir", USER_DIR, *SMALL, *OPTIM,
               server=server)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "ck" / "checkpoint_last.pt").exists() and "done training" in p.stdout
    assert served(server, before, "fairseq-train")
    # the plugin's one-line error report: installed because argv[0] is the real fairseq-train's path
    wrong = client("fairseq-train", toy_data, "--save-dir", tmp_path / "wrong", "--arch", "transformer_iwslt_de_en",
                   "--criterion", "sentence_prediction_self_distill", "--user-dir", USER_DIR, "--max-update", 1,
                   "--optimizer", "adam", "--lr", "1e-3", "--cpu", "--max-tokens", 1024, server=server)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr, wrong.stderr[-2000:]
    assert wrong.stderr.splitlines()[-1].startswith("error: ") and "--criterion self_distill" in wrong.stderr
    args = [toy_data, "--path", tmp_path / "ck" / "checkpoint_last.pt", "--beam", 1, "--cpu",
            "--max-len-a", 0, "--max-len-b", 5, "--batch-size", 64, "--gen-subset", "valid",
            "--user-dir", USER_DIR]  # the plugin's safe-loading allow-list reads its checkpoints
    through = client("fairseq-generate", *args, server=server, cwd="/")
    real = direct("fairseq-generate", *args, cwd="/")
    assert through.returncode == real.returncode == 0, (through.stderr[-1000:], real.stderr[-1000:])

    def hyps(text):
        return sorted(line for line in text.splitlines() if re.match(r"[SHTD]-\d+\t", line))

    assert hyps(through.stdout) == hyps(real.stdout) and len(hyps(real.stdout)) > 100
    for p in through, real:
        assert "INFO:fairseq_cli.generate:Translated" in p.stderr and "fairseq_cli.generate" not in p.stdout
