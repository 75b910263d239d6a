"""The README's marked command blocks run, as shown, on the toy data.

A fenced bash block of README.md preceded by the line `<!-- ci: run -->` (an HTML comment, invisible to
readers) is run here: the quick start's teacher, offline 3-layer student, gradual stages, online model,
export, plain `fairseq-generate` and parameter counts.

How: bash itself runs the block (its variables, arrays and loops, as a user's shell would), with
fairseq-train, fairseq-generate and every console script of pyproject.toml defined as functions that
record their arguments and the README line instead of running; any other command (and an unset
variable) stops the block, naming the line. The recorded commands are then run with toy sizes
substituted:
- the block's `DATA=` folder is the toy data (`toy_data`, tests/conftest.py); `--user-dir
  fairseq_selfteach` is the package's folder; every other relative path (`ckpt/...`, the exported
  `*.pt`) lands in the test's own folder, the commands' working directory;
- fairseq-train gets the toy model's sizes after the command's own options (tests/helpers.py's SMALL:
  argparse keeps the last value), `--max-update` becomes UPDATES, `--max-tokens` MAX_TOKENS, and `--cpu`;
  fairseq-generate gets `--cpu` and a length limit (MAX_LEN tokens: the toy models have not learnt to stop).
Every training, export, count and decoding with the plugin runs in one process (tests/cli_batch.py: each
through the tool's own entry point), to pay the start-up once; the plain `fairseq-generate` runs (no
--user-dir) come after, each fairseq-generate of its own (a fork of the tests' plugin-free fork server,
tests/conftest.py). A command that fails fails the test with its README line and its log.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import REPO, SMALL, USER_DIR, hypotheses, run

pytestmark = pytest.mark.slow

README = Path(REPO) / "README.md"
MARK = "<!-- ci: run -->"
UPDATES = 3
MAX_TOKENS = 512  # toy batches of about 70 sentences
# a model of 3 updates has not learnt to stop: beam 5 over the 150 test sentences to fairseq's default
# 200 tokens took 3.5 minutes; the toy sentences are shorter than this
MAX_LEN = 12
SCRIPTS = tomllib.loads((Path(REPO) / "pyproject.toml").read_text())["project"]["scripts"]
# what the quick start must keep exercising: a marked block that loses one of these fails here
EXPECTED = {"fairseq-train", "fairseq-generate", "selfteach-export-student", "selfteach-param-count"}


def marked_blocks(text):
    """(first line number in README.md, body) of each fenced block right after the mark."""
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        assert i + 1 < len(lines) and re.match(r"^```(bash|sh)\s*$", lines[i + 1]), \
            f"README.md:{i + 1}: {MARK} must come right before a ```bash block"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        blocks.append((i + 3, "\n".join(lines[i + 2:end]) + "\n"))
    return blocks


def record(block, first_line, folder):
    """Run the block in bash with the tools recording instead of running: [(README line, argv)]."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = folder / "recorded.jsonl"
    plan.unlink(missing_ok=True)
    tools = ["fairseq-train", "fairseq-generate", "fairseq-preprocess", *SCRIPTS]
    prelude = folder / "prelude.sh"
    prelude.write_text(
        f'_record() {{ "{sys.executable}" -c "import json, sys; print(json.dumps(sys.argv[1:]))" '
        f'"${{BASH_LINENO[1]}}" "$@" >> "{plan}"; }}\n'
        + "".join(f'{tool}() {{ _record {tool} "$@"; }}\n' for tool in tools)
        + "PATH=/nonexistent\nset -eu\n")  # any other command is no documented tool: it stops the block
    script = folder / "block.sh"
    script.write_text(block)
    p = subprocess.run([shutil.which("bash"), str(script)], cwd=folder, capture_output=True, text=True,
                       env={"BASH_ENV": str(prelude), "HOME": str(folder)})
    errors = re.sub(r"\S*block\.sh: line (\d+)", lambda m: f"README.md:{first_line + int(m.group(1)) - 1}", p.stderr)
    assert p.returncode == 0, f"the README's block at line {first_line} stopped in bash: {errors.strip()}"
    rows = [json.loads(line) for line in plan.read_text().splitlines()] if plan.exists() else []
    return [(first_line + int(row[0]) - 1, row[1:]) for row in rows]


def toy_sizes(argv, data, toy_data):
    """The command with the toy data and sizes; the rest as the README shows it."""
    tool, args = argv[0], list(argv[1:])
    for i, token in enumerate(args):
        previous = args[i - 1] if i else None
        if token == data:
            args[i] = toy_data
        elif previous == "--user-dir" and token == "fairseq_selfteach":
            args[i] = USER_DIR
        elif previous == "--max-update":
            args[i] = str(UPDATES)
        elif previous == "--max-tokens":
            args[i] = str(MAX_TOKENS)
    if tool == "fairseq-train":
        args += [*SMALL, "--cpu", "--num-workers", "0"]
    elif tool == "fairseq-generate":
        args += ["--cpu", "--max-len-a", "0", "--max-len-b", str(MAX_LEN)]
    return [tool, *args]


def batch_argv(argv):
    """cli_batch's form: fairseq's tools by name, a console script as `python -m MODULE`."""
    if argv[0] in SCRIPTS:
        module, function = SCRIPTS[argv[0]].split(":")
        assert function == "main", SCRIPTS[argv[0]]
        return ["python", "-m", module, *argv[1:]]
    return argv


def plain_generate(argv):
    return argv[0] == "fairseq-generate" and not any(a == "--user-dir" or a.startswith("--user-dir=") for a in argv)


@pytest.fixture(scope="module")
def readme_runs(toy_data, tmp_path_factory):
    """{README line: (argv as run, log path, exit status)} of every command of the marked blocks."""
    root = tmp_path_factory.mktemp("readme")
    blocks = marked_blocks(README.read_text())
    assert blocks, f"README.md has no block marked {MARK}"
    recorded = []
    for first_line, body in blocks:
        data = re.search(r"^DATA=(\S+)$", body, re.M)
        assert data, f"README.md:{first_line}: a marked block sets DATA=... (the data the test replaces)"
        recorded += [(line, toy_sizes(argv, data.group(1), toy_data))
                     for line, argv in record(body, first_line, root / f"block{first_line}")]
    runs = {}
    batch, plain = [], []
    for n, (line, argv) in enumerate(recorded):
        log = root / f"{n:02d}-line{line}.log"
        runs.setdefault(line, []).append((argv, log))
        (plain if plain_generate(argv) else batch).append((argv, log))
    (root / "plan.json").write_text(json.dumps([{"argv": batch_argv(a), "log": str(log)} for a, log in batch]))
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)  # tests.cli_batch, from root
    run(["python", "-m", "tests.cli_batch", root / "plan.json"], cwd=root, env={"PYTHONPATH": path})
    for argv, log in plain:  # plain fairseq: a process of its own, the plugin never imported
        data = next(a for a in argv[1:] if not a.startswith("-"))
        args = list(argv[1:])
        args.remove(data)
        p = run(["fairseq-generate", data, *args], cwd=root, check=False)
        log.write_text(p.stdout + p.stderr)
        Path(str(log) + ".rc").write_text(f"{p.returncode}\n")
    return {line: [(argv, log, int(Path(str(log) + ".rc").read_text())) for argv, log in entries]
            for line, entries in runs.items()}


def test_every_marked_command_runs_on_the_toy_data(readme_runs):
    failed = []
    for line, entries in sorted(readme_runs.items()):
        for argv, log, rc in entries:
            if rc != 0:
                failed.append(f"README.md:{line}: `{argv[0]}` exited {rc} (run as: {' '.join(argv)})\n"
                              + log.read_text()[-3000:])
    assert not failed, "the README's commands fail on the toy data:\n" + "\n\n".join(failed)


def test_the_marked_blocks_are_the_quick_start(readme_runs):
    tools = {argv[0] for entries in readme_runs.values() for argv, _, _ in entries}
    assert EXPECTED <= tools, f"the README's marked blocks no longer run {sorted(EXPECTED - tools)}"
    trainings = [argv for entries in readme_runs.values() for argv, _, _ in entries if argv[0] == "fairseq-train"]
    assert len(trainings) >= 6  # teacher, offline, 3 gradual stages, online


def test_plain_fairseq_decodes_every_test_sentence_of_the_export(readme_runs):
    from tests.conftest import TEST_SENTENCES

    for line, entries in readme_runs.items():
        for argv, log, rc in entries:
            if plain_generate(argv) and rc == 0:
                text = log.read_text()
                assert len(hypotheses(text)) == TEST_SENTENCES, f"README.md:{line}: {text[-2000:]}"


def test_the_students_parameter_count_is_below_the_teachers(readme_runs):
    totals = []
    for line, entries in sorted(readme_runs.items()):
        for argv, log, rc in entries:
            if argv[0] == "selfteach-param-count" and rc == 0:
                total = re.search(r"^total\s+([\d,]+)$", log.read_text(), re.M)
                assert total, f"README.md:{line}: {log.read_text()[-1000:]}"
                totals.append(int(total.group(1).replace(",", "")))
    assert len(totals) >= 2 and totals[-1] < totals[0], totals  # the exported 3-layer student, the teacher
