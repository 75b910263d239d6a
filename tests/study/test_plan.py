"""The plan as data: stages, overrides and settings files, and the KL study's plan, built in-process
(no run): which stages exist before and after the sweep's pick, and what is refused in one line."""
import json
import os
import shlex
import subprocess
import sys

import pytest

from selfteach_pipeline.kl_cli import main
from selfteach_pipeline.kl_study import StudyPlan, check, defaults, kd_name
from selfteach_pipeline.plan import Plan, PlanError, parse_overrides, read_settings_file


DEFAULTS = defaults("translation")


def test_stage_lines_are_copyable_shell():
    plan = Plan()
    plan.add("a", ["fairseq-train", "data dir", "--adam-betas", "(0.9,0.98)"], threads=2)
    plan.add("b", ["fairseq-generate", "x"], ["a"], stdout="gen out.txt")
    a, b = plan.stages
    assert shlex.split(a.shell()) == ["OMP_NUM_THREADS=2", "fairseq-train", "data dir", "--adam-betas", "(0.9,0.98)"]
    assert shlex.split(b.shell())[-3:] == [">", "gen out.txt", "2>&1"]
    text = plan.dry_run()
    assert "# stage b (after a)" in text and text.index("stage a") < text.index("stage b")


def test_plan_refuses_duplicates_and_unplanned_dependencies():
    plan = Plan()
    plan.add("a", ["true"])
    with pytest.raises(PlanError, match="two stages are named a"):
        plan.add("a", ["true"])
    with pytest.raises(PlanError, match="waits for zzz"):
        plan.add("b", ["true"], ["zzz"])


def test_overrides_are_typed_and_refused_in_one_line(tmp_path):
    got = parse_overrides(["student_depth=2", "student_seeds=4,5", "kd_alpha=0.5", "teacher_lr=1e-3"], DEFAULTS)
    assert got == {"student_depth": 2, "student_seeds": (4, 5), "kd_alpha": "0.5", "teacher_lr": 1e-3}
    for bad, message in [("nope=1", "no such setting"), ("student_depth=two", "expected a whole number"),
                         ("student_seeds=1,x", "comma-separated whole numbers"), ("teacher_lr=-1", "negative"),
                         ("student_depth", "expected KEY=VALUE")]:
        with pytest.raises(PlanError, match=message):
            parse_overrides([bad], DEFAULTS)
    f = tmp_path / "mine.txt"
    f.write_text("# my run\nteacher_updates 1200\nstudent_depth=2  # shallower\n\nbeam x\n")
    with pytest.raises(PlanError, match=r"mine.txt:5: beam=x: expected a whole number"):
        read_settings_file(str(f), DEFAULTS)
    f.write_text("teacher_updates 1200\nstudent_depth=2\n")
    assert read_settings_file(str(f), DEFAULTS) == {"teacher_updates": 1200, "student_depth": 2}


@pytest.mark.parametrize("change, message", [
    ({"student_depth": 4}, "student_depth=4"), ({"gradual_via": 1}, "gradual_via=1"),
    ({"kd_alpha": "0.5"}, "set together"), ({"sweep_alpha": "0,0.5"}, "α=0.0"), ({"student_seeds": ()}, "empty"),
])
def test_study_settings_refused(change, message):
    with pytest.raises(PlanError, match=message):
        check({**DEFAULTS, **change})


def stage_names(plan):
    return set(plan.names())


def fake_row(out, row, sacrebleu, train_seconds=10.0):
    os.makedirs(os.path.join(out, "results"), exist_ok=True)
    with open(os.path.join(out, "results", f"{row}.json"), "w") as f:
        json.dump({"sacrebleu": sacrebleu, "train_seconds": train_seconds}, f)


def write_cost(out, ratio):
    with open(os.path.join(out, "update_cost.json"), "w") as f:
        json.dump({"ratio": ratio}, f)


def test_study_plan_before_and_after_the_sweep(tmp_path):
    out = str(tmp_path / "run")
    study = StudyPlan(out, dict(DEFAULTS), cores=2)
    before = study.build()
    names = stage_names(before)
    points = [(a, t) for a in (0.5, 0.9) for t in (1.0, 2.0)]
    assert {"data_raw", "data_prepare", "train_teacher", "score_teacher", "score_teacher.valid"} <= names
    assert {f"train_{kd_name(a, t, 1)}" for a, t in points} <= names  # the sweep: seed 1 only
    assert {f"train_ce_same_init_s{s}" for s in (1, 2, 3)} <= names  # α = 0, every seed
    assert not any(n.startswith(("train_seqkd", "train_gradual", "train_ce_same_init_long")) for n in names)
    assert {"train_scratch_equal_compute_s3", "train_teacher_longer_s3"} <= names  # no KD options needed
    assert before["train_teacher"].threads == 1 and before["data_prepare"].threads == 2
    # the sweep's scores on valid: α = 0.9, T = 2 wins among α > 0; α = 0 (ce_same_init) is better still
    for (a, t), score in zip(points, (17.0, 17.5, 18.0, 18.5)):
        fake_row(out, f"{kd_name(a, t, 1)}.valid", score, train_seconds=15.0)
    fake_row(out, "ce_same_init_s1.valid", 19.0, train_seconds=10.0)
    after = study.build()
    sweep = json.loads((tmp_path / "run" / "sweep.json").read_text())
    assert sweep["picked"] == {"kd_alpha": 0.9, "kd_temperature": 2.0} and sweep["valid_prefers_alpha_0"]
    assert sweep["metric"] == "valid sacreBLEU" and sweep["ce_same_init_valid_score"] == 19.0
    names = stage_names(after)
    assert "train_ce_same_init_long_s1" not in names and "update_cost" in names  # waits for its measurement
    cost = after["update_cost"].argv
    kd_part, ce_part = cost[cost.index("--") + 1:cost.index("::")], cost[cost.index("::") + 1:]
    assert kd_part[kd_part.index("--kd-alpha") + 1] == "0.9" and "--kd-alpha" not in ce_part
    assert ce_part[ce_part.index("--criterion") + 1] == "label_smoothed_cross_entropy"
    write_cost(out, 1.5)
    after = study.build()
    names = stage_names(after)
    for s in (1, 2, 3):
        for arm in (kd_name(0.9, 2.0, s), f"ce_same_init_s{s}", f"ce_same_init_long_s{s}", f"seqkd_s{s}",
                    f"gradual_via2_s{s}", f"gradual_s{s}", f"teacher_longer_s{s}", f"scratch_equal_compute_s{s}"):
            assert f"train_{arm}" in names, arm
    assert f"train_{kd_name(0.5, 1.0, 2)}" not in names  # other grid points only for the sweep's seed
    argv = after["train_ce_same_init_long_s2"].argv
    assert argv[argv.index("--max-update") + 1] == "600"  # 400 × 1.5
    assert any("600 updates = 400 × 1.5" in c for c in after.choices)
    assert argv[argv.index("--criterion") + 1] == "label_smoothed_cross_entropy" and "--teacher-path" in argv
    scratch = after["train_scratch_equal_compute_s3"].argv
    assert scratch[scratch.index("--max-update") + 1] == "2800" and "--teacher-path" not in scratch
    gradual = after["train_gradual_s1"].argv
    assert gradual[gradual.index("--teacher-path") + 1].endswith("models/gradual_via2_s1/checkpoint_best.pt")
    assert after["train_gradual_s1"].after == ("train_gradual_via2_s1",)
    decode = after["decode_seqkd_s1_test"]
    assert "--user-dir" not in decode.argv and decode.stdout.endswith("generate/seqkd_s1.test.txt")
    assert any("sweep picked α = 0.9, T = 2.0" in c for c in after.choices)


def test_given_kd_options_skip_the_sweep(tmp_path):
    settings = {**DEFAULTS, "kd_alpha": "0.5", "kd_temperature": "1", "ce_long_updates": 520}
    plan = StudyPlan(str(tmp_path), settings, data=str(tmp_path / "prep"), cores=2).build()
    names = stage_names(plan)
    assert "data_raw" not in names and "train_kd_a0.5_t1_s3" in names and "train_kd_a0.9_t1_s1" not in names
    argv = plan["train_ce_same_init_long_s1"].argv
    assert argv[argv.index("--max-update") + 1] == "520"


def test_planning_imports_neither_torch_nor_fairseq_and_takes_milliseconds(tmp_path):
    code = ("import sys, time; t = time.time()\n"
            "from selfteach_pipeline.kl_study import StudyPlan, defaults\n"
            f"p = StudyPlan({str(tmp_path)!r}, defaults('translation')).build()\n"
            "print(time.time() - t, len(p.stages), any(m.split('.')[0] in ('torch', 'fairseq') for m in sys.modules))")
    seconds, stages, heavy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                            check=True).stdout.split()
    assert heavy == "False" and int(stages) > 20 and float(seconds) < 1.0


def test_cli_refusals_are_one_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--set", "student_depht=1", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "student_depht: no such setting" in err and "Traceback" not in err
    assert main(["--out", str(tmp_path), "--dry-run", "--set", "student_seeds=1"]) == 0
    out = capsys.readouterr().out
    assert "# translation: teacher 4 decoder layers, 2400 updates" in out and "fairseq-train" in out
    assert not os.path.exists(tmp_path / "stages")  # a dry run runs nothing
    assert main(["--report", str(tmp_path), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "settings.json: missing" in err and "Traceback" not in err


def test_classification_arms_are_the_same_arms_with_the_familys_commands(tmp_path):
    """--family classification: the same arms from the same code, with BERT's options: students are the
    teacher's first k encoder layers (self_distill_glue), the equal-compute baseline is the pretrained
    model's first k layers fine-tuned, every model is scored by selfteach-evaluate-glue on dev and heldout."""
    out = str(tmp_path / "run")
    settings = {**defaults("classification"), "bert_dir": "/bert"}
    study = StudyPlan(out, settings, cores=2, family="classification")
    plan = study.build()
    names = stage_names(plan)
    assert {"convert", "data_raw", "data_binarize", "train_teacher", "score_teacher", "score_teacher.valid"} <= names
    assert "--max-examples" not in plan["data_raw"].argv  # max_examples 0: every snippet the corpus holds
    small = StudyPlan(str(tmp_path / "small"), {**settings, "max_examples": 600}, cores=2, family="classification")
    raw = small.build()["data_raw"].argv
    assert raw[raw.index("--max-examples") + 1] == "600"
    teacher = plan["train_teacher"].argv
    assert teacher[teacher.index("--task") + 1] == "glue" and teacher[teacher.index("--encoder-layers") + 1] == "6"
    assert teacher[teacher.index("--finetune-from-model") + 1].endswith("models/pretrained/model.pt")
    assert teacher[teacher.index("--valid-subset") + 1] == "heldout"
    truncated = plan["train_truncated_equal_compute_s2"].argv
    assert truncated[truncated.index("--max-update") + 1] == "900" and "--finetune-from-model" in truncated
    assert truncated[truncated.index("--encoder-layers") + 1] == "3"
    ce = plan["train_ce_same_init_s1"].argv
    assert ce[ce.index("--task") + 1] == "self_distill_glue" and ce[ce.index("--criterion") + 1] == "sentence_prediction"
    kd = plan["train_kd_a0.5_t2_s1"].argv
    assert kd[kd.index("--criterion") + 1] == "sentence_prediction_self_distill"
    score = plan["score_ce_same_init_s1.valid"].argv
    assert score[0] == "selfteach-evaluate-glue" and score[score.index("--subset") + 1] == "heldout"
    assert plan["score_teacher"].argv[plan["score_teacher"].argv.index("--subset") + 1] == "valid"  # dev
    for (a, t), score in zip([(a, t) for a in (0.5, 0.9) for t in (1.0, 2.0)], (80.0, 81.0, 82.0, 79.0)):
        os.makedirs(os.path.join(out, "results"), exist_ok=True)
        json.dump({"glue_score": score, "train_seconds": 12.0}, open(os.path.join(out, "results", f"{kd_name(a, t, 1)}.valid.json"), "w"))
    json.dump({"glue_score": 78.0, "train_seconds": 8.0}, open(os.path.join(out, "results", "ce_same_init_s1.valid.json"), "w"))
    write_cost(out, 1.5)
    after = study.build()
    names = stage_names(after)
    assert "train_kd_a0.9_t1_s3" in names and "train_gradual_via4_s3" in names and "train_ce_same_init_long_s2" in names
    assert not any("seqkd" in n for n in names)  # sequence-level KD is translation's
    long = after["train_ce_same_init_long_s1"].argv
    assert long[long.index("--max-update") + 1] == "450"  # 300 × 1.5
    assert json.load(open(os.path.join(out, "sweep.json")))["metric"] == "valid accuracy"


def test_an_unknown_family_or_a_setting_of_the_other_family_is_refused(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--family", "classification", "--set", "beam=4", "--dry-run"]) == 2
    assert "beam: no such setting" in capsys.readouterr().err
    with pytest.raises(PlanError, match="--family speech"):
        defaults("speech")
