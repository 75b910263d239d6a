"""The classification study's committed tables are what its archived runs give: `selfteach-kl-study
--report` on docs/results/kl-study-classification/runs/*.tar.gz (what `--archive` kept of each teacher's
run: rows, per-example outputs, markers, training logs; no models) writes the committed results.json,
contrasts.json and results.md again, to the byte. And --archive's refusals."""
import glob
import os
import tarfile

from selfteach_pipeline import kl_cli
from tests.helpers import REPO

STUDY = os.path.join(REPO, "docs", "results", "kl-study-classification")
ARCHIVES = sorted(glob.glob(os.path.join(STUDY, "runs", "teacher*.tar.gz")))


def test_the_committed_tables_are_what_the_archived_runs_give(tmp_path):
    assert ARCHIVES, f"no archived runs in {STUDY}/runs"
    assert kl_cli.main(["--report", *ARCHIVES, "--out", str(tmp_path)]) == 0
    for name in ("results.json", "contrasts.json", "results.md"):
        with open(os.path.join(STUDY, name), encoding="utf-8") as committed:
            assert (tmp_path / name).read_text(encoding="utf-8") == committed.read(), name


def test_archive_keeps_what_the_report_reads_and_refuses_in_one_line(tmp_path, capsys):
    with tarfile.open(ARCHIVES[0]) as tar:
        names = tar.getnames()
    top = names[0].split("/")[0]
    assert all(n.split("/")[0] == top for n in names) and f"{top}/settings.json" in names
    assert any(n.startswith(f"{top}/results/") for n in names) and not any(n.endswith(".pt") for n in names)
    assert kl_cli.main(["--archive", str(tmp_path), "--out", str(tmp_path / "a.zip")]) == 2
    assert kl_cli.main(["--archive", str(tmp_path), "--out", str(tmp_path / "a.tar.gz")]) == 2
    assert kl_cli.main(["--report", str(tmp_path / "missing.tar.gz"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "writes a .tar.gz" in err[0] and "settings.json: missing" in err[1], err
    assert "missing.tar.gz" in err[2] and not (tmp_path / "a.tar.gz").exists()
