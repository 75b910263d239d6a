"""The recorded studies' runs (docs/results/*/run.py), planned without training: their stages and the
options that make them the recorded experiments (a chain's teacher is its previous stage, the budgets,
the distillation pick, the baselines' start), and their own options refused in one line."""
import functools
import importlib.util
import os

import pytest

from selfteach_pipeline import translate_cli
from tests.helpers import REPO, argv_value
from tests.pipelines.test_translation_plan import teacher_finished


def study(path):
    """docs/results/PATH/run.py as a module."""
    spec = importlib.util.spec_from_file_location("run_" + path.replace("/", "_").replace("-", "_"),
                                                  os.path.join(REPO, "docs", "results", path, "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bible_budget_study_chains_its_stages_and_trains_its_baselines_once_the_teacher_has_stopped(tmp_path):
    run = study("bible-study/student-budget")
    kind = functools.partial(run.StudentBudget, budgets=[200, 400])
    pipeline = translate_cli.make_pipeline(["bible-study", "--out", str(tmp_path), "--cpu", "--seeds", "1,2"], gpus=0,
                                           kind=kind)[2]
    plan = pipeline.build()
    names = plan.names()
    # the teacher has patience: before it stops, no teacher-budget baseline, no scoring, no report
    assert "teacher" in names and "report" not in names and not any(n.startswith("eval_") for n in names)
    for b in (200, 400):
        for seed in (1, 2):
            first, second = plan[f"gradual_u{b}_dec3_s{seed}"], plan[f"gradual_u{b}_dec2_s{seed}"]
            assert argv_value(first, "--teacher-path") == pipeline.checkpoint("teacher")
            assert argv_value(second, "--teacher-path") == pipeline.checkpoint(first.name)
            assert first.name in second.after and "teacher" in first.after
            for stage in (first, second):
                assert argv_value(stage, "--max-update") == str(b) and argv_value(stage, "--seed") == str(seed)
                assert (argv_value(stage, "--kd-alpha"), argv_value(stage, "--kd-temperature")) == ("0.5", "1")
                assert argv_value(stage, "--lr") == str(pipeline.s["student_lr"])
            scratch = plan[f"scratch_u{b}_dec2_s{seed}"]
            assert "--teacher-path" not in scratch.argv and "--finetune-from-model" not in scratch.argv
            assert argv_value(scratch, "--criterion") == "label_smoothed_cross_entropy"
            assert argv_value(scratch, "--decoder-layers") == "2" and argv_value(scratch, "--max-update") == str(b)
    teacher_finished(tmp_path, updates=1056)
    plan = pipeline.build()
    scratch = plan["scratch_u1056_dec2_s1"]  # the teacher's budget on the teacher's schedule
    assert argv_value(scratch, "--lr") == str(pipeline.s["lr"])
    assert argv_value(scratch, "--warmup-updates") == str(pipeline.s["warmup_updates"])
    rows = {s.name for s in plan.stages if s.name.startswith("eval_")}
    assert rows == {"eval_teacher_dec4"} | {f"eval_{n}_s{seed}" for seed in (1, 2) for n in
                                            ["gradual_u200_dec3", "gradual_u200_dec2", "scratch_same_budget_u200_dec2",
                                             "gradual_u400_dec3", "gradual_u400_dec2", "scratch_same_budget_u400_dec2",
                                             "scratch_teacher_budget_dec2"]}
    assert plan["compare"].after == ("report",) and plan["compare"].stdout == str(tmp_path / "compare.json")
    assert "compare" in pipeline.redone_each_run


def test_the_exit_curriculum_study_trains_every_exit_of_one_model_per_variant_on_the_runs_data(tmp_path):
    prep = tmp_path / "demo" / "data" / "prep"
    for folder, files in (("bin", ("dict.es.txt", "dict.en.txt")), ("ref", ("test.en", "valid.en")),
                          ("tok", ("test.en", "valid.en"))):
        os.makedirs(prep / folder)
        for name in files:
            (prep / folder / name).write_text("")
    run = study("exit-curriculum")
    kind = functools.partial(run.ExitCurriculum, curricula=["none", "gradual"], dropouts=[0.0, 0.2])
    pipeline = translate_cli.make_pipeline(["bible", "--out", str(tmp_path / "out"), "--cpu", "--seeds", "1",
                                            "--data-bin", str(prep / "bin")], gpus=0, kind=kind)[2]
    plan = pipeline.build()
    trainings = [s for s in plan.stages if s.argv[0] == "fairseq-train"]
    assert [s.name for s in trainings] == ["exits_all_none_s1", "exits_all_none_ld0.2_s1", "exits_all_gradual_s1",
                                           "exits_all_gradual_ld0.2_s1"]
    for stage in trainings:  # the teacher's budget and schedule, every exit, from random initialisation
        assert stage.argv[1] == str(prep / "bin") and argv_value(stage, "--student-exits") == "all"
        assert argv_value(stage, "--max-update") == str(pipeline.s["teacher_max_update"])
        assert argv_value(stage, "--lr") == str(pipeline.s["lr"]) and "--finetune-from-model" not in stage.argv
    assert argv_value(plan["exits_all_gradual_ld0.2_s1"], "--exit-curriculum") == "gradual"
    assert argv_value(plan["exits_all_gradual_ld0.2_s1"], "--layer-dropout-max") == "0.2"
    L = pipeline.L
    assert {s.name for s in plan.stages if s.name.startswith("eval_")} == {
        f"eval_exits_all_{v}_dec{k}_s1" for v in ("none", "none_ld0.2", "gradual", "gradual_ld0.2") for k in range(1, L)}
    assert argv_value(plan[f"export_exits_all_none_dec{L - 1}_s1"], "--decoder-layers") == str(L - 1)


@pytest.mark.parametrize("path,argv,message", [
    ("bible-study/student-budget", ["--budgets", "two hundred"], "--budgets takes a list of whole numbers"),
    ("exit-curriculum", ["RUN", "--curricula", "none,sideways"], "--curricula takes none, rotational, gradual"),
    ("exit-curriculum", ["NO_SUCH_RUN"], "NO_SUCH_RUN/data/prep/bin: no such folder"),
])
def test_a_studys_bad_option_is_one_line_and_exit_2(path, argv, message, tmp_path, capsys):
    (tmp_path / "RUN" / "data" / "prep" / "bin").mkdir(parents=True)
    argv = [str(tmp_path / a) if a.isupper() else a for a in argv]
    assert study(path).main([*argv, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
