"""What the pipelines calculate from their settings (selfteach_pipeline/settings_table.py, pipeline.py's
device choice), in-process."""
import itertools
import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from selfteach_pipeline.device import choose_device
from selfteach_pipeline.plan import PlanError
from selfteach_pipeline.settings_table import check_depths, read_table, split_budget, sweep_grid, sweep_pick

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def refusal(fn, *args):
    """The one-line PlanError message of fn(*args), or None where it is accepted."""
    try:
        fn(*args)
    except PlanError as e:
        assert "\n" not in str(e), str(e)
        return str(e)
    return None


def test_sweep_grid_points_are_every_combination_in_order():
    assert sweep_grid("kd_alpha=0.5,0.9;kd_temperature=1,2") == [
        ("kd_alpha0.5_kd_temperature1", [("kd_alpha", "0.5"), ("kd_temperature", "1")]),
        ("kd_alpha0.5_kd_temperature2", [("kd_alpha", "0.5"), ("kd_temperature", "2")]),
        ("kd_alpha0.9_kd_temperature1", [("kd_alpha", "0.9"), ("kd_temperature", "1")]),
        ("kd_alpha0.9_kd_temperature2", [("kd_alpha", "0.9"), ("kd_temperature", "2")]),
    ]


def test_sweep_grid_refuses_bad_specs_in_one_line():
    for spec, words in (("kd_beta=1", "is not KEY=V,V"), ("kd_alpha=1.5", "kd_alpha='1.5' is not a valid"),
                        ("kd_temperature=0", "is not a valid"), ("kd_direction=sideways", "is not a valid"), ("student_lr=0", "student_lr='0' is not a valid"),
                        ("student_lr=fast", "is not a valid"),
                        ("kd_alpha=0.5,0.5", "given twice"), ("kd_alpha=0.1;kd_alpha=0.2", "given twice"),
                        ("kd_alpha=" + ",".join(f"0.{i}" for i in range(1, 10)) + ";kd_temperature=1,2",
                         "18 points")):
        message = refusal(sweep_grid, spec)
        assert message.startswith("sweep: ") and words in message, spec


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["kd_alpha", "kd_temperature", "kd_direction"]), min_size=1, max_size=3,
                unique=True), st.data())
def test_sweep_grid_is_the_product_of_its_axes(keys, data):
    values = {"kd_alpha": ["0", "0.25", "0.5", "1"], "kd_temperature": ["0.5", "1", "2", "4"],
              "kd_direction": ["forward", "reverse", "symmetric"]}
    axes = {k: data.draw(st.lists(st.sampled_from(values[k]), min_size=1, max_size=2, unique=True)) for k in keys}
    grid = sweep_grid(";".join(f"{k}={','.join(v)}" for k, v in axes.items()))
    assert len(grid) == math.prod(len(v) for v in axes.values())
    assert len({name for name, _ in grid}) == len(grid)  # stage and file names are unique
    assert {tuple(point) for _, point in grid} == {
        tuple(zip(keys, combo)) for combo in itertools.product(*axes.values())}


def test_sweep_pick_takes_the_best_earlier_on_ties_and_writes_its_tables(tmp_path):
    spec = "kd_alpha=0.5,0.9;kd_temperature=1,2"
    results = []
    for i, value in enumerate([10.0, 12.5, 12.5, 3.0]):
        path = tmp_path / f"p{i}.json"
        path.write_text(json.dumps({"name": f"p{i}", "sacrebleu": value}))
        results.append(str(path))
    md, out = str(tmp_path / "s.md"), str(tmp_path / "s.json")
    assert sweep_pick(spec, "sacrebleu", results, md, out) == \
        ("kd_alpha0.5_kd_temperature2", [("kd_alpha", "0.5"), ("kd_temperature", "2")])
    rows = json.loads((tmp_path / "s.json").read_text())
    assert [r["picked"] for r in rows] == [False, True, False, False]
    assert rows[1]["options"] == {"kd_alpha": "0.5", "kd_temperature": "2"} and rows[1]["value"] == 12.5
    text = (tmp_path / "s.md").read_text()
    assert "| 0.5 | 2 | 12.50 | ✔ |" in text and text.count("✔") == 1
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "p2.json").write_text(json.dumps({"name": "p2"}))  # a result without the metric: named
    assert refusal(sweep_pick, spec, "sacrebleu", results, md, out) == f"{results[2]} is not a results row with sacrebleu"


def test_the_reports_sweep_section_shows_the_baselines_rate_beside_the_students(tmp_path):
    """A sweep over student_lr: the report's section names the students' pick, says the online models
    keep the teacher's rate, and adds the baselines' own sweep (sweep_baselines.json beside sweep.json)."""
    from selfteach_pipeline.report import sweep_section

    spec, results, baselines = "student_lr=2e-5,5e-4", [], []
    for lr, student, baseline in (("2e-5", 50.0, 50.0), ("5e-4", 76.0, 75.0)):
        for rows, value, name in ((results, student, "s"), (baselines, baseline, "b")):
            rows.append(tmp_path / f"{name}{lr}.json")
            rows[-1].write_text(json.dumps({"glue_score": value}))
    sweep_pick(spec, "glue_score", results, tmp_path / "sweep.md", tmp_path / "sweep.json")
    assert "baselines' learning rate" not in sweep_section(str(tmp_path / "sweep.json"))  # none swept: no table
    sweep_pick(spec, "glue_score", baselines, tmp_path / "sweep_baselines.md", tmp_path / "sweep_baselines.json")
    text = sweep_section(str(tmp_path / "sweep.json"))
    assert "(student_lr 5e-4)" in text and "the online models keep the teacher's" in text
    assert "## The baselines' learning rate, chosen on validation" in text and "| 5e-4 | 75.00 | ✔ |" in text


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10_000), st.integers(1, 8))
def test_split_budget_sums_to_the_total_and_is_even(total, stages):
    if total < stages:
        assert "cannot be split" in refusal(split_budget, total, stages)
        return
    parts = split_budget(total, stages)
    assert sum(parts) == total and len(parts) == stages
    assert max(parts) - min(parts) <= 1 and parts == sorted(parts, reverse=True)


@settings(max_examples=30, deadline=None)
@given(visible=st.integers(0, 16), wanted=st.one_of(st.none(), st.integers(1, 20)))
def test_world_size_is_every_visible_gpu_or_what_was_asked_within_them(visible, wanted):
    said = []
    message = refusal(choose_device, said, visible, False, None, wanted)
    if not visible:
        assert (message is None) == (wanted is None) and (wanted is None or message.startswith("--world-size is for"))
    elif wanted is None or wanted <= visible:
        assert message is None and choose_device([], visible, False, None, wanted).world_size == (wanted or visible)
    else:
        assert message.startswith(f"--world-size {wanted}: only {visible} CUDA device")


@pytest.mark.parametrize("option,message", [
    (["--world-size", "2"], "--world-size is for CUDA devices"),
    (["--fp16"], "--fp16 is fairseq's half-precision training on CUDA devices; on CPU the pipelines train in float32"),
])
def test_gpu_options_on_cpu_are_refused_before_any_work(option, message, tmp_path):
    for script, setting in (("iwslt14.sh", "bible-ci"), ("glue.sh", "sentiment-ci")):
        p = subprocess.run(["bash", os.path.join(REPO, "scripts", script), setting, "--out", tmp_path / script,
                            "--cpu", *option], capture_output=True, text=True,
                           env=dict(os.environ, SELFTEACH_PYTHON_ENV="current",
                                    PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]))
        assert p.returncode == 2 and message in p.stderr, (script, p.stderr[-500:])
        assert len(p.stderr.strip().splitlines()) == 1
        assert not list((tmp_path / script).glob("stages/*.done"))  # no stage ran


@pytest.mark.parametrize("option,gpus,fp16,said", [
    (None, 2, True, "training in half precision (--fp16"),
    (True, 1, True, "training in half precision (--fp16"),
    (False, 2, False, "training in float32 (--no-fp16)"),
    (None, 0, False, "training in float32 (CPU)"),
])
def test_the_pipelines_train_in_fp16_where_cuda_is_visible_unless_told_not_to(option, gpus, fp16, said):
    choices = []
    device = choose_device(choices, gpus, False, option, None)
    assert device.fp16 == fp16 and ("--fp16" in device.train_options()) == fp16
    assert any(c.startswith(said) for c in choices), choices


@pytest.mark.parametrize("case,content,message", [
    ("a missing value", b"setting\ta\tb\nlr\t1e-3\t\n", "row lr has an empty cell"),
    ("a row too short", b"setting\ta\tb\nlr\t1e-3\n", "cells, the header has"),
    ("non-UTF-8", b"setting\ta\nlr\t1e-3\nname\tcaf\xe9\n", "is not UTF-8 (byte"),
])
def test_a_broken_settings_table_is_refused_in_one_line(case, content, message, tmp_path):
    table = tmp_path / "settings.tsv"
    table.write_bytes(content)
    assert message in refusal(read_table, str(table)) and str(table) in refusal(read_table, str(table)), case


# a depth spec as people type it: numbers (some out of range), with stray spaces, words or empty parts
_DEPTH = st.one_of(st.integers(-2, 9).map(str), st.sampled_from(["", " 3", "x", "2.5", "0x3"]))


@settings(max_examples=200, deadline=None)
@given(teacher=st.integers(1, 8), schedule=st.lists(_DEPTH, min_size=1, max_size=5),
       students=st.lists(_DEPTH, min_size=1, max_size=3))
def test_depths_accepts_exactly_a_decreasing_schedule_from_the_teacher_and_refuses_the_rest_in_one_line(
        teacher, schedule, students):
    """A schedule and student list as --set types them (comma-separated whole numbers, else refused in
    one line) is accepted exactly when the schedule starts at the teacher's depth and decreases at every
    step, and every student depth and later step lies in 1..teacher-1; otherwise one line says what."""
    from selfteach_pipeline.plan import typed

    def parsed(parts):
        return refusal(typed, "depths", ",".join(parts), (), "--set") or typed("depths", ",".join(parts), (), "--set")

    steps, depths = parsed(schedule), parsed(students)
    if isinstance(steps, str) or isinstance(depths, str):  # not whole numbers: refused by --set, in one line
        return
    valid = (all(d >= 1 for d in steps + depths) and steps[0] == teacher and all(b < a for a, b in zip(steps, steps[1:]))
             and all(k < teacher for k in depths + steps[1:]))
    message = refusal(check_depths, teacher, steps, depths, "layers", "my.tsv")
    assert (message is None) == valid, (teacher, steps, depths, message)
    if message is not None:
        assert ("gradual schedule" in message or "depth" in message) and message.endswith("(my.tsv)")
