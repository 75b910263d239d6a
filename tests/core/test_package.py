"""The project installs (`pip install -e .`, scripts/setup_env.sh) with a console script per tool, and
the tools also run as `python -m fairseq_selfteach.cli.NAME`."""
import importlib.metadata
import os
import re
import sys

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

from tests.helpers import BIN, REPO, run


def console_scripts():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


@pytest.mark.skipif(tomllib is None, reason="needs Python 3.11's tomllib")
def test_every_console_script_answers_help(capsys, monkeypatch):
    scripts = console_scripts()
    assert len(scripts) == 11
    installed = {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")}
    for name, target in scripts.items():
        assert os.path.exists(os.path.join(BIN, name)), f"{name} is not installed (pip install -e .)"
        # the installed entry point's function, called as its wrapper calls it (in-process: a process per
        # script would spend its 4 s importing fairseq; the first script runs as a process below)
        assert installed[name].value == target, (name, installed[name].value)
        monkeypatch.setattr(sys, "argv", [name, "--help"])
        with pytest.raises(SystemExit) as stop:
            installed[name].load()()
        out = capsys.readouterr().out
        assert stop.value.code == 0 and out.startswith("usage:"), (name, out[:200])
        # `python -m MODULE` runs the same main: each module ends with the __main__ guard calling it
        module, function = target.split(":")
        with open(os.path.join(REPO, *module.split(".")) + ".py", encoding="utf-8") as f:
            assert re.search(rf'if __name__ == "__main__":\n    sys\.exit\({function}\(\)\)', f.read()), module
    # one installed wrapper and one `python -m` run as the user runs them
    name, target = next(iter(scripts.items()))
    for command in ([name, "--help"], [sys.executable, "-m", target.split(":")[0], "--help"]):
        p = run(command)
        assert p.stdout.startswith("usage:"), (command, p.stdout[:200])


def test_the_package_comes_from_the_installation_not_the_working_directory(tmp_path):
    p = run([sys.executable, "-c", "import fairseq_selfteach, sys; print(fairseq_selfteach.__file__)"],
            cwd=tmp_path)
    assert p.stdout.strip() == os.path.join(REPO, "fairseq_selfteach", "__init__.py")


def test_no_file_touches_sys_path():
    touch = re.compile(r"sys\.path\s*(\.(insert|append|extend|remove)|\[|=|\+=)")
    offenders = []
    for folder in ("fairseq_selfteach", "preprocess", "bench", "scripts", "tests"):
        for root, _dirs, files in os.walk(os.path.join(REPO, folder)):
            for name in files:
                if name.endswith(".py") and name != os.path.basename(__file__):
                    with open(os.path.join(root, name), encoding="utf-8") as f:
                        if touch.search(f.read()):
                            offenders.append(os.path.join(root, name))
    assert offenders == []
