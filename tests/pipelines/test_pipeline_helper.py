"""scripts/pipeline_helper.py's sweep and budget subcommands, as the pipelines call them (a subprocess, its stdout)."""
import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELPER = os.path.join(REPO, "scripts", "pipeline_helper.py")
# the script loaded as a module from its file (scripts/ is not a package)
_spec = importlib.util.spec_from_file_location("pipeline_helper", HELPER)
pipeline_helper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pipeline_helper)


def helper(*args):
    return subprocess.run([sys.executable, HELPER, "--prog", "test.sh", *map(str, args)],
                          capture_output=True, text=True)


def test_sweep_grid_lines_are_every_point_in_order():
    p = helper("sweep-grid", "kd_alpha=0.5,0.9;kd_temperature=1,2")
    assert p.returncode == 0
    assert [line.split("\t") for line in p.stdout.splitlines()] == [
        ["kd_alpha0.5_kd_temperature1", "--kd-alpha", "0.5", "--kd-temperature", "1"],
        ["kd_alpha0.5_kd_temperature2", "--kd-alpha", "0.5", "--kd-temperature", "2"],
        ["kd_alpha0.9_kd_temperature1", "--kd-alpha", "0.9", "--kd-temperature", "1"],
        ["kd_alpha0.9_kd_temperature2", "--kd-alpha", "0.9", "--kd-temperature", "2"],
    ]


def test_sweep_grid_refuses_bad_specs_in_one_line():
    for spec, words in (("kd_beta=1", "is not KEY=V,V"), ("kd_alpha=1.5", "kd_alpha='1.5' is not a valid"),
                        ("kd_temperature=0", "is not a valid"), ("kd_direction=sideways", "is not a valid"),
                        ("kd_alpha=0.5,0.5", "given twice"), ("kd_alpha=0.1;kd_alpha=0.2", "given twice"),
                        ("kd_alpha=" + ",".join(f"0.{i}" for i in range(1, 10)) + ";kd_temperature=1,2",
                         "18 points")):
        p = helper("sweep-grid", spec)
        assert p.returncode == 2 and p.stderr.startswith("test.sh: sweep: ") and words in p.stderr, spec
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["kd_alpha", "kd_temperature", "kd_direction"]), min_size=1, max_size=3,
                unique=True), st.data())
def test_sweep_grid_is_the_product_of_its_axes(keys, data):
    values = {"kd_alpha": ["0", "0.25", "0.5", "1"], "kd_temperature": ["0.5", "1", "2", "4"],
              "kd_direction": ["forward", "reverse", "symmetric"]}
    axes = {k: data.draw(st.lists(st.sampled_from(values[k]), min_size=1, max_size=2, unique=True)) for k in keys}
    grid = pipeline_helper.sweep_grid(";".join(f"{k}={','.join(v)}" for k, v in axes.items()))
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
        results.append(path)
    p = helper("sweep-pick", "--metric", "sacrebleu", "--grid", spec, "--md", tmp_path / "s.md",
               "--json", tmp_path / "s.json", *results)
    assert p.returncode == 0 and p.stdout == "kd_alpha0.5_kd_temperature2\t--kd-alpha\t0.5\t--kd-temperature\t2\n"
    rows = json.loads((tmp_path / "s.json").read_text())
    assert [r["picked"] for r in rows] == [False, True, False, False]
    assert rows[1]["options"] == {"kd_alpha": "0.5", "kd_temperature": "2"} and rows[1]["value"] == 12.5
    md = (tmp_path / "s.md").read_text()
    assert "| 0.5 | 2 | 12.50 | ✔ |" in md and md.count("✔") == 1
    assert not list(tmp_path.glob("*.tmp"))
    # one result missing, or one without the metric: a one-line refusal naming the file
    p = helper("sweep-pick", "--metric", "sacrebleu", "--grid", spec, "--md", tmp_path / "s.md",
               "--json", tmp_path / "s.json", *results[:3])
    assert p.returncode == 2 and "3 results for the 4 points" in p.stderr
    results[2].write_text(json.dumps({"name": "p2"}))
    p = helper("sweep-pick", "--metric", "sacrebleu", "--grid", spec, "--md", tmp_path / "s.md",
               "--json", tmp_path / "s.json", *results)
    assert p.returncode == 2 and f"{results[2]} is not a results row with sacrebleu" in p.stderr


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10_000), st.integers(1, 8))
def test_split_budget_sums_to_the_total_and_is_even(total, stages):
    if total < stages:
        p = helper("split-budget", total, stages)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and "cannot be split" in p.stderr
        return
    parts = pipeline_helper.split_budget(total, stages)
    assert sum(parts) == total and len(parts) == stages
    assert max(parts) - min(parts) <= 1 and parts == sorted(parts, reverse=True)


def test_split_budget_prints_one_stage_per_line():
    p = helper("split-budget", 100, 3)
    assert p.returncode == 0 and p.stdout == "34\n33\n33\n"
    p = helper("split-budget", "ten", 2)
    assert p.returncode == 2 and "TOTAL must be a whole number" in p.stderr


@settings(max_examples=30, deadline=None)
@given(visible=st.integers(0, 16), wanted=st.one_of(st.none(), st.integers(-1, 20)))
def test_world_size_is_every_visible_gpu_or_what_was_asked_within_them(visible, wanted):
    p = helper("world-size", visible, *([] if wanted is None else [wanted]))
    if wanted is None:
        assert p.returncode == 0 and p.stdout == f"{visible}\n"
    elif 1 <= wanted <= visible:
        assert p.returncode == 0 and p.stdout == f"{wanted}\n"
    else:
        assert p.returncode == 2 and p.stdout == "" and len(p.stderr.splitlines()) == 1
        assert p.stderr.startswith("test.sh: --world-size")


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


@pytest.mark.parametrize("case,content,message", [
    ("a missing value", b"setting\ta\tb\nlr\t1e-3\t\n", "row lr has an empty cell"),
    ("a row too short", b"setting\ta\tb\nlr\t1e-3\n", "cells, the header has"),
    ("non-UTF-8", b"setting\ta\nlr\t1e-3\nname\tcaf\xe9\n", "is not UTF-8 (line 3, byte"),
])
def test_a_broken_settings_table_is_refused_in_one_line(case, content, message, tmp_path):
    table = tmp_path / "settings.tsv"
    table.write_bytes(content)
    p = helper("settings", table, "a")
    assert p.returncode == 2, case
    assert message in p.stderr and str(table) in p.stderr, (case, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, case


# a depth spec as people type it: numbers (some out of range), with stray spaces, words or empty parts
_DEPTH = st.one_of(st.integers(-2, 9).map(str), st.sampled_from(["", " 3", "x", "2.5", "0x3"]))


@settings(max_examples=200, deadline=None)
@given(teacher=st.integers(1, 8), schedule=st.lists(_DEPTH, min_size=1, max_size=5),
       students=st.lists(_DEPTH, min_size=1, max_size=3))
def test_depths_accepts_exactly_a_decreasing_schedule_from_the_teacher_and_refuses_the_rest_in_one_line(
        teacher, schedule, students):
    """Every generated schedule and student list is accepted exactly when every part is a whole number,
    the schedule starts at the teacher's depth and decreases at every step, and every student depth and
    later step lies in 1..teacher-1; otherwise one line names what is wrong (never another exception)."""
    spec, wanted = ",".join(schedule), ",".join(students)

    def whole(parts):
        try:
            return [int(p) for p in parts]
        except ValueError:
            return None

    steps, depths = whole(schedule), whole(students)
    valid = (steps is not None and depths is not None and all(d >= 1 for d in steps + depths)
             and steps[0] == teacher and all(b < a for a, b in zip(steps, steps[1:]))
             and all(k < teacher for k in depths + steps[1:]))
    try:
        pipeline_helper.check_depths(str(teacher), spec, wanted)
        refused = None
    except pipeline_helper.Refused as e:
        refused = str(e)
    assert (refused is None) == valid, (teacher, spec, wanted, refused)
    if refused is not None:
        assert "\n" not in refused and ("gradual schedule" in refused or "depth" in refused)


def test_depths_through_the_cli_names_the_step_that_does_not_decrease():
    p = helper("depths", "--teacher", 6, "--schedule", "6,4,4", "--students", 3, "--where", "my.tsv")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == ("test.sh: gradual schedule 6,4,4 must decrease at every step (4 then 4): each stage's "
                        "student is shallower than its teacher (my.tsv)\n")
    assert helper("depths", "--teacher", 6, "--schedule", "6,4,3", "--students", "3,2").returncode == 0


@pytest.mark.parametrize("option,gpus,precision,said", [
    ([], 2, "--fp16", "training in half precision (--fp16"),
    (["--fp16"], 1, "--fp16", "training in half precision (--fp16"),
    (["--no-fp16"], 2, "", "training in float32 (--no-fp16)"),
    ([], 0, "", "training in float32 (CPU)"),
])
def test_the_pipelines_train_in_fp16_where_cuda_is_visible_unless_told_not_to(option, gpus, precision, said):
    """detect_device (scripts/pipeline_lib.sh) with the CUDA device count faked: every training's
    precision array, and the choice said on stdout."""
    script = (f'set -euo pipefail; root={REPO} script=t.sh; source {REPO}/scripts/pipeline_lib.sh; '
              f'helper() {{ case $1 in cuda-count) echo {gpus};; world-size) echo "${{3:-$2}}";; esac; }}; '
              f'parse_options SETTING {" ".join(option)}; detect_device; echo "precision=${{precision[*]}}"')
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == f"precision={precision}" and f"t.sh: {said}" in p.stdout
