"""The command-line tools (console scripts in pyproject.toml; `python -m fairseq_selfteach.cli.NAME` works too)."""
