"""The recorded studies' runs (docs/results/*/run.py), planned without training: their stages and the
options that make them the recorded experiments (a chain's teacher is its previous stage, the budgets,
the distillation pick, the baselines' start), and their own options refused in one line."""
import functools
import importlib.util
import json
import os
import subprocess

import pytest

from selfteach_pipeline import glue_cli, translate_cli
from tests.helpers import REPO, argv_value
from tests.pipelines.test_glue_plan import binarised
from tests.pipelines.test_glue_plan import teacher_finished as glue_teacher_finished
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


# --- sentiment-study's side experiments (the classification pipeline) ------------------------------

SENTIMENT_TRAIN = 2025  # sentiment-study's gold training examples: 64 updates an epoch at batch 32


def sentiment_plan(tmp_path, kind, *argv):
    """A sentiment-study study's pipeline and plan, its data binarised (the marker and a meta.json of the
    study's size: what the budgets are counted from)."""
    binarised(tmp_path, train=SENTIMENT_TRAIN, splits=("valid", "heldout"))
    pipeline = glue_cli.make_pipeline(["sentiment-study", "--out", str(tmp_path), "--cpu", *map(str, argv)], gpus=0,
                                      kind=kind)[2]
    return pipeline, pipeline.build()


def fake_rows(plan, score):
    """A results/ROW.valid.json and its outputs (as evaluate_glue writes them) for every planned row:
    score(row) gives its dev and held-out accuracy (%), the outputs agree with it on 100 examples."""
    for stage in plan.stages:
        if not stage.name.startswith("eval_"):
            continue
        path = argv_value(stage, "--json")
        row = os.path.basename(path)[:-len(".valid.json")]
        dev, heldout = score(row)
        targets = [i % 2 for i in range(100)]
        predictions = [t if i < dev else 1 - t for i, t in enumerate(targets)]
        os.makedirs(os.path.join(os.path.dirname(path), "outputs"), exist_ok=True)
        with open(os.path.join(os.path.dirname(path), "outputs", os.path.basename(path)), "w") as f:
            json.dump({"predictions": predictions, "targets": targets}, f)
        with open(path, "w") as f:
            json.dump({"glue_score": dev, "valid_glue_score": heldout, "outputs": f"outputs/{os.path.basename(path)}",
                       "updates": 0}, f)


def compare(plan):
    """The plan's compare stage run as planned (compare.py over the fake rows): its JSON."""
    stage = plan["compare"]
    p = subprocess.run(stage.argv, capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_the_sentiment_budget_study_chains_each_budgets_stages_from_the_studys_own_teacher(tmp_path):
    run = study("sentiment-study/student-budget")
    pipeline, plan = sentiment_plan(tmp_path, functools.partial(run.StudentBudget, epochs=[2, 4]), "--seeds", "1,2")
    # the study's teacher, by the pipeline's own command
    own = glue_cli.make_pipeline(["sentiment-study", "--out", str(tmp_path), "--cpu", "--seeds", "1,2"], gpus=0)[2]
    assert plan["teacher"].argv == own.build()["teacher"].argv
    pretrained, gold = str(tmp_path / "models" / "pretrained" / "model.pt"), str(tmp_path / "data" / "bin")
    for e, updates, warmup in ((2, 128, 13), (4, 256, 26)):  # E epochs of 2025 examples; warm-up 10 %
        for seed in (1, 2):
            first, second = plan[f"gradual_e{e}_enc4_s{seed}"], plan[f"gradual_e{e}_enc3_s{seed}"]
            truncated = plan[f"truncated_e{e}_enc3_s{seed}"]
            assert argv_value(first, "--teacher-path") == pipeline.checkpoint("teacher") and "teacher" in first.after
            assert argv_value(second, "--teacher-path") == pipeline.checkpoint(first.name)
            assert first.name in second.after
            for stage in (first, second, truncated):
                assert argv_value(stage, "--max-update") == argv_value(stage, "--total-num-update") == str(updates)
                assert argv_value(stage, "--warmup-updates") == str(warmup) and argv_value(stage, "--lr") == "5e-05"
                assert argv_value(stage, "--seed") == str(seed) and stage.argv[1] == gold
            for stage in (first, second):
                assert argv_value(stage, "--task") == "self_distill_glue"
                assert argv_value(stage, "--criterion") == "sentence_prediction_self_distill"
                assert (argv_value(stage, "--kd-alpha"), argv_value(stage, "--kd-temperature")) == ("0.5", "1")
            assert [argv_value(s, "--encoder-layers") for s in (first, second, truncated)] == ["4", "3", "3"]
            # the same-budget baseline: the pretrained first 3 layers, cross-entropy only
            assert argv_value(truncated, "--task") == "glue"
            assert argv_value(truncated, "--finetune-from-model") == pretrained
            assert argv_value(truncated, "--criterion") == "sentence_prediction"
            assert "--teacher-path" not in truncated.argv and "--kd-alpha" not in truncated.argv
    rows = {s.name for s in plan.stages if s.name.startswith("eval_")}
    assert rows == {"eval_teacher_enc6"} | {f"eval_{n}{e}_enc{k}_s{seed}" for seed in (1, 2) for e in (2, 4) for n, k in
                                            [("gradual_e", 4), ("gradual_e", 3), ("truncated_same_budget_e", 3)]}
    assert all("trained" in plan[r].after for r in rows)
    assert set(plan["trained"].after) == {s.name for s in plan.stages if s.argv[0] == "fairseq-train"}
    # heldout (the budget's pick) for the teacher and the students, not the baselines
    assert {r for r in rows if "--valid-subset" in plan[r].argv} == {r for r in rows if "truncated" not in r}
    assert argv_value(plan["report"], "--title") == "sentiment-study: the student budget (gradual 6→4→3)"
    assert plan["compare"].after == ("report",) and plan["compare"].stdout == str(tmp_path / "compare.json")
    assert "compare" in pipeline.redone_each_run
    # compare.py finds every row by the names planned: 4 epochs score best on held-out
    fake_rows(plan, lambda row: (90, 90) if row == "teacher_enc6" else
              (80, 85 if "_e4_" in row else 80) if "gradual" in row else (70, 70))
    result = compare(plan)
    assert [b["epochs_per_stage"] for b in result["budgets"]] == [2, 4] and result["picked_on_heldout"] == 4
    assert [s["seed"] for s in result["budgets"][0]["seeds"]] == [1, 2]


def test_the_sentiment_budget_study_plans_its_data_first_and_takes_epochs_on_its_command_line(tmp_path, capsys):
    run = study("sentiment-study/student-budget")
    assert run.main([str(tmp_path), "--dry-run"]) == 0
    assert "# stage binarize" in capsys.readouterr().out and not (tmp_path / "stages").exists()
    binarised(tmp_path, train=SENTIMENT_TRAIN, splits=("valid", "heldout"))
    assert run.main([str(tmp_path), "--epochs", "6", "--seeds", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# stage gradual_e6_enc3_s1 (after binarize, gradual_e6_enc4_s1)" in out and "gradual_e2" not in out
    assert "--max-update 384" in out.split("# stage truncated_e6_enc3_s1")[1].splitlines()[1]


def test_the_transfer_set_study_labels_the_left_out_snippets_and_distils_the_chain_on_them(tmp_path):
    run = study("sentiment-study/transfer-set")
    pipeline, plan = sentiment_plan(tmp_path, functools.partial(run.TransferSet, transfer=500, updates=200),
                                    "--seeds", "1,2")
    data = tmp_path / "data"
    snippets = plan["snippets"]  # the study's sample (the same options, the same sdist) and the left-out ones
    for option in ("--max-examples", "--dev-every"):
        assert argv_value(snippets, option) == argv_value(plan["raw"], option)
    assert argv_value(snippets, "--sdist") == str(data / "snippets" / "download" / "vaderSentiment-3.3.2.tar.gz")
    assert argv_value(snippets, "--transfer") == "500" and snippets.after == ("raw",)
    for split in ("train", "dev"):
        assert plan[f"snippets_same_{split}"].argv == ("cmp", str(data / "transfer-src" / "SENT" / f"{split}.tsv"),
                                                       str(data / "snippets" / "SENT" / f"{split}.tsv"))
    for name in ("binarize_unlabelled", "binarize_transfer"):  # the study's binarisation, plus the transfer split
        for option in ("--task", "--glue-dir", "--bert-dir", "--max-len", "--heldout-every"):
            assert argv_value(plan[name], option) == argv_value(plan["binarize"], option)
        assert argv_value(plan[name], "--transfer") == str(data / "transfer-src" / "SENT" / "transfer.tsv")
    assert {"snippets_same_train", "snippets_same_dev"} <= set(plan["binarize_unlabelled"].after)
    label = plan["label"]
    unlabelled = str(data / "bin-unlabelled")
    assert argv_value(label, "--data") == argv_value(plan["binarize_unlabelled"], "--out") == unlabelled
    assert argv_value(label, "--path") == pipeline.exported("teacher_enc6") and "export_teacher_enc6" in label.after
    assert argv_value(label, "--subset") == "transfer"
    assert argv_value(plan["binarize_transfer"], "--transfer-labels") == argv_value(label, "--predictions")
    assert argv_value(plan["binarize_transfer"], "--out") == str(data / "bin-transfer")
    assert plan["binarize_transfer"].after == ("label",)
    for seed in (1, 2):
        first, second = plan[f"gradual_enc4_s{seed}"], plan[f"gradual_enc3_s{seed}"]
        truncated = plan[f"truncated_same_budget_enc3_s{seed}"]
        assert first.argv[1] == second.argv[1] == str(data / "bin-transfer") and truncated.argv[1] == str(data / "bin")
        assert "binarize_transfer" in first.after and "teacher" in first.after and first.name in second.after
        assert argv_value(first, "--teacher-path") == pipeline.checkpoint("teacher")
        assert argv_value(second, "--teacher-path") == pipeline.checkpoint(first.name)
        for stage in (first, second, truncated):
            assert argv_value(stage, "--max-update") == argv_value(stage, "--total-num-update") == "200"
            assert argv_value(stage, "--warmup-updates") == "20" and argv_value(stage, "--lr") == "5e-05"
        for stage in (first, second):
            assert argv_value(stage, "--criterion") == "sentence_prediction_self_distill"
            assert (argv_value(stage, "--kd-alpha"), argv_value(stage, "--kd-temperature")) == ("0.5", "1")
        assert argv_value(truncated, "--criterion") == "sentence_prediction" and "--teacher-path" not in truncated.argv
        assert argv_value(truncated, "--finetune-from-model") == str(tmp_path / "models" / "pretrained" / "model.pt")
    rows = {s.name for s in plan.stages if s.name.startswith("eval_")}
    assert rows == {"eval_teacher_enc6"} | {f"eval_{n}_s{seed}" for seed in (1, 2) for n in
                                            ["gradual_enc4", "gradual_enc3", "truncated_same_budget_enc3"]}
    assert all(argv_value(plan[r], "--data") == str(data / "bin") for r in rows)  # scored on the gold dev set


def test_the_transfer_set_study_takes_the_pipelines_sdist_and_refuses_a_prepared_data_bin(tmp_path, capsys):
    run = study("sentiment-study/transfer-set")
    sdist = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    out = tmp_path / "out"
    _, plan = sentiment_plan(out, functools.partial(run.TransferSet, transfer=4000, updates=384), "--sdist", sdist)
    assert argv_value(plan["snippets"], "--sdist") == argv_value(plan["raw"], "--sdist") == str(sdist)
    bin_ = binarised(tmp_path / "prepared", splits=("valid", "heldout"))
    (bin_ / "dict.txt").write_text("")
    assert run.main([str(out), "--data-bin", str(bin_), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "give no --data-bin" in err and err.count("\n") == 1, err


def test_the_head_lr_study_trains_the_studys_online_models_and_their_head_lr_twins(tmp_path):
    run = study("sentiment-study/head-lr")
    pipeline, plan = sentiment_plan(tmp_path, functools.partial(run.HeadLr, scale="10"))
    trainings = [s.name for s in plan.stages if s.argv[0] == "fairseq-train"]
    assert trainings == ["online_s1", "headlr10_s1", "online_s2", "headlr10_s2", "online_s3", "headlr10_s3"]
    for seed in (1, 2, 3):
        plain, scaled = plan[f"online_s{seed}"], plan[f"headlr10_s{seed}"]
        # the recorded command: the teacher's 320 updates on its schedule, 6 layers from the pretrained model
        for option, value in (("--max-update", "320"), ("--lr", "5e-05"), ("--warmup-updates", "38"),
                              ("--total-num-update", "384"), ("--encoder-layers", "6"), ("--task", "glue"),
                              ("--criterion", "sentence_prediction_self_distill"), ("--kd-alpha", "0.5"),
                              ("--kd-temperature", "1"), ("--exit-heads", "all"), ("--student-exits", "3"),
                              ("--seed", str(seed)), ("--weight-decay", "0.01"), ("--batch-size", "32"),
                              ("--pooling", "mean"), ("--valid-subset", "heldout"),
                              ("--finetune-from-model", str(tmp_path / "models" / "pretrained" / "model.pt"))):
            assert argv_value(plain, option) == argv_value(scaled, option) == value, option
        assert plain.argv.count("--optimizer") == 1 and argv_value(plain, "--optimizer") == "adam"
        # the twin: the same command with the last --optimizer (argparse's pick) adam_head_lr at scale 10
        i = len(scaled.argv) - 1 - scaled.argv[::-1].index("--optimizer")
        assert scaled.argv[i:i + 4] == ("--optimizer", "adam_head_lr", "--head-lr-scale", "10")
        assert scaled.argv[:i] + scaled.argv[i + 4:-1] == plain.argv[:-1]  # all but the save dir
        for variant in ("online", "headlr10"):
            export = plan[f"export_{variant}_enc3_s{seed}"]
            assert argv_value(export, "--checkpoint") == pipeline.checkpoint(f"{variant}_s{seed}")
            assert argv_value(export, "--encoder-layers") == "3"
            assert argv_value(plan[f"eval_{variant}_enc3_s{seed}"], "--dataset") == "sentiment"
    compare_stage = plan["compare"]
    assert compare_stage.argv[-2:] == (str(tmp_path), "10") and compare_stage.stdout == str(tmp_path / "head-lr.json")
    assert set(compare_stage.after) == {f"eval_{v}_enc3_s{s}" for v in ("online", "headlr10") for s in (1, 2, 3)}
    assert "compare" in pipeline.redone_each_run
    fake_rows(plan, lambda row: (80 if row.startswith("online") else 82, 80))
    result = compare(plan)
    assert result["head_lr_scale"] == 10.0 and result["plain_mean"] == 80 and result["head_lr_mean"] == 82


def test_the_head_lr_studys_plain_rows_are_the_studys_own_stages(tmp_path):
    """In the study's own run folder its online_sSEED, their exports and rows are reused: the same stage
    names and commands (the study's distillation options were its sweep's pick, α 0.5 and T 1)."""
    run = study("sentiment-study/head-lr")
    _, plan = sentiment_plan(tmp_path, functools.partial(run.HeadLr, scale="10"))
    glue_teacher_finished(tmp_path, updates=320)
    own = glue_cli.make_pipeline(["sentiment-study", "--out", str(tmp_path), "--cpu", "--set", "kd_temperature=1"],
                                 gpus=0)[2].build()
    for name in ("online_s2", "export_online_enc3_s2", "eval_online_enc3_s2"):
        assert [w.replace("1.0", "1") for w in own[name].argv] == list(plan[name].argv), name


@pytest.mark.parametrize("path,argv,message", [
    ("sentiment-study/student-budget", ["--epochs", "x"], "--epochs takes a list of whole numbers"),
    ("sentiment-study/student-budget", ["--epochs", "2,0"], "--epochs takes whole numbers of at least 1"),
    ("sentiment-study/transfer-set", ["--updates", "0"], "argument --updates: takes a whole number of at least 1"),
    ("sentiment-study/transfer-set", ["--transfer", "many"], "argument --transfer: takes a whole number"),
    ("sentiment-study/head-lr", ["--scale", "x"], "argument --scale: takes a positive number"),
    ("sentiment-study/head-lr", ["--scale", "0"], "argument --scale: takes a positive number"),
    ("sentiment-study/head-lr", ["--seeds", "1,2"], "compare.py reads seeds 1, 2 and 3"),
])
def test_a_sentiment_studys_bad_option_is_one_line_and_exit_2(path, argv, message, tmp_path, capsys):
    assert study(path).main([str(tmp_path), *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
