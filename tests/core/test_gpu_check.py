"""bench/gpu_check.py's CPU side (issue #34): argument handling, the dry run, the table writer, reading
the parts' outputs, and stopping a part at its budget. In-process, no GPU, no training: the GPU parts
themselves are what a lent GPU runs."""
import json
import os
import re
import sys
import time

import pytest

from tests.helpers import REPO

BENCH = os.path.join(REPO, "bench")


@pytest.fixture(scope="module")
def gpu_check():
    """bench/gpu_check.py imported as its script sees itself (bench/ first on the path, for `common`);
    the bench modules are dropped afterwards, so no other test gets this `common`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(BENCH)
        import gpu_check

        yield gpu_check
    for name in ("gpu_check", "gpu_check_rows", "common"):
        sys.modules.pop(name, None)


@pytest.fixture
def no_cuda_question(monkeypatch):
    """A dry run and the argument checks never ask torch about CUDA."""
    import torch

    def asked():
        raise AssertionError("torch.cuda.is_available() called")

    monkeypatch.setattr(torch.cuda, "is_available", asked)


def refusal(gpu_check, capsys, *argv):
    with pytest.raises(SystemExit) as e:
        gpu_check.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.count("\n") == 1 and err.startswith("gpu_check: "), err
    return err


def test_bad_arguments_refused_in_one_line(gpu_check, capsys, tmp_path, no_cuda_question):
    out = tmp_path / "t.md"
    assert "unknown part nope" in refusal(gpu_check, capsys, "--parts", "train,nope", "--out", out)
    assert "choose from train,bible,speculative,decoding" in refusal(gpu_check, capsys, "--parts", ",", "--out", out)
    assert "--bogus" in refusal(gpu_check, capsys, "--bogus")
    assert "--out FILE is required" in refusal(gpu_check, capsys)
    assert "at least 100" in refusal(gpu_check, capsys, "--bible-updates", "20", "--out", out)
    assert "no dict.es.txt and dict.en.txt" in refusal(gpu_check, capsys, "--bible-bin", tmp_path, "--out", out)
    assert not out.exists()


def test_no_cuda_is_one_line_and_exit_2(gpu_check, capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "t.md"
    assert gpu_check.main(["--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == gpu_check.NO_CUDA + "\n" and captured.out == ""
    assert not out.exists() and not (tmp_path / "t.md.tmp").exists()


def test_dry_run_lists_every_part_with_its_budget_and_commands(gpu_check, capsys, no_cuda_question):
    assert gpu_check.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    for name, budget in gpu_check.PARTS.items():
        assert f"part {name} ({budget} s):" in out
    assert sum(gpu_check.PARTS.values()) <= gpu_check.TOTAL_BUDGET_S == 480
    assert "bible (140 s): the Bible demo teacher, fairseq-train, 300 updates -- skipped: no --bible-bin" in out
    assert "--measure-updates WORKDIR/updates.json" in out
    assert "bench_speculative.py --data WORKDIR/synthetic/bin" in out and "--batch-sizes 1" in out
    assert "bench_decoding.py --device cuda --synthetic" in out


def test_dry_run_with_bible_bin_runs_the_demo_options_in_fp16_and_fp32(gpu_check, capsys, tmp_path,
                                                                       no_cuda_question):
    for lang in ("es", "en"):
        (tmp_path / f"dict.{lang}.txt").write_text("")
    assert gpu_check.main(["--dry-run", "--bible-bin", str(tmp_path), "--parts", "speculative,bible"]) == 0
    out = capsys.readouterr().out
    assert out.index("part bible") < out.index("part speculative")  # the table's order, not --parts'
    assert "part train" not in out and "part decoding" not in out
    teacher16, teacher32, online = [line for line in out.splitlines() if "fairseq_cli.train" in line]
    settings = gpu_check.bible_settings()
    # the pipeline's own options (translation_family.py) and the teacher's depth
    for option in ("--task self_distill_translation", f"--decoder-layers {settings['teacher_decoder_layers']}",
                   "--log-interval 50", f"--user-dir {REPO}/fairseq_selfteach", "--disable-validation"):
        assert all(option in line for line in (teacher16, teacher32, online)), option
    assert teacher16.endswith("--no-save --fp16") and teacher32.endswith("--no-save")
    assert "--criterion self_distill --student-exits all" in online and "--fp16" in online
    assert f"--exits {settings['student_depths']}" in out
    assert "fp32 (if time allows)" in out


def fake_outcomes():
    return [
        {"part": "train", "seconds": 41.2, "budget": 80, "rows": [
            {"row": "1a", "measured": "teacher update time, fp16 ÷ fp32", "compares": "6+6", "result": "0.52"},
            {"row": "1b", "measured": "offline student", "compares": "a | b", "result": "0.49"}]},
        {"part": "bible", "seconds": 0, "budget": 140, "rows": [
            {"row": "2", "measured": "the Bible demo teacher", "compares": "", "result": "skipped: no --bible-bin"}]},
    ]


def test_table_is_one_markdown_table_written_whole_then_renamed(gpu_check, tmp_path, monkeypatch):
    machine = {"gpu": "NVIDIA Fake 80GB", "torch": "2.1.0", "cuda": "12.1", "fairseq": "0.12.2",
               "date": "2026-12-06 21:00 UTC", "seconds": 300.4}
    text = gpu_check.format_table(machine, fake_outcomes())
    lines = text.splitlines()
    assert all(line.startswith("|") and line.endswith("|") for line in lines)  # one table, nothing else
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 6 for line in lines)  # 5 cells each
    assert "NVIDIA Fake 80GB" in lines[2] and "torch 2.1.0, CUDA 12.1" in lines[2] and "2026-12-06" in lines[2]
    assert "| 1a | teacher update time, fp16 ÷ fp32 | 6+6 | 0.52 | 41 s / 80 s (train) |" in lines
    assert "| 1b | offline student | a \\| b | 0.49 |  |" in lines  # a | in a cell is escaped
    assert "skipped: no --bible-bin" in lines[-1]

    out = tmp_path / "gpu_check.md"
    renames = []
    real_replace = os.replace

    def replace(src, dst):  # at the rename, the temporary file is already whole and the target absent
        renames.append((str(src), str(dst), open(src).read(), os.path.exists(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    gpu_check.write_table(str(out), text)
    assert renames == [(f"{out}.tmp", str(out), text, False)]
    assert out.read_text() == text and not (tmp_path / "gpu_check.md.tmp").exists()


def test_main_with_a_gpu_writes_and_prints_the_table(gpu_check, capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu_check, "machine", lambda: {"gpu": "NVIDIA Fake", "torch": "t", "cuda": "c",
                                                        "fairseq": "f", "date": "d"})
    out = tmp_path / "t.md"
    assert gpu_check.main(["--out", str(out), "--parts", "bible"]) == 0  # no --bible-bin: nothing runs
    text = out.read_text()
    assert "NVIDIA Fake" in text and "| 2 | the Bible demo teacher" in text and "skipped: no --bible-bin" in text
    assert capsys.readouterr().out.endswith(text)


def test_a_step_past_its_budget_is_stopped_and_its_row_says_so(gpu_check, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    part = gpu_check.Part("decoding", "decoder-3 vs decoder-6", [gpu_check.Step(
        "decode", "sleeps", [sys.executable, "-c", "import subprocess, sys, time; "
                             "open(sys.argv[1], 'w').write(str(subprocess.Popen(['sleep', '60']).pid)); "
                             "time.sleep(60)", str(pid_file)])])
    t0 = time.monotonic()
    outcome = gpu_check.run_part(part, time.monotonic() + 1.5, str(tmp_path), str(tmp_path))
    assert time.monotonic() - t0 < 10
    (row,) = outcome["rows"]
    assert row["row"] == "4" and row["result"].startswith("stopped: decode would overrun the 100 s budget")
    stat = f"/proc/{pid_file.read_text()}/stat"  # the child's own child went with its process group
    for _ in range(50):
        if not os.path.exists(stat) or open(stat).read().split(")")[-1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the step's grandchild outlived the stop")


def test_a_failed_step_gives_its_last_line(gpu_check, tmp_path):
    part = gpu_check.Part("train", "fp16 and fp32", [gpu_check.Step(
        "measure", "fails", [sys.executable, "-c", "import sys; print('first'); sys.exit('CUDA out of memory')"])])
    (row,) = gpu_check.run_part(part, time.monotonic() + 60, str(tmp_path), str(tmp_path))["rows"]
    assert row["row"] == "1" and row["result"].startswith("failed: measure exited 1: CUDA out of memory")
    assert (tmp_path / "train.measure.log").read_text().startswith("first")


# --- reading the parts' outputs --------------------------------------------------------------------------

def train_log(scale=None):
    line = ("2026-12-06 21:22:58 | INFO | train_inner | epoch 001:     {u} / 120 loss={loss}, nll_loss=7.4, "
            "wps=2682.5, ups={ups}, wpb=230, bsz=36, num_updates={u}, lr=4e-05"
            + (f", loss_scale={scale}" if scale else "") + ", train_wall=0, wall=2")
    return "\n".join(["some start-up line", line.format(u=50, loss=9.0, ups=1.0),
                      line.format(u=100, loss=8.0, ups=10.0), "epoch 002 | a line that is not per-interval",
                      line.format(u=150, loss=7.5, ups=5.0)])


def test_fairseq_train_log_gives_updates_per_second_after_the_first_interval(gpu_check):
    rows = sys.modules["gpu_check_rows"]
    summary = rows.train_log_summary(train_log(scale=64))
    # updates 51-150: 50 at 10/s + 50 at 5/s = 15 s; the first interval (warm-up) left out
    assert summary == {"updates_per_s": pytest.approx(100 / 15), "loss": 7.5, "loss_scale": 64.0,
                       "first": 50, "last": 150}
    with pytest.raises(ValueError, match="1 logged training interval"):
        rows.train_log_summary(train_log().splitlines()[1])
    bible = rows.rows_bible({"fp16": train_log(64), "fp32:skipped": "skipped: 3 s of the budget left"}, "")
    assert [r["row"] for r in bible] == ["2a", "2b"]
    assert bible[0]["result"] == "6.7 updates/s; loss 7.500; loss scale 64.0"
    assert bible[1]["result"] == "skipped: 3 s of the budget left"
    both = rows.rows_bible({"fp16": train_log(64), "fp32": train_log()}, "")
    assert both[1]["result"].endswith("fp16 ÷ fp32 updates/s 1.00")


def test_speculative_table_gives_ratio_acceptance_and_identity(gpu_check):
    rows = sys.modules["gpu_check_rows"]
    table = """batch size 1: 20 sentences, 20 batches; 11 s in all
decoder        sent/s   ratio  ÷ lean  accept  tok/step      c  ideal  identical
plain            1.48    1.00
exit 3           2.90    1.97
lean greedy      1.90    1.29                                          yes
spec 3/2         1.70    1.15    0.90   0.900      2.80   0.51   1.39  yes
spec 3/4         2.06    1.40    1.08   0.800      4.20   0.51   1.38  NO"""
    assert rows.speculative_summary(table) == [("spec 3/2", 1.15, 0.9, True), ("spec 3/4", 1.40, 0.8, False)]
    (row,) = rows.rows_speculative({"build": "", "decode": table}, "")
    assert row["result"] == ("spec 3/2: 1.15× (accepted 0.90); spec 3/4: 1.40× (accepted 0.80); "
                             "hypotheses identical: NO")
    assert row["compares"].startswith("random-init 6+6, synthetic data")
    with pytest.raises(ValueError):
        rows.speculative_summary("plain 1.0 1.0")


def test_update_times_and_generate_speeds_become_ratios(gpu_check, tmp_path):
    rows = sys.modules["gpu_check_rows"]
    times = {"full_lsce": (0.030, 0.060), "full_online": (0.033, 0.069), "student_lsce": (0.020, 0.040),
             "student_offline": (0.026, 0.050)}
    median_s = {f"{n}/{p}": t for n, pair in times.items() for p, t in zip(("fp16", "fp32"), pair)}
    (tmp_path / "updates.json").write_text(json.dumps({
        "median_s": median_s, "steps": 30, "warmup": 5, "overflows": {"full_lsce/fp16": 1, "full_lsce/fp32": 0}}))
    r1a, r1b, r1c, r1d = rows.rows_train({}, str(tmp_path))
    assert r1a["result"] == "0.50 (30.0 ms ÷ 60.0 ms); fp16 updates skipped for overflow: full_lsce/fp16 1"
    assert r1b["result"].startswith("0.52 (26.0 ms ÷ 50.0 ms)")
    assert r1c["result"] == "fp16 1.100; fp32 1.150" and r1d["result"] == "fp16 1.300; fp32 1.250"
    (tmp_path / "decoding.json").write_text(json.dumps({
        "beam": 5, "batch_size": 128, "repeats": 2, "ratio": 1.6, "problems": [],
        "summary": {"teacher": {"sentences": 1000, "sentences_per_s": 100.0},
                    "student": {"sentences": 1000, "sentences_per_s": 160.0}}}))
    (r4,) = rows.rows_decoding({}, str(tmp_path))
    assert r4["result"] == "0.62 (160 ÷ 100 sentences/s, student ÷ teacher)"
