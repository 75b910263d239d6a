"""The documentation cannot silently rot. For README.md, CHANGELOG.md and docs/**/*.md:
- every relative link and `#anchor` resolves, inside the repository; no tracked file (code and comments
  included) points at the shared folder beside the repository;
- every console script of pyproject.toml is in the README's tools table, with its module, and has an
  options table in the docs (headed | `selfteach-NAME` |) that lists exactly the options its --help does;
- every option named (in commands and inline code) exists, and each command line (fairseq-train /
  -generate / -preprocess, the selfteach tools, preprocess scripts, the pipelines) accepts the options it
  is shown with; each pipeline's options are in its --help header and in the docs;
- every --arch, --task, --criterion, --optimizer and --lr-scheduler of a fairseq command is registered,
  and every fairseq-train / fairseq-generate command of a bash block parses with fairseq's own parser
  and the plugin (its arrays and variables substituted), so a renamed option or a bad value fails here.

In-process and fast: fairseq's parsers are built in this process; the tools and pipeline scripts are
read statically (the tools' --help is their own main, run in this process); nothing is trained and no
process is started but `git ls-files`.
"""
import argparse
import contextlib
import io
import itertools
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted([README, ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
# an option as written in a command or in `code`; a family such as `--kd-*` or `--student-{a,b}-map` is no option
OPTION = re.compile(r"(?<![\w/.=-])--[a-zA-Z][\w-]*(?![\w*{-])")

# Options of commands that are not installed here (Slurm's srun) or not worth a parser (pip, pytest).
EXTERNAL = {"--nodes", "--ntasks-per-node", "--gres", "--no-deps", "--no-build-isolation",
            "--dist", "--hypothesis-show-statistics"}


def _strip_code(text):
    """Markdown without fenced blocks (a '# comment' in bash is no heading, a link in code no link)."""
    return FENCE.sub("", text)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    seen, out = {}, set()
    for line in _strip_code(path.read_text()).splitlines():
        m = re.match(r"^#{1,6} (.*)", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


def links(path):
    text = _strip_code(path.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code holds no links
    return re.findall(r"\]\(([^)\s]*)\)", text)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(doc):
    broken = []
    for target in links(doc):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto
        if not target:
            broken.append("an empty link target")
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif not dest.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


# the files beside the repository on the machines it was made on (a shared folder of notes), which no
# user has; written so that this file does not match itself
OUTSIDE = re.compile(r"\.\.[/]shared|(?<![\w./-])shared[/]")


def test_nothing_points_outside_the_repository():
    """No tracked file, code and comments included, names the notes folder beside the repository."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    bad = []
    for name in tracked.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue  # a file deleted in the work tree, or a submodule
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        text = data.decode("utf-8", errors="replace")
        bad += [f"{name}:{i}" for i, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not bad, "references to the shared folder beside the repository (not part of the project): " + ", ".join(bad)


def test_every_console_script_is_in_the_readmes_tools_table():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w-]+)` \| `([\w.]+)` \|", README.read_text(), re.M)}
    missing = [name for name in scripts if name not in rows]
    assert not missing, f"console scripts missing from the README's tools table: {missing}"
    wrong = [n for n, target in scripts.items() if rows[n] != target.split(":")[0]]
    assert not wrong, f"the README's tools table names another module for: {wrong}"


def test_readme_is_short_and_keeps_the_two_set_up_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 320
    first_block = FENCE.search(text).group(2)
    assert "bash scripts/demo.sh" in first_block and "bash scripts/test.sh" in first_block


# --- every option the documentation names exists, for the command that takes it --------------------

def _py_options(path):
    """A Python tool's options, read from its argparse calls."""
    calls = re.finditer(r"add_argument\(((?:\s*[\"']-[^\"']*[\"']\s*,)+)", path.read_text())
    return {o for call in calls for o in re.findall(r"[\"'](--[\w-]+)[\"']", call.group(1))}


def _sh_options(path):
    """A shell script's options, read from its `case` patterns (`--out)`, `-h|--help)`)."""
    patterns = re.finditer(r"^\s*((?:-\w\|)?--[\w-]+(?:\|--[\w-]+)*)\)", path.read_text(), re.M)
    return {o for m in patterns for o in m.group(1).split("|") if o.startswith("--")}


def _static_options():
    """Options the plugin's tools, preprocessing, benchmarks, pipeline scripts and recorded studies accept."""
    found = set()
    for path in [*(ROOT / "fairseq_selfteach").rglob("*.py"), *(ROOT / "selfteach_pipeline").glob("*.py"),
                 *(ROOT / "preprocess").glob("*.py"),
                 *(ROOT / "scripts").glob("*.py"), *(ROOT / "bench").glob("*.py"),
                 *(ROOT / "docs" / "results").rglob("run.py")]:
        found |= _py_options(path)
    for path in (ROOT / "scripts").glob("*.sh"):
        found |= _sh_options(path)
    return found


def _fairseq_options():
    """fairseq-train's, fairseq-generate's and fairseq-preprocess's options with the plugin's tasks,
    criteria, models, optimizers and schedulers registered (argparse gains their dataclass options once
    they are chosen)."""
    from fairseq import options, utils

    utils.import_user_module(argparse.Namespace(user_dir=str(ROOT / "fairseq_selfteach")))
    translation = ["--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en",
                   "--optimizer", "adam", "--lr-scheduler", "inverse_sqrt"]
    combos = {
        "fairseq-train": [
            translation + ["--criterion", "self_distill"],
            translation + ["--criterion", "label_smoothed_cross_entropy"],
            ["--task", "glue", "--arch", "selfteach_bert_base", "--criterion", "sentence_prediction_self_distill",
             "--optimizer", "adam_head_lr", "--lr-scheduler", "polynomial_decay"],
            ["--task", "self_distill_glue", "--arch", "selfteach_bert_base", "--criterion", "sentence_prediction",
             "--optimizer", "adam"]],
        "fairseq-generate": [["--task", "self_distill_translation"], ["--task", "translation"]],
    }
    makers = {"fairseq-train": options.get_training_parser, "fairseq-generate": options.get_generation_parser}
    found = {"fairseq-preprocess": {o for o in options.get_preprocessing_parser()._option_string_actions
                                    if o.startswith("--")}}
    for command, argvs in combos.items():
        found[command] = set()
        for argv in argvs:
            parser = makers[command]()
            options.parse_args_and_arch(parser, ["DATA", *argv], parse_known=True)
            found[command] |= {o for o in parser._option_string_actions if o.startswith("--")}
    return found


def _torchrun_options():
    from torch.distributed.run import get_args_parser

    return {o for o in get_args_parser()._option_string_actions if o.startswith("--")}


def _named_options(doc):
    """Options a document names: in its bash blocks and in its inline code."""
    text = doc.read_text()
    spans = [body for lang, body in FENCE.findall(text) if lang in ("bash", "sh", "")]
    spans += re.findall(r"`([^`\n]+)`", _strip_code(text))
    return {o for span in spans for o in OPTION.findall(span)}


@pytest.fixture(scope="module")
def fairseq_options():
    return _fairseq_options()


@pytest.fixture(scope="module")
def known_options(fairseq_options):
    return _static_options() | set().union(*fairseq_options.values()) | _torchrun_options() | EXTERNAL


def test_the_option_extraction_finds_the_readmes_options(known_options):
    assert "--not-an-option" not in known_options
    named = _named_options(README)
    assert {"--kd-alpha", "--max-update", "--fp16", "--teacher-path", "--only-data"} <= named
    assert "--kd" not in named and "--student" not in named  # families such as --kd-* are no options


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_option_the_documentation_names_exists(doc, known_options):
    unknown = sorted(_named_options(doc) - known_options)
    assert not unknown, (f"{doc.relative_to(ROOT)} names options that no tool, pipeline script or "
                         f"fairseq parser (with the plugin's components) has: {unknown}")


# --- the names the commands use exist too ------------------------------------------------------

def _command_blocks(doc, langs=("bash", "sh", "")):
    return [body for lang, body in FENCE.findall(doc.read_text()) if lang in langs]


@pytest.fixture(scope="module")
def registries(fairseq_options):  # after fairseq_options: the plugin is registered with fairseq
    from fairseq import criterions, models, optim, tasks
    from fairseq.optim import lr_scheduler

    return {"--arch": models.ARCH_MODEL_REGISTRY, "--task": tasks.TASK_REGISTRY,
            "--criterion": criterions.CRITERION_REGISTRY, "--optimizer": optim.OPTIMIZER_REGISTRY,
            "--lr-scheduler": lr_scheduler.LR_SCHEDULER_REGISTRY}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_arch_task_criterion_tool_and_script_in_the_commands_exists(doc, registries):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    missing = []
    for body in _command_blocks(doc):
        for line in re.sub(r"\\\n", " ", body).splitlines():
            if not re.search(r"fairseq-(train|generate|preprocess)|teacher[-_]cache", line):
                continue  # another tool's --task (glue_binarize.py --task RTE) is a GLUE task's name
            for option, value in re.findall(r"(--arch|--task|--criterion|--optimizer|--lr-scheduler)[ =]([\w$]+)", line):
                if "$" not in value and value not in registries[option]:  # $k: a shell variable
                    missing.append(f"{option} {value}")
        missing += [tool for tool in re.findall(r"\bselfteach-[\w-]+", body) if tool not in scripts]
        missing += [f"python -m {m}" for m in re.findall(r"-m (fairseq_selfteach[\w.]+)", body)
                    if not (ROOT / (m.replace(".", "/") + ".py")).exists()]
        missing += [path for path in re.findall(r"\b((?:scripts|preprocess|bench)/[\w/]+\.(?:sh|py))", body)
                    if not (ROOT / path).exists()]
    assert not missing, f"{doc.relative_to(ROOT)}: its commands name what does not exist: {missing}"


def _command_options(line, fairseq_options):
    """The options the command on this line accepts, or None where the line's command is not one of the
    project's tools, pipeline scripts or fairseq's (then the options are checked against all of them)."""
    m = re.match(r"\s*(?:\w+=\S+\s+)*(fairseq-\w+|selfteach-[\w-]+|python -m (?:fairseq_selfteach\.cli|selfteach_pipeline)\.\w+|"
                 r"python (?:(?:preprocess|scripts|bench)/\w+|docs/results/[\w/-]+/run)\.py|bash scripts/\w+\.sh)\b", line)
    if not m:
        return None
    command = m.group(1)
    if command in fairseq_options:
        return fairseq_options[command]
    if command in PIPELINES.values():  # their options are partly pipeline_cli.py's: ask --help
        return _help_options(command, _console_scripts()[command]) | {"--help"}
    if command.startswith(("selfteach-", "python -m")):
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        module = scripts[command].split(":")[0] if command in scripts else command.split()[-1]
        name = module.split(".")[-1]
        own = _py_options(ROOT.joinpath(*module.split(".")).with_suffix(".py")) | {"--help"}
        return own | (fairseq_options["fairseq-train"] if name == "teacher_cache" else set())
    path = ROOT / command.split()[-1]
    if path.name in PIPELINES:  # it execs the pipeline's console script
        return _help_options(PIPELINES[path.name], _console_scripts()[PIPELINES[path.name]]) | {"--help"}
    if path.suffix == ".sh":
        return _sh_options(path)
    helpers = path.parent.glob("*.py") if path.parent.name == "preprocess" else [path]  # shared argument helpers
    if path.name == "run.py":  # a recorded study: its own options, then its pipeline's
        helpers = [path] + [ROOT / "selfteach_pipeline" / f"{m}.py" for m in ("pipeline_cli", "translate_cli", "glue_cli")]
    return set().union(*(_py_options(p) for p in helpers)) | {"--help"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_documented_command_accepts_the_options_it_is_shown_with(doc, fairseq_options):
    wrong = []
    for body in _command_blocks(doc):
        for line in re.sub(r"\\\n", " ", body).splitlines():
            command = line.split(" # ")[0]  # a comment may name other commands' options
            accepted = _command_options(command, fairseq_options)
            if accepted is not None:
                name = command.split(" --")[0].strip()
                wrong += [f"{name} {o}" for o in sorted(set(OPTION.findall(command)) - accepted)]
    assert not wrong, f"{doc.relative_to(ROOT)}: options its commands do not accept: {wrong}"


def _help_options(tool, target):
    """The options a console script's --help lists (its own: the teacher cache's fairseq-train options are
    documented as the student's command line, so only its "teacher cache" group counts)."""
    import importlib

    module, function = target.split(":")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), pytest.raises(SystemExit):
        getattr(importlib.import_module(module), function)(["--help"])
    sections = re.split(r"^(\S[^\n]*):$", out.getvalue(), flags=re.M)  # [text, heading, body, heading, body, ...]
    bodies = [body for heading, body in zip(sections[1::2], sections[2::2])
              if tool != "selfteach-teacher-cache" or heading == "teacher cache"]
    return {o for body in bodies for o in re.findall(r"^  (?:-\w(?: \S+)?, )?(--[\w-]+)", body, re.M)} - {"--help"}


TOOL_TABLE = re.compile(r"^\| `(selfteach-[\w-]+)` \|[^\n]*\n\|[-| ]+\|\n((?:\|[^\n]*\n?)*)", re.M)  # its rows: group 2


def _tools_tables():
    """{tool: [(doc, options named in the first column)]} of the tables headed by a console script's name."""
    tables = {}
    for doc in DOCS:
        for m in TOOL_TABLE.finditer(doc.read_text()):
            rows = [row.split(" | ")[0] for row in m.group(2).splitlines()]
            tables.setdefault(m.group(1), []).append((doc, {o for row in rows for o in OPTION.findall(row)}))
    return tables


def test_every_tools_options_table_agrees_with_its_help(fairseq_options):  # after fairseq_options: fairseq imported
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    tables = _tools_tables()
    wrong = [f"{tool}: an options table for no console script ({tables[tool][0][0].relative_to(ROOT)})"
             for tool in sorted(set(tables) - set(scripts))]
    for tool, target in scripts.items():
        if len(tables.get(tool, ())) != 1:
            wrong.append(f"{tool}: {len(tables.get(tool, ()))} options tables in the docs (one wanted, headed "
                         f"| `{tool}` |)")
            continue
        (doc, documented), = tables[tool]
        accepted = _help_options(tool, target)
        wrong += [f"{tool} {o}: in --help, not in its options table in {doc.relative_to(ROOT)}"
                  for o in sorted(accepted - documented)]
        wrong += [f"{tool} {o}: in its options table in {doc.relative_to(ROOT)}, not in --help"
                  for o in sorted(documented - accepted)]
    assert not wrong, "the tools' options tables and --help disagree:\n" + "\n".join(wrong)


PIPELINES = {"iwslt14.sh": "selfteach-translation-pipeline", "glue.sh": "selfteach-glue-pipeline"}  # what each execs


def _console_scripts():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("script", sorted(PIPELINES))
def test_each_pipeline_script_runs_its_console_script_whose_options_are_in_the_docs(script):
    tool = PIPELINES[script]
    text = (ROOT / "scripts" / script).read_text()
    assert _console_scripts()[tool].split(":")[0] in text
    accepted = _help_options(tool, _console_scripts()[tool])
    documented = _named_options(ROOT / "docs" / "pipelines.md") | _named_options(README)
    assert not accepted - documented, f"README.md and docs/pipelines.md do not name {sorted(accepted - documented)}"


def test_the_demo_options_are_in_its_help_and_in_the_docs():
    script = "demo.sh"
    path = ROOT / "scripts" / script
    accepted = _sh_options(path) - {"--help"}
    header = "\n".join(itertools.takewhile(lambda line: line.startswith("#"), path.read_text().splitlines()[1:]))
    assert not accepted - set(OPTION.findall(header)), f"{script} --help does not name: {sorted(accepted - set(OPTION.findall(header)))}"
    documented = _named_options(ROOT / "docs" / "pipelines.md") | _named_options(README)
    assert not accepted - documented, f"README.md and docs/pipelines.md do not name {script}'s {sorted(accepted - documented)}"


# --- the fairseq commands parse: fairseq's own parser, with the plugin, on the command as shown --------

def _fairseq_commands(doc):
    """(command, argv) for each fairseq-train / fairseq-generate line of the document's bash blocks:
    continuation lines joined, bash arrays (NAME=(...)) and variables substituted, a loop's variable
    given its first value (the document's blocks share them, as one shell session). Lines with
    placeholders (ARGS, "$@", ...) are left out."""
    arrays, scalars = {}, {}
    for body in _command_blocks(doc, ("bash", "sh")):  # an untyped block may be a program's output
        for line in re.sub(r"\\\n", " ", body).splitlines():
            line = line.split(" # ")[0].strip()
            if m := re.match(r"^(\w+)=\((.*)\)$", line):
                arrays[m.group(1)] = shlex.split(m.group(2))
            elif m := re.match(r"^for (\w+) in (\S+)", line):
                scalars[m.group(1)] = m.group(2)
            elif m := re.match(r"^(\w+)=(\S+)$", line):
                scalars[m.group(1)] = m.group(2)
            elif (m := re.match(r"(?:\w+=\S+\s+)*fairseq-(train|generate) (.*)", line)) and not re.search(r"ARGS|\.\.\.|…", line):
                argv = []
                for token in shlex.split(m.group(2)):
                    if a := re.fullmatch(r"\$\{(\w+)\[@\]\}", token):
                        argv += arrays[a.group(1)]
                    else:
                        argv.append(re.sub(r"\$\{?(\w+)\}?", lambda v: scalars.get(v.group(1), v.group(1)), token))
                yield f"fairseq-{m.group(1)}", argv


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_documented_fairseq_command_parses(doc, fairseq_options):
    from fairseq import options
    from tests.helpers import minilm_path

    failed = []
    for command, argv in _fairseq_commands(doc):
        for i, token in enumerate(argv):  # paths that fairseq reads while parsing
            if argv[i - 1] == "--user-dir":
                argv[i] = str(ROOT / "fairseq_selfteach")
            elif argv[i - 1] == "--bert-config":
                argv[i] = str(Path(minilm_path()) / "config.json")
        make = options.get_training_parser if command == "fairseq-train" else options.get_generation_parser
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                options.parse_args_and_arch(make(), argv)
        except SystemExit:
            failed.append(f"{command} {' '.join(argv)}: {stderr.getvalue().strip().splitlines()[-1]}")
        except Exception as e:  # fairseq raises a bare RuntimeError when --arch is missing
            failed.append(f"{command} {' '.join(argv)}: {type(e).__name__} {e}")
    assert not failed, f"{doc.relative_to(ROOT)}: fairseq's parser refuses " + "; ".join(failed)
