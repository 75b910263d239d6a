"""Intervals and paired tests equal sacreBLEU's and scipy's on fixed systems; the aggregation over seeds,
the same-budget baseline choice and the collapse checks."""
import json
import math

import numpy as np
import pytest
import sacrebleu
from sacrebleu.significance import PairedTest
from scipy.stats import binomtest
from sklearn.metrics import matthews_corrcoef

from selfteach_pipeline.results import collapse, rows, significance

REFS = [f"the {w} sat on the mat number {i} today ." for i, w in enumerate(
    ["cat", "dog", "bird", "cow", "fish", "horse", "lion", "mouse"] * 8)]


def system(quality, seed):
    """Hypotheses that get a word wrong with probability 1 - quality."""
    rng = np.random.default_rng(seed)
    out = []
    for ref in REFS:
        words = ref.split()
        out.append(" ".join(w if rng.random() < quality else "xyz" for w in words))
    return out


def test_bleu_interval_and_p_value_equal_sacrebleu_paired_bootstrap():
    base, good = system(0.6, 1), system(0.8, 2)
    _, scores = PairedTest([("base", base), ("good", good)], {"BLEU": sacrebleu.metrics.BLEU(lowercase=True)},
                           [REFS], test_type="bs", n_samples=1000)()
    ref_base, ref_good = scores["BLEU"][0], scores["BLEU"][1]
    idx = significance.resamples(len(REFS))
    for hyps, ref in ((base, ref_base), (good, ref_good)):
        mean, low, high = significance.interval([significance.bleu_resampled(hyps, REFS, idx)])
        assert mean == pytest.approx(ref.mean, abs=1e-9)
        assert (high - low) / 2 == pytest.approx(ref.ci, abs=1e-9)
    assert significance.bleu_paired_p(good, base, REFS) == ref_good.p_value
    assert ref_good.p_value < 0.05  # a real difference is found ...
    # ... and none between a system and itself (sacreBLEU's own rule would give its smallest p here)
    assert significance.bleu_paired_p(base, base, REFS) == 1.0
    _, same = PairedTest([("a", base), ("b", base)], {"BLEU": sacrebleu.metrics.BLEU(lowercase=True)},
                         [REFS], test_type="bs", n_samples=1000)()
    assert same["BLEU"][1].p_value == pytest.approx(1 / 1001)


def test_mcnemar_is_scipys_exact_binomial_test():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, 300)
    a = np.where(rng.random(300) < 0.8, targets, 1 - targets)
    b = np.where(rng.random(300) < 0.7, targets, 1 - targets)
    only_a = int(np.sum((a == targets) & (b != targets)))
    only_b = int(np.sum((a != targets) & (b == targets)))
    assert significance.mcnemar_p(a == targets, b == targets) == binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert significance.mcnemar_p(a == targets, a == targets) == 1.0
    p, test = significance.glue_paired_p("SST-2", False, {"predictions": a, "targets": targets},
                                         {"predictions": b, "targets": targets})
    assert test == "exact McNemar" and p == binomtest(only_a, only_a + only_b, 0.5).pvalue


def test_glue_bootstrap_resamples_the_tasks_own_metric():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 2, 120)
    preds = np.where(rng.random(120) < 0.75, targets, 1 - targets)
    idx = significance.resamples(120, n_samples=50)
    mcc = significance.glue_resampled("CoLA", preds, targets, idx)
    assert mcc[7] == pytest.approx(100 * matthews_corrcoef(targets[idx[7]], preds[idx[7]]))
    acc = significance.glue_resampled("SST-2", preds, targets, idx)
    assert acc[3] == pytest.approx(100 * np.mean(preds[idx[3]] == targets[idx[3]]))


def test_collapse_checks():
    assert "class 1 (the majority class, 60.0 %" in collapse.classification([1] * 10, [1] * 6 + [0] * 4, 2)
    assert collapse.classification([1, 0, 1, 0], [1, 0, 0, 0], 2) is None
    assert "chance level" in collapse.classification([1, 0, 0], [0, 1, 0], 2, mean_nll_nats=math.log(2))
    # unconfident but better than the majority class: not collapsed
    assert collapse.classification([1, 0, 0], [1, 0, 0], 2, mean_nll_nats=math.log(2)) is None
    assert "every prediction" in collapse.classification([2.5] * 5, [0, 1, 2, 3, 4], 1, regression=True)
    assert "3 of 4 hypotheses" in collapse.same_output(["a b", "a b", "a b", "c"])
    assert collapse.same_output(["a", "b", "c", "d", "a"]) is None


def _row(tmp, name, method, seed, value, updates, hyps=None, depth=1):
    row = {"name": name, "method": method, "seed": seed, "params": 10, "decoder_layers": depth,
           "sacrebleu": value, "updates": updates, "collapsed": None}
    stem = f"{name}_s{seed}" if seed is not None else name
    if hyps is not None:
        row["outputs"] = rows.write_outputs(str(tmp / f"{stem}.json"), {"hypotheses": hyps, "references": REFS})
    (tmp / f"{stem}.json").write_text(json.dumps(row))


def test_aggregate_pairs_seeds_with_the_same_budget_baseline(tmp_path):
    """Results written before the equal-compute rows (a teacher-budget baseline) are paired as they were."""
    _row(tmp_path, "teacher_dec2", "teacher", 1, 30.0, 100, system(0.9, 0), depth=2)
    for s in (1, 2):
        _row(tmp_path, "offline_dec1", "offline", s, 20.0 + s, 10, system(0.8, 10 + s))
        _row(tmp_path, "online_dec1", "online", s, 15.0, 100, system(0.7, 20 + s))
        _row(tmp_path, "scratch_same_budget_dec1", "scratch-same-budget", s, 5.0, 10, system(0.5, 30 + s))
        _row(tmp_path, "scratch_teacher_budget_dec1", "scratch-teacher-budget", s, 25.0, 100, system(0.7, 40 + s))
    agg = {r["name"]: r for r in rows.aggregate(rows.load(str(tmp_path)))}
    assert agg["offline_dec1"]["baseline"] == "scratch_same_budget_dec1"
    assert agg["online_dec1"]["baseline"] == "scratch_teacher_budget_dec1"  # same updates: the teacher's
    assert agg["scratch_same_budget_dec1"]["baseline"] is None
    off = agg["offline_dec1"]
    assert off["mean"] == 21.5 and off["sd"] == pytest.approx(np.std([21, 22], ddof=1), abs=0.01)
    # each seed against the same seed of its baseline, the row reporting the largest p
    expected = [round(significance.bleu_paired_p(system(0.8, 10 + s), system(0.5, 30 + s), REFS), 4) for s in (1, 2)]
    assert [e["p_value"] for e in off["seeds"]] == expected and off["p_value"] == max(expected)
    assert off["ci_low"] <= off["mean_resampled"] <= off["ci_high"]
    assert agg["teacher_dec2"]["teacher"] is None and off["teacher"] == "teacher_dec2"
    public = rows.public(off)
    for key in ("name", "method", "depth", "params", "updates", "seeds", "metric", "mean", "sd", "ci_low",
                "ci_high", "baseline", "p_value"):
        assert key in public
    json.dumps(public)


def test_the_kl_free_twin_is_the_baseline_and_every_difference_has_its_sign(tmp_path):
    """A run with ce_same_init and equal-compute rows: a student's baseline is the same layers without the KL
    (preferred to fresh layers with the same updates), its second comparison the equal-compute model; an
    online exit (the teacher's updates, no baseline with as many) is compared with equal compute."""
    from selfteach_pipeline.report import cells

    _row(tmp_path, "teacher_dec2", "teacher", 1, 30.0, 100, system(0.9, 0), depth=2)
    for s in (1, 2):
        _row(tmp_path, "offline_dec1", "offline", s, 20.0 + s, 10, system(0.8, 10 + s))
        _row(tmp_path, "online_dec1", "online", s, 15.0, 100, system(0.7, 20 + s))
        _row(tmp_path, "ce_same_init_dec1", "ce-same-init", s, 22.0, 10, system(0.8, 50 + s))
        _row(tmp_path, "scratch_same_budget_dec1", "scratch-same-budget", s, 5.0, 10, system(0.5, 30 + s))
        _row(tmp_path, "scratch_equal_compute_dec1", "scratch-equal-compute", s, 25.0, 110, system(0.7, 40 + s))
    agg = {r["name"]: r for r in rows.aggregate(rows.load(str(tmp_path)))}
    off, online = agg["offline_dec1"], agg["online_dec1"]
    assert off["baseline"] == "ce_same_init_dec1" and off["equal_compute"] == "scratch_equal_compute_dec1"
    assert online["baseline"] == online["equal_compute"] == "scratch_equal_compute_dec1"
    assert agg["ce_same_init_dec1"]["baseline"] is None and agg["ce_same_init_dec1"]["equal_compute"] is None
    assert (off["delta_baseline"], off["delta_equal_compute"], off["delta_teacher"]) == (-0.5, -3.5, -8.5)
    expected = max(round(significance.bleu_paired_p(system(0.8, 10 + s), system(0.7, 40 + s), REFS), 4) for s in (1, 2))
    assert off["p_value_equal_compute"] == expected
    shown = cells(off)["vs_equal_compute"]  # the table's cell: the signed difference, then its p-value
    assert shown.startswith("-3.50, p ") and float(shown.split("p ")[1]) == pytest.approx(expected, abs=0.005)
    assert list(rows.METHOD_ORDER).index("ce-same-init") < list(rows.METHOD_ORDER).index("scratch-same-budget")


def test_seeds_with_different_budgets_are_refused(tmp_path):
    _row(tmp_path, "offline_dec1", "offline", 1, 20.0, 10)
    _row(tmp_path, "offline_dec1", "offline", 2, 20.0, 12)
    with pytest.raises(rows.RowsError, match="different budgets"):
        rows.aggregate(rows.load(str(tmp_path)))
