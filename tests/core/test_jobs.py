"""--jobs FILE (fairseq_selfteach/cli/jobs.py): the scoring tools' runs in one process, one line each."""
import sys

from fairseq_selfteach.cli.jobs import run_jobs, split_jobs
from tests.helpers import run


def test_each_line_is_one_run_after_the_common_options(tmp_path):
    jobs = tmp_path / "jobs.tsv"
    jobs.write_text("--name\ta b\t--out\tx.json\n\n--name\tc\n")  # a tab-separated word may hold a space
    seen = []
    assert run_jobs(lambda argv: seen.append(argv) or 0, ["--data", "D", "--jobs", str(jobs)], "tool") == 0
    assert seen == [["--data", "D", "--name", "a b", "--out", "x.json"], ["--data", "D", "--name", "c"]]
    assert split_jobs(["--jobs=F", "--cpu"]) == (["--cpu"], "F")
    assert split_jobs(["--cpu"]) == (["--cpu"], None)


def test_the_first_failing_line_stops_the_rest_and_is_named(tmp_path, capsys):
    jobs = tmp_path / "jobs.tsv"
    jobs.write_text("--ok\n--fail\n--ok\n")
    seen = []

    def run_one(argv):
        seen.append(argv)
        return 1 if "--fail" in argv else 0

    assert run_jobs(run_one, ["--jobs", str(jobs)], "tool") == 1
    assert seen == [["--ok"], ["--fail"]]
    assert f"tool: error: {jobs}:2: that run failed" in capsys.readouterr().err


def test_a_bad_option_on_a_line_through_the_cli(tmp_path):
    jobs = tmp_path / "jobs.tsv"
    jobs.write_text("--path\tm.pt\t--bogus\t1\n")
    p = run([sys.executable, "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", tmp_path, "--jobs", jobs],
            check=False)
    assert p.returncode == 2
    assert "unrecognized arguments: --bogus 1" in p.stderr and f"{jobs}:1: that run failed" in p.stderr
    assert "Traceback" not in p.stderr
    p = run([sys.executable, "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", tmp_path,
             "--jobs", tmp_path / "missing.tsv"], check=False)
    assert p.returncode == 2 and p.stderr.strip().endswith("missing.tsv: No such file or directory")


def test_generate_jobs_names_the_failed_line_and_leaves_no_output_looking_complete(toy_data, tmp_path):
    """scripts/generate_jobs.py (the translation pipeline's decoding): a run that fails is named by its
    line, its output stays under FILE.tmp, and the later lines are not run."""
    import os
    from tests.helpers import REPO

    jobs = tmp_path / "generate.tsv"
    jobs.write_text(f"--output\t{tmp_path / 'a.txt'}\t--path\t{tmp_path / 'missing.pt'}\n"
                    f"--output\t{tmp_path / 'b.txt'}\t--path\t{tmp_path / 'missing.pt'}\n")
    p = run(["python", os.path.join(REPO, "scripts", "generate_jobs.py"), toy_data, "--cpu", "--jobs", jobs],
            cwd="/", check=False)
    assert p.returncode != 0
    assert f"{jobs}:1: that run failed" in p.stderr and "missing.pt" in p.stderr
    assert not (tmp_path / "a.txt").exists() and (tmp_path / "a.txt.tmp").exists()
    assert not (tmp_path / "b.txt.tmp").exists()
    p = run(["python", os.path.join(REPO, "scripts", "generate_jobs.py"), toy_data, "--path", "m.pt"], check=False)
    assert p.returncode == 2 and "each run needs --output FILE" in p.stderr
