"""Import hygiene: importing the package changes nothing of the process but fairseq's registries (and
torch's safe-loading allow-list); no import cycle among the project's own modules; what the light
modules (selfteach_pipeline: the file helpers, the report; the preprocess/ scripts) pull in."""
import ast
import os
import subprocess
import sys

from tests.helpers import REPO

PACKAGE = "fairseq_selfteach"
PIPELINES = "selfteach_pipeline"  # the pipelines' package: plans, runners, the study's statistics
SCRIPTS = "preprocess"  # scripts run with their own folder on sys.path: they import each other by bare name


def run_python(code):
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                           [os.path.join(REPO, SCRIPTS)] + [p for p in [os.environ.get("PYTHONPATH")] if p])))
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def package_modules():
    """Every module of the package, dotted, subpackages before their modules."""
    return sorted(name for name in project_modules() if name.split(".")[0] == PACKAGE)


def test_importing_the_package_installs_no_excepthook_and_no_log_filter():
    """Every module of the package (each subpackage, each tool) imported in a plain process: Python's own
    excepthook, no filter on any logger (root, fairseq's, any other), no handler on the root logger but
    the one `import fairseq` adds itself (its __init__ configures logging), no logger's level changed."""
    out = run_python(
        "import logging, sys, importlib\n"
        "import fairseq\n"
        "def state():\n"
        "    loggers = [logging.root] + [l for l in logging.root.manager.loggerDict.values()\n"
        "                                if isinstance(l, logging.Logger)]\n"
        "    return {l.name: (list(l.filters), l.level) for l in loggers}, list(logging.root.handlers)\n"
        "before, root_handlers = state()\n"
        f"for name in {package_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "after, root_handlers_after = state()\n"
        "print(sys.excepthook is sys.__excepthook__)\n"
        "print(sorted(n for n, (filters, _) in after.items() if filters))\n"
        "print(sorted(n for n in before if after[n][1] != before[n][1]))\n"
        "print(root_handlers_after == root_handlers)\n"
        "print(' '.join(m for m in ('torch', 'fairseq') if m in sys.modules))\n"
    )
    assert out.split("\n")[:4] == ["True", "[]", "[]", "True"], out
    # The package's own import registers the fairseq components (what `--user-dir fairseq_selfteach`
    # imports it for), so any submodule brings both along: the light modules live in selfteach_pipeline.
    assert out.split("\n")[4] == "torch fairseq", out


def test_fairseq_command_line_processes_are_recognised(monkeypatch):
    from fairseq_selfteach.core.error_report import is_fairseq_cli

    class Main:
        __spec__ = None

    monkeypatch.setitem(sys.modules, "__main__", Main())
    for argv0, expected in [("/venv/bin/fairseq-train", True), ("fairseq-generate", True),
                            ("/site-packages/fairseq_cli/train.py", True), ("-c", False), ("", False),
                            ("/venv/bin/pytest", False), ("/venv/bin/selfteach-report", False)]:
        monkeypatch.setattr(sys, "argv", [argv0])
        assert is_fairseq_cli() is expected, argv0

    class Spec:
        name = "fairseq_cli.generate"  # python -m fairseq_cli.generate

    Main.__spec__ = Spec()
    monkeypatch.setattr(sys, "argv", ["/site-packages/fairseq_cli/generate.py"])
    assert is_fairseq_cli()


def test_the_installed_hook_prints_a_users_error_in_one_line_and_passes_on_the_rest(monkeypatch, capsys):
    import logging

    from fairseq_selfteach.core import error_report
    from selfteach_pipeline.errors import OptionError

    passed_on = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc: passed_on.append(exc[0]))
    monkeypatch.setattr(error_report, "_previous_excepthook", sys.__excepthook__)
    monkeypatch.delenv("SELFTEACH_TRACEBACK", raising=False)
    checkpoint_logger = logging.getLogger("fairseq.checkpoint_utils")
    try:
        error_report.install()
        error_report.install()  # twice: still one hook, one filter, and the first hook kept for the rest
        assert checkpoint_logger.filters.count(error_report._disk_full_filter) == 1
        sys.excepthook(OptionError, OptionError("--kd-alpha must be in [0, 1]; got 2"), None)
        sys.excepthook(KeyError, KeyError("x"), None)
    finally:
        checkpoint_logger.removeFilter(error_report._disk_full_filter)
    assert capsys.readouterr().err == "error: --kd-alpha must be in [0, 1]; got 2\n"
    assert passed_on == [KeyError]


# ---------------------------------------------------------------- import cycles


def project_modules():
    """{module name: its file} for both packages (dotted names) and preprocess/'s scripts (bare names)."""
    modules = {}
    for root, dirs, files in [w for package in (PACKAGE, PIPELINES) for w in os.walk(os.path.join(REPO, package))]:
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                parts = os.path.relpath(os.path.join(root, name), REPO)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                modules[".".join(parts)] = os.path.join(root, name)
    for name in os.listdir(os.path.join(REPO, SCRIPTS)):
        if name.endswith(".py"):
            modules[name[:-3]] = os.path.join(REPO, SCRIPTS, name)
    return modules


def imported_modules(name, path, modules):
    """The project's modules that module `name` imports, anywhere in it (at module level or in a
    function: a cycle through a function-level import is still a cycle, only deferred). `from X import Y`
    imports X.Y when that is a module, else X. A package's own parents are not counted: importing
    a.b.c runs a/__init__.py first, which is Python's order, not a cycle the code chose."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 parents
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # import a.b.c of a module a.b.c that is not ours
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_cycles(graph):
    """Every strongly connected group of two or more modules (Tarjan), each as one cycle through it."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(set(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [cycle_through(graph, group) for group in groups]


def cycle_through(graph, group):
    """One cycle inside the group, as ['a', 'b', ..., 'a'] (a breadth-first path back to its first module)."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & group):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    raise AssertionError(group)


def test_no_import_cycle_among_the_projects_modules():
    modules = project_modules()
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert graph["download"] >= {"archives", "prepare_errors"}  # the scanner sees the scripts' imports
    assert "selfteach_pipeline.errors" in graph["fairseq_selfteach.core.checkpoint_io"]
    cycles = import_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_names_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


# ---------------------------------------------------------------- what the light modules pull in
# The preprocessors and the report are run many times by the pipelines and the tests: each must start
# without torch, fairseq or the plugin package (whose __init__ registers its fairseq components).

HEAVY = ("torch", "fairseq", PACKAGE)
REPORT = f"{PIPELINES}.report"


def run_help(*command):
    """`python -X importtime COMMAND --help` from the repository's root, as a user runs it: its usage
    text, and the heavy packages among every module it imported (importtime names each on stderr)."""
    p = subprocess.run([sys.executable, "-X", "importtime", *command, "--help"], cwd=REPO, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    return p.stdout, sorted({name.split(".")[0] for name in imported} & set(HEAVY))


def test_every_preprocess_script_runs_its_help_without_torch_fairseq_or_the_plugin():
    """`python preprocess/NAME.py --help` (glue_binarize.py imports fairseq's indexed_dataset only in the
    function that writes the binaries; download.py, archives.py and prepare_errors.py are imported by the
    others and have no main, so for them it is the import alone)."""
    scripts = sorted(name for name in os.listdir(os.path.join(REPO, SCRIPTS)) if name.endswith(".py"))
    assert {"download.py", "glue_binarize.py", "iwslt14.py"} <= set(scripts)
    found = {name: run_help(os.path.join(SCRIPTS, name))[1] for name in scripts}
    assert found == {name: [] for name in scripts}


def test_the_report_runs_its_help_without_torch_fairseq_or_the_plugin():
    """`python -m selfteach_pipeline.report --help` (the console script selfteach-report is its main)."""
    usage, heavy = run_help("-m", REPORT)
    assert usage.startswith("usage:") and heavy == []


def test_the_pipelines_package_imports_neither_torch_nor_fairseq():
    """Every module of selfteach_pipeline (the file helpers, the errors, the GLUE formats and metrics, the
    report and its results/, the plans and runners) imported in one plain process."""
    modules = sorted(name for name in project_modules() if name.split(".")[0] == PIPELINES)
    assert {f"{PIPELINES}.files", f"{PIPELINES}.errors", f"{PIPELINES}.glue_format", REPORT,
            f"{PIPELINES}.results.rows"} <= set(modules)
    out = run_python(f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
                     f"print('heavy:', *(m for m in {HEAVY!r} if m in sys.modules))\n")
    assert out.split() == ["heavy:"], out
