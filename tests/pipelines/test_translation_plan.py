"""The translation pipeline's plan, built in-process (no run, no torch): every setting of the table plans,
each option changes the plan as it says, and what is refused is refused in one line."""
import json
import os

import pytest

from selfteach_pipeline import settings_table
from selfteach_pipeline.plan import PlanError
from selfteach_pipeline.files import atomic_write_text
from selfteach_pipeline.translate_cli import make_pipeline, main
from selfteach_pipeline.translation_family import KINDS, TABLE
from tests.helpers import argv_value, plans_fast_without_torch

SETTINGS, _ = settings_table.read_table(TABLE)


def plan_of(out, *argv, gpus=0):
    return make_pipeline(["bible-ci", "--out", str(out), *map(str, argv)], gpus=gpus)[2]


def mark(out, *names, seconds=1):
    for name in names:
        atomic_write_text(os.path.join(out, "stages", f"{name}.done"), json.dumps({"seconds": seconds}) + "\n")


def teacher_finished(out, updates=100):
    """The teacher's marker and the last line fairseq-train logs (what a patience teacher's budget is read from)."""
    mark(out, "teacher")
    os.makedirs(out / "logs", exist_ok=True)
    (out / "logs" / "teacher.train.log").write_text(f"epoch 004 | loss 5 | num_updates {updates} | lr 0.003\n"
                                                   "done training in 9.0 seconds\n")


def test_every_setting_plans_in_well_under_a_second_without_torch_or_fairseq(tmp_path):
    plans_fast_without_torch("translate_cli", [[setting, "--out", str(tmp_path), "--cpu", "--seqkd", "--teacher-cache",
                                                "--anydepth"] for setting in SETTINGS])


@pytest.mark.parametrize("setting", SETTINGS)
def test_every_setting_once_its_teacher_is_trained_plans_every_row_and_the_report(setting, tmp_path):
    teacher_finished(tmp_path)
    pipeline = make_pipeline([setting, "--out", str(tmp_path), "--cpu"], gpus=0)[2]
    plan, s = pipeline.build(), pipeline.s
    names = set(plan.names())
    seeds, L = s["seeds"], s["teacher_decoder_layers"]
    assert {"raw", "prepare", "teacher", f"eval_teacher_dec{L}", "report"} <= names
    for seed in seeds:
        for k in s["student_depths"]:
            assert {f"eval_{m}_dec{k}_s{seed}" for m in ("offline", "online", "ce_same_init", "scratch_same_budget",
                                                          "scratch_equal_compute")} <= names
        for k in s["gradual_schedule"][1:]:
            assert f"eval_gradual_dec{k}_s{seed}" in names
            assert (f"eval_online_gradual_dec{k}_s{seed}" in names) == s["online_gradual"]
            assert (f"eval_online_gradual_from_teacher_dec{k}_s{seed}" in names) == s["online_gradual_from_teacher"]
    assert (f"anydepth_s{seeds[0]}" in names) == s["anydepth"]
    assert plan["report"].after == tuple(n for n in plan.names() if n.startswith("eval_"))
    # the decodings that prove an export are plain fairseq; only the anydepth exits load the plugin
    for stage in plan.stages:
        if stage.argv[0] == "fairseq-generate":
            assert ("--user-dir" in stage.argv) == stage.name.startswith("decode_anydepth_exit"), stage.name


def test_every_run_has_the_kl_free_twin_and_the_equal_compute_baseline(tmp_path):
    """ce_same_init: the offline student's layers, updates, seed and schedule, cross-entropy only;
    scratch_equal_compute: random initialisation, the teacher's updates (here the ones its patience
    took) plus a student's."""
    teacher_finished(tmp_path, updates=321)
    plan = plan_of(tmp_path, "--cpu", "--set", "teacher_patience=2").build()
    offline, twin = plan["offline_dec1_s1"], plan["ce_same_init_dec1_s1"]
    for option in ("--teacher-path", "--max-update", "--lr", "--warmup-updates", "--seed", "--decoder-layers"):
        assert argv_value(offline, option) == argv_value(twin, option), option
    assert argv_value(offline, "--criterion") == "self_distill"
    assert argv_value(twin, "--criterion") == "label_smoothed_cross_entropy" and "--kd-alpha" not in twin.argv
    equal = plan["scratch_equal_compute_dec1_s1"]
    assert argv_value(equal, "--max-update") == str(321 + int(argv_value(offline, "--max-update")))
    assert "--teacher-path" not in equal.argv and "--finetune-from-model" not in equal.argv
    assert argv_value(plan["online_s1"], "--max-update") == "321"
    assert any("scratch_equal_compute" in c and "321 +" in c for c in plan.choices)


def test_options_change_the_plan_as_they_say(tmp_path):
    teacher_finished(tmp_path)
    base = set(plan_of(tmp_path, "--cpu").build().names())
    seqkd = set(plan_of(tmp_path, "--cpu", "--seqkd").build().names())
    assert seqkd - base >= {"decode_teacher_train", "seqkd_corpus", "seqkd_binarise", "seqkd_data", "seqkd_dec1_s1",
                            "eval_seqkd_dec1_s2"} and not base & {n for n in seqkd if "seqkd" in n}
    cached = set(plan_of(tmp_path, "--cpu", "--teacher-cache").build().names())
    assert cached - base == {"cache_teacher", "cache_gradual_dec2_s1", "cache_gradual_dec2_s2"}
    one_seed = plan_of(tmp_path, "--cpu", "--seeds", "7").build()
    assert "offline_dec1_s7" in one_seed.names() and not [n for n in one_seed.names() if n.endswith("_s1")]
    depth = plan_of(tmp_path, "--cpu", "--set", "student_depths=2").build()
    assert "offline_dec2_s1" in depth.names() and "--no-training" in depth["export_pruned_dec2"].argv
    gpu = plan_of(tmp_path, "--world-size", "2", gpus=2).build()["teacher"].argv
    assert "--cpu" not in gpu and gpu[gpu.index("--distributed-world-size") + 1] == "2" and "--fp16" in gpu


def test_a_patience_teacher_gives_its_updates_once_it_has_stopped(tmp_path):
    before = plan_of(tmp_path, "--cpu").build()
    assert "teacher" in before.names() and "online_s1" not in before.names() and "report" not in before.names()
    assert "offline_dec1_s1" in before.names()  # the students need its weights, not its budget
    teacher_finished(tmp_path, updates=87)
    after = plan_of(tmp_path, "--cpu").build()
    assert after["online_s1"].argv[after["online_s1"].argv.index("--max-update") + 1] == "87"
    assert any("the teacher stopped after 87 updates" in c for c in after.choices)


def test_the_sweep_grows_the_plan_with_its_pick(tmp_path):
    teacher_finished(tmp_path)
    plan = plan_of(tmp_path, "--cpu", "--sweep").build()
    points = ["sweep_kd_alpha0.5", "sweep_kd_alpha0.9"]
    assert set(points) <= set(plan.names()) and "offline_dec1_s1" not in plan.names()
    assert plan["decode_sweep_kd_alpha0.9_valid"].argv[plan["decode_sweep_kd_alpha0.9_valid"].argv.index(
        "--gen-subset") + 1] == "valid"
    for point, score in zip(points, (20.0, 25.0)):
        mark(tmp_path, f"valid_{point}")
        os.makedirs(tmp_path / "sweep", exist_ok=True)
        (tmp_path / "sweep" / f"{point}.json").write_text(json.dumps({"sacrebleu": score}))
    plan = plan_of(tmp_path, "--cpu", "--sweep").build()
    argv = plan["offline_dec1_s2"].argv
    assert argv[argv.index("--kd-alpha") + 1] == "0.9" and argv.count("--kd-alpha") == 1
    assert [p["picked"] for p in json.loads((tmp_path / "sweep.json").read_text())] == [False, True]
    assert plan["report"].argv[-2:] == ("--sweep", str(tmp_path / "sweep.json"))


def test_data_bin_skips_the_data_stages_and_finds_its_references(tmp_path):
    prep = tmp_path / "prep"
    (prep / "bin").mkdir(parents=True)
    for lang in ("es", "en"):
        (prep / "bin" / f"dict.{lang}.txt").write_text("a 1\n")
    with pytest.raises(PlanError, match=r"no raw test references .*ref/test.en.*give --test-raw FILE"):
        plan_of(tmp_path / "run", "--cpu", "--data-bin", prep / "bin")
    for folder in ("ref", "tok"):
        (prep / folder).mkdir()
        for split in ("test", "valid"):
            (prep / folder / f"{split}.en").write_text("a\n")
    teacher_finished(tmp_path / "run")
    plan = plan_of(tmp_path / "run", "--cpu", "--data-bin", prep / "bin").build()
    assert not {"raw", "prepare"} & set(plan.names()) and plan["teacher"].after == ()
    assert plan["teacher"].argv[1] == str(prep / "bin")
    assert str(prep / "ref" / "test.en") in plan["eval_teacher_dec3"].argv
    mine = tmp_path / "mine.en"
    mine.write_text("b\n")
    plan = plan_of(tmp_path / "run", "--cpu", "--data-bin", prep / "bin", "--test-raw", mine).build()
    assert str(mine) in plan["eval_teacher_dec3"].argv
    with pytest.raises(PlanError, match=r"no dict.de.txt \(it has dict.en.txt, dict.es.txt\)"):
        plan_of(tmp_path / "run", "--cpu", "--data-bin", prep / "bin", "--set", "src=de")


def test_a_run_resumed_after_a_kill_does_not_retrain_a_finished_training(tmp_path):
    teacher_finished(tmp_path)
    (tmp_path / "models" / "teacher").mkdir(parents=True)
    (tmp_path / "models" / "teacher" / "checkpoint_last.pt").write_bytes(b"x")
    (tmp_path / "stages" / "teacher.done").unlink()  # finished, killed before its marker
    plan = plan_of(tmp_path, "--cpu").build()
    assert plan["teacher"].argv == ("true",) and any("teacher: training had finished" in c for c in plan.choices)


@pytest.mark.parametrize("argv, words", [
    (["--set", "nope=1"], "error: --set nope: no such setting (known: anydepth, arch, "),
    (["--set", "teacher_max_update=many"], "error: --set teacher_max_update=many: expected a whole number"),
    (["--seeds", "1,two"], "error: --seeds takes whole numbers, e.g. 1,2,3 (not '1,two')"),
    (["--sweep-grid", "kd_alpha=2"], "error: sweep: kd_alpha='2' is not a valid value"),
    (["--set", "gradual_schedule=3,3,1"], "error: gradual schedule 3,3,1 must decrease at every step"),
    (["--fp16"], "error: --fp16 is fairseq's half-precision training on CUDA devices"),
    (["--bogus"], "error: unrecognized arguments: --bogus"),
    (["--data-bin", "/no/such/folder"], "error: --data-bin /no/such/folder: no such folder"),
    (["--only-data", "--data-bin", "x"], "error: --only-data prepares the data; --data-bin brings it prepared"),
])
def test_bad_options_are_one_line_and_exit_2(argv, words, tmp_path, capsys):
    assert main(["bible-ci", "--out", str(tmp_path / "run"), "--cpu", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(words) and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_unknown_setting_names_the_table_and_its_settings(tmp_path, capsys):
    assert main(["xx", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: unknown setting xx; {TABLE} has: {' '.join(SETTINGS)}\n"


def test_a_settings_file_overrides_rows_and_not_used_is_a_dash(tmp_path):
    f = tmp_path / "mine.txt"
    f.write_text("# mine\nteacher_max_update 30\nteacher_patience=-\n")
    s = settings_table.load(TABLE, "bible-ci", KINDS, ["seeds=4,5"], str(f))
    assert (s["teacher_max_update"], s["teacher_patience"], s["seeds"], s["online_gradual"]) == (30, None, (4, 5), True)
    f.write_text("beam five\n")
    with pytest.raises(PlanError, match=r"mine.txt:1: beam=five: expected a whole number"):
        settings_table.load(TABLE, "bible-ci", KINDS, (), str(f))


def test_the_dry_run_prints_every_choice_and_command(tmp_path, capsys):
    assert main(["bible-ci", "--out", str(tmp_path / "run"), "--cpu", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "# training in float32 (CPU)" in text and "# stage teacher (after prepare)" in text
    assert "fairseq-train " in text and not (tmp_path / "run").exists()
    assert main(["bible-ci", "--out", str(tmp_path / "run"), "--cpu", "--dry-run", "--executor", "slurm"]) == 0
    assert '# job teacher: {"name": "selfteach-teacher"' in capsys.readouterr().out


# --- the settings table and the sweep ----------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    ("a\tb\n", "the first row must be the header"),
    ("setting\ta\nx\t1\t2\n", "2 cells, the header has 1"),
    ("setting\ta\nBad\t1\n", "is not a lower-case identifier"),
    ("setting\ta\nx\t1\nx\t2\n", "row x given twice"),
    ("setting\ta\nx\t\n", "has an empty cell"),
    ("# only a comment\n", "no header row"),
])
def test_a_broken_settings_table_is_refused_in_one_line(content, message, tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text(content)
    with pytest.raises(PlanError, match=message):
        settings_table.read_table(str(table))


def test_sweep_grid_points_and_refusals():
    assert settings_table.sweep_grid("kd_alpha=0.5,0.9;kd_temperature=1,2")[1] == (
        "kd_alpha0.5_kd_temperature2", [("kd_alpha", "0.5"), ("kd_temperature", "2")])
    for spec, words in (("kd_beta=1", "is not KEY=V,V"), ("kd_alpha=1.5", "kd_alpha='1.5' is not a valid"),
                        ("kd_alpha=0.5,0.5", "given twice"), ("kd_alpha=" + ",".join(f"0.{i}" for i in range(1, 10))
                                                              + ";kd_temperature=1,2", "18 points")):
        with pytest.raises(PlanError, match=words):
            settings_table.sweep_grid(spec)


def test_depths_and_budgets():
    settings_table.check_depths(6, (6, 4, 3), (3, 2), "layers", "t")
    for schedule, students, words in (((5, 4), (3,), "must start at"), ((6, 4, 4), (3,), "decrease at every step"),
                                      ((6, 3), (6,), "between 1 and 5")):
        with pytest.raises(PlanError, match=words):
            settings_table.check_depths(6, schedule, students, "layers", "t")
    assert settings_table.split_budget(100, 3) == [34, 33, 33] and sum(settings_table.split_budget(7, 7)) == 7
    with pytest.raises(PlanError, match="cannot be split"):
        settings_table.split_budget(2, 3)
