"""scripts/glue.sh (selfteach-glue-pipeline) end to end on real material (the cut-down offline demo, setting sentiment-ci): the
real MiniLM's first layers fine-tuned on real movie-review snippets as the teacher; offline, online and
gradual students; both baselines; export; every dev example scored; the table, the plot, a re-run.

Classification self-teaching through the real CLIs is checked here on the pipeline's own outputs: the
offline student starts as the teacher's first k layers, the pruned baseline is exactly them, an exported
online exit scores what the exit scored in training, gradual stages chain, parameter counts are exact."""
import json
import os
import re

import pytest
import torch

from tests.helpers import BIN, REPO, run, valid_metrics
from selfteach_pipeline.pipeline import REDONE_EACH_RUN
from selfteach_pipeline.settings_table import split_budget
from tests.classification.test_glue import vader_sdist  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow
GLUE_SH = os.path.join(REPO, "scripts", "glue.sh")
# the tests already run in the project's environment: the script uses it (its python, fairseq-train)
ENV = {"SELFTEACH_PYTHON_ENV": "current", "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
STARTED = re.compile(r"^pipeline: (\S+) started", re.M)  # the runner's line as a stage starts


# the students of frozen teachers read them from caches (exact for a classifier: every logit is kept)
CI_ARGS = ("--teacher-cache",)


def settings(name):
    with open(os.path.join(REPO, "scripts", "glue_settings.tsv")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if not line.startswith("#")]
    col = rows[0].index(name)
    return {r[0]: r[col] for r in rows[1:]}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, vader_sdist):  # noqa: F811
    out = tmp_path_factory.mktemp("glue_ci") / "run"
    p = run(["bash", GLUE_SH, "sentiment-ci", "--out", out, "--sdist", vader_sdist, "--cpu", *CI_ARGS], env=ENV)
    s = settings("sentiment-ci")
    with open(out / "data" / "bin" / "meta.json") as f:
        meta = json.load(f)
    results = {}  # one row per model and seed: the file stem (NAME or NAME_sSEED)
    for name in os.listdir(out / "results"):
        if name.endswith(".json"):
            with open(out / "results" / name) as f:
                results[name.split(".")[0]] = json.load(f)
    with open(out / "results.json") as f:
        table_rows = {r["name"]: r for r in json.load(f)}
    return {"out": out, "stdout": p.stdout, "settings": s, "meta": meta, "results": results, "rows": table_rows,
            "seeds": [int(x) for x in s["seeds"].split(",")],
            "depths": [int(k) for k in s["student_depths"].split(",")],
            "schedule": [int(k) for k in s["gradual_schedule"].split(",")]}


TRAINED = ("offline", "online", "ce_same_init", "truncated_same_budget", "truncated_equal_compute")


def _log(pipeline, name):
    with open(pipeline["out"] / "logs" / f"{name}.train.log") as f:
        return f.read()


def _state(path):
    return torch.load(path, weights_only=False)


def test_every_model_is_in_the_table_and_scored_every_dev_example(pipeline):
    L, depths, res, seeds = pipeline["schedule"][0], pipeline["depths"], pipeline["results"], pipeline["seeds"]
    expected = {f"teacher_enc{L}"} | {f"pruned_enc{k}" for k in depths}
    expected |= {f"{m}_enc{k}_s{s}" for k in depths for m in TRAINED for s in seeds}
    gradual = ("gradual", "online_gradual") if pipeline["settings"]["online_gradual"] == "yes" else ("gradual",)
    expected |= {f"{m}_enc{k}_s{s}" for k in pipeline["schedule"][1:] for s in seeds for m in gradual}
    assert set(res) == expected
    n_dev = pipeline["meta"]["splits"]["valid"]["examples"]
    assert all(r["scored"] == r["examples"] == n_dev and r["dataset"] == "sentiment" for r in res.values())
    table = (pipeline["out"] / "results.md").read_text()
    for name, r in pipeline["rows"].items():
        assert re.search(rf"\| {name} \| {r['method']} \| {r['depth']} \| {r['params']:,} \| {r['updates']:,} \|",
                         table), name
        values = [res[f"{name}_s{s['seed']}" if s["seed"] is not None and name != f"teacher_enc{L}" else name]
                  ["glue_score"] for s in r["seeds"]]
        assert [s["value"] for s in r["seeds"]] == values
        assert len(values) == (1 if r["method"] in ("teacher", "pruned") else len(seeds))
    png = (pipeline["out"] / "metric_vs_depth.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_budgets_baselines_and_p_values(pipeline):
    """Every row states its budget; the same-budget truncated baseline got exactly the students' updates
    (fairseq's own log says so); each p-value is scipy's exact McNemar test, seed against seed."""
    from scipy.stats import binomtest

    out, rows, res = pipeline["out"], pipeline["rows"], pipeline["results"]
    s = pipeline["settings"]
    n_train = pipeline["meta"]["splits"]["train"]["examples"]
    per_epoch = -(-n_train // int(s["batch_size"]))
    teacher_updates, student_updates = per_epoch * int(s["epochs"]), per_epoch * int(s["student_epochs"])
    assert student_updates < teacher_updates
    for name, r in rows.items():
        expected = {"teacher": teacher_updates, "pruned": 0, "online": teacher_updates,
                    "truncated-equal-compute": teacher_updates + student_updates}.get(r["method"], student_updates)
        if r["method"] == "online-gradual":  # the stages share the teacher's budget; the record adds them up
            stage = pipeline["schedule"].index(r["depth"])
            expected = sum(split_budget(teacher_updates, len(pipeline["schedule"]) - 1)[:stage])
        assert r["updates"] == expected and r["started_from"], name
        assert 0 <= r["ci_low"] <= r["ci_high"] <= 100
    for seed in pipeline["seeds"]:
        for k in pipeline["depths"]:
            for m, updates in (("truncated_same_budget", student_updates), ("offline", student_updates),
                               ("ce_same_init", student_updates),
                               ("truncated_equal_compute", teacher_updates + student_updates)):
                log = _log(pipeline, f"{m}_enc{k}_s{seed}")
                assert int(re.findall(r"num_updates[ =](\d+)", log)[-1]) == updates
    k = pipeline["depths"][0]
    off = rows[f"offline_enc{k}"]
    assert off["baseline"] == f"ce_same_init_enc{k}" and rows[f"online_enc{k}"]["baseline"] == \
        f"truncated_equal_compute_enc{k}" == rows.get(f"online_gradual_enc{k}", rows[f"online_enc{k}"])["baseline"]
    assert off["equal_compute"] == f"truncated_equal_compute_enc{k}" and off["delta_equal_compute"] is not None
    expected = []
    for seed in pipeline["seeds"]:
        with open(out / "results" / res[f"offline_enc{k}_s{seed}"]["outputs"]) as f:
            mine = json.load(f)
        with open(out / "results" / res[f"ce_same_init_enc{k}_s{seed}"]["outputs"]) as f:
            theirs = json.load(f)
        t, a, b = (torch.tensor(mine["targets"]), torch.tensor(mine["predictions"]), torch.tensor(theirs["predictions"]))
        only_a, only_b = int(((a == t) & (b != t)).sum()), int(((a != t) & (b == t)).sum())
        expected.append(1.0 if only_a + only_b == 0 else round(binomtest(only_a, only_a + only_b, 0.5).pvalue, 4))
    assert [x["p_value"] for x in off["seeds"]] == expected and off["p_value"] == max(expected)


def test_a_collapsed_model_is_flagged_in_the_row_and_the_table(pipeline, tmp_path):
    """A model that answers one class for every example (the teacher with its head's weights zeroed and
    its bias set) is flagged by evaluate_glue, and the report marks its row."""
    out = pipeline["out"]
    state = _state(out / "models" / f"teacher_enc{pipeline['schedule'][0]}.pt")
    head = "classification_heads.sentence_classification_head.out_proj"
    state["model"][f"{head}.weight"].zero_()
    state["model"][f"{head}.bias"].copy_(torch.tensor([0.0, 5.0]))
    torch.save(state, tmp_path / "stuck.pt")
    results = tmp_path / "results"
    p = run(["python", "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", out / "data" / "bin", "--path",
             tmp_path / "stuck.pt", "--name", "stuck_enc3", "--method", "offline", "--cpu",
             "--json", results / "stuck_enc3.valid.json"])
    assert "warning: stuck_enc3: collapsed: all" in p.stderr and "predicted class 1" in p.stderr
    row = json.loads((results / "stuck_enc3.valid.json").read_text())
    assert row["collapsed"].startswith("collapsed: all")
    run(["python", "-m", "selfteach_pipeline.report", "--results", results, "--out", tmp_path / "r.md",
         "--plot", tmp_path / "r.png"])
    assert re.search(r"\| stuck_enc3 \| offline \|.*⚠ collapsed \|", (tmp_path / "r.md").read_text())
    assert json.loads((tmp_path / "results.json").read_text())[0]["collapsed"] == [row["collapsed"]]


def test_the_teacher_learns(pipeline):
    r = pipeline["results"][f"teacher_enc{pipeline['schedule'][0]}"]
    counts = pipeline["meta"]["splits"]["valid"]["label_counts"]
    majority = 100.0 * max(counts) / sum(counts)
    assert r["glue_score"] > majority + 5, (r["glue_score"], majority)


def test_parameter_counts_are_exact(pipeline):
    from fairseq_selfteach.cli.evaluate_glue import load

    out, res = pipeline["out"], pipeline["results"]
    for name in (f"teacher_enc{pipeline['schedule'][0]}", f"offline_enc{pipeline['depths'][0]}_s1"):
        model, _task, _head = load(str(out / "models" / f"{name}.pt"), str(out / "data" / "bin"))
        assert res[name]["params"] == sum(p.numel() for p in model.parameters())
        assert res[name]["encoder_layers"] == len(model.encoder.layers)
    # every model of one depth has the same size; one layer more is one BERT layer more
    d, f = 384, 1536  # the MiniLM's width and FFN size
    per_layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * (2 * d)  # q,k,v,o; FFN; 2 LayerNorms
    for k in pipeline["depths"]:
        sizes = {res[f"{m}_enc{k}_s1"]["params"] for m in TRAINED} | {res[f"pruned_enc{k}"]["params"]}
        assert len(sizes) == 1
        assert sizes.pop() == res[f"teacher_enc{pipeline['schedule'][0]}"]["params"] - (pipeline["schedule"][0] - k) * per_layer


def test_pruned_baseline_and_offline_start_are_the_teachers_first_layers(pipeline):
    out, k = pipeline["out"], pipeline["depths"][0]
    teacher = _state(out / "models" / "teacher" / "checkpoint_best.pt")["model"]
    pruned = _state(out / "models" / f"pruned_enc{k}.pt")["model"]
    kept = {key for key in teacher if not re.match(rf"encoder\.layers\.([{k}-9]|\d\d)\.", key)}
    assert set(pruned) == kept and all(torch.equal(pruned[key], teacher[key]) for key in kept)
    log = _log(pipeline, f"offline_enc{k}_s1")
    assert "student initialised from teacher" in log
    assert f"encoder.layers <- teacher {list(range(k))}" in log
    rows = valid_metrics(log)
    assert rows and all("kd_loss" in r and "gold_loss" in r for r in rows)  # each term logged
    student = _state(out / "models" / f"offline_enc{k}_s1" / "checkpoint_best.pt")
    assert not any(key.startswith("teacher") for key in student["model"])
    assert student["task_state"]["teacher_path"] == str(out / "models" / "teacher" / "checkpoint_best.pt")


def test_gradual_stages_chain(pipeline):
    out, schedule = pipeline["out"], pipeline["schedule"]
    for seed in pipeline["seeds"]:
        prev = out / "models" / "teacher" / "checkpoint_best.pt"
        for k in schedule[1:]:
            trained = out / "models" / f"gradual_enc{k}_s{seed}" / "checkpoint_best.pt"
            if not trained.exists():  # the first stage is the offline student of that depth
                assert prev.parent.name == "teacher" and k in pipeline["depths"]
                assert pipeline["results"][f"gradual_enc{k}_s{seed}"]["glue_score"] == \
                    pipeline["results"][f"offline_enc{k}_s{seed}"]["glue_score"]
                prev = out / "models" / f"offline_enc{k}_s{seed}" / "checkpoint_best.pt"
                continue
            assert _state(trained)["task_state"]["teacher_path"] == str(prev)
            assert f"encoder.layers <- teacher {list(range(k))}" in _log(pipeline, f"gradual_enc{k}_s{seed}")
            prev = trained


def test_exported_online_exit_scores_what_it_scored_in_training(pipeline):
    k = pipeline["depths"][0]
    rows = valid_metrics(_log(pipeline, "online_s1"))
    assert rows and all(f"exit{k}_accuracy" in r and f"exit{k}_kd_loss" in r for r in rows)
    # checkpoint_best is the last epoch with the best top-layer glue_score (fairseq keeps ties' latest)
    best = max(r["glue_score"] for r in rows)
    at_best = [r for r in rows if r["glue_score"] == best][-1]
    assert pipeline["results"][f"online_enc{k}_s1"]["glue_score"] == pytest.approx(at_best[f"exit{k}_accuracy"], abs=1e-3)
    # the export is a k-layer glue checkpoint of its own (no exits, no teacher)
    state = torch.load(pipeline["out"] / "models" / f"online_enc{k}_s1.pt", weights_only=True)
    assert state["cfg"]["model"]["encoder_layers"] == k and state["cfg"]["task"]["_name"] == "glue"
    assert state["cfg"]["model"]["pooling"] == pipeline["settings"]["pooling"]


def test_students_read_their_teachers_from_caches(pipeline):
    """--teacher-cache: one cache per frozen teacher, built once, with every logit of every training
    sentence; the offline and gradual students train from theirs, the online models from none."""
    out, seeds = pipeline["out"], pipeline["seeds"]
    L, k_first = pipeline["schedule"][0], pipeline["schedule"][1]
    caches = ["teacher"] + [f"gradual_enc{k_first}_s{s}" for s in seeds]
    assert sorted(os.listdir(out / "caches")) == sorted(caches)
    assert sorted(n for n in STARTED.findall(pipeline["stdout"]) if n.startswith("cache_")) == \
        sorted(f"cache_{c}" for c in caches)
    n_train = pipeline["meta"]["splits"]["train"]["examples"]
    for cache in caches:
        meta = json.loads((out / "caches" / cache / "meta.json").read_text())
        assert meta["kind"] == "logits" and meta["k"] == 2 and meta["samples"] == meta["rows"] == n_train
    for s in seeds:
        uses = {f"offline_enc{pipeline['depths'][0]}_s{s}": "teacher", f"gradual_enc{k_first}_s{s}": "teacher",
                f"gradual_enc{pipeline['schedule'][2]}_s{s}": f"gradual_enc{k_first}_s{s}"}
        for name, cache in uses.items():
            cfg = _state(out / "models" / name / "checkpoint_last.pt")["cfg"]
            assert cfg["task"]["teacher_cache"] == str(out / "caches" / cache), name
        assert not _state(out / "models" / f"online_s{s}" / "checkpoint_last.pt")["cfg"]["task"].get("teacher_cache")


def test_the_depth_pick_says_it_chose_on_dev_where_nothing_is_held_out(pipeline):
    """sentiment-ci holds no split out, so the candidates' validation score is dev's own (the report says
    so); the pick is the shallowest self-taught model at 0.97 × the teacher's, recomputed here."""
    rows, res = pipeline["rows"], pipeline["results"]
    for stem, r in res.items():
        if r["method"] in ("teacher", "offline", "online", "gradual", "online-gradual"):
            assert r["valid_subset"] == "valid" and r["valid_glue_score"] == r["glue_score"], stem
        else:
            assert "valid_glue_score" not in r, stem
    (pick,) = json.loads((pipeline["out"] / "depth_pick.json").read_text())
    teacher = rows[f"teacher_enc{pipeline['schedule'][0]}"]
    assert pick["same_split_as_reported"] and pick["teacher_valid"] == teacher["mean"]
    candidates = [r for r in rows.values() if r["method"] in ("offline", "online", "gradual", "online-gradual")]
    meeting = [r for r in candidates if r["mean"] >= 0.97 * teacher["mean"]]
    expected = min(meeting, key=lambda r: (r["depth"], -r["mean"], r["params"]))["name"] if meeting else teacher["name"]
    assert pick["name"] == expected and pick["met"] == bool(meeting)
    assert "the pick is made on valid, the split the table reports" in (pipeline["out"] / "results.md").read_text()
    assert "the pick is made on the split it reports" in pipeline["stdout"]


def test_rerun_skips_every_stage_and_keeps_the_results(pipeline, vader_sdist):  # noqa: F811
    out = pipeline["out"]
    before = (out / "results.md").read_text()
    p = run(["bash", GLUE_SH, "sentiment-ci", "--out", out, "--sdist", vader_sdist, "--cpu", *CI_ARGS], env=ENV)
    assert set(STARTED.findall(p.stdout)) == set(REDONE_EACH_RUN)  # the joins, made anew on every run
    assert (out / "results.md").read_text() == before


def test_bad_settings_are_refused(tmp_path):
    p = run(["bash", GLUE_SH, "nosuchtask", "--out", tmp_path], env=ENV, check=False)
    assert p.returncode == 2 and "unknown setting nosuchtask" in p.stderr and "sentiment-ci" in p.stderr
    p = run(["bash", GLUE_SH, "RTE", "--out", tmp_path / "rte"], env=ENV, check=False)
    assert p.returncode == 2 and "needs --bert-dir" in p.stderr
    p = run(["bash", GLUE_SH, "sentiment-ci", "--out", tmp_path / "s", "--gradual-schedule", "5,2"],
            env=ENV, check=False)
    assert p.returncode == 2 and "must start at the teacher's 3 layers" in p.stderr
    p = run(["bash", GLUE_SH, "sentiment-ci", "--out", tmp_path / "s", "--gradual-schedule", "3,2,2"],
            env=ENV, check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "must decrease at every step (2 then 2)" in p.stderr
    for option, value, words in (("--seeds", "1,x", "--seeds takes whole numbers, e.g. 1,2,3 (not '1,x')"),
                                 ("--quality-floor", "0", "--quality-floor takes a fraction of the teacher's "
                                  "validation score, 0 < F <= 1, e.g. 0.97 (not '0')"),
                                 ("--heldout-every", "1", "--heldout-every takes a whole number of at least 2")):
        p = run(["bash", GLUE_SH, "sentiment-ci", "--out", tmp_path / "s", option, value], env=ENV, check=False)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and words in p.stderr, (option, p.stderr)
    p = run(["bash", GLUE_SH, "sentiment-ci", "--out", tmp_path / "s", "--student-depths", "2,3"],
            env=ENV, check=False)
    assert p.returncode == 2 and "student depth 3 must be between 1 and 2" in p.stderr
    p = run(["bash", GLUE_SH, "sentiment-ci", "--out", tmp_path / "s", "--heldout-every", "2",
             "--sweep-grid", "kd_beta=1,2"], env=ENV, check=False)
    assert p.returncode == 2 and "kd_beta" in p.stderr and p.stderr.count("\n") == 1
    assert not os.path.exists(tmp_path / "s" / "models" / "pretrained")  # refused before any work
