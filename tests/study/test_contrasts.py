"""The study's statistics: sacreBLEU's BLEU from per-sentence statistics, the exact sign-flip test,
and the hierarchical bootstrap's interval (teachers, then seeds, then sentences)."""
import itertools

import numpy as np
import sacrebleu
from hypothesis import given, settings, strategies as st

from selfteach_pipeline.contrasts import Unit, bleu_of_sums, bleu_statistics, contrast, sign_flip_p

REFS = [f"the {w} of the house is {c} and it is on the {p} side" for w, c, p in
        itertools.product(("door", "roof", "window", "floor"), ("red", "old"), ("left", "right", "north"))]


def noisy(rate, seed):
    """Hypotheses with about `rate` of their words replaced."""
    rng = np.random.default_rng(seed)
    return [" ".join(w if rng.random() > rate else "xx" for w in r.split()) for r in REFS]


def test_bleu_from_statistics_is_sacrebleus_corpus_bleu():
    hyps = noisy(0.3, 1)
    stats = bleu_statistics(hyps, REFS)
    assert stats.shape[0] == len(REFS)
    want = sacrebleu.metrics.BLEU(lowercase=True).corpus_score(hyps, [REFS]).score
    assert abs(bleu_of_sums(stats.sum(0))[0] - want) < 1e-9
    # a resample's BLEU is the corpus BLEU of the resampled sentences
    idx = np.random.default_rng(0).choice(len(REFS), len(REFS))
    counts = np.bincount(idx, minlength=len(REFS)).astype(float)
    want = sacrebleu.metrics.BLEU(lowercase=True).corpus_score([hyps[i] for i in idx], [[REFS[i] for i in idx]]).score
    assert abs(bleu_of_sums(counts @ stats)[0] - want) < 1e-9


def test_sign_flip_exact_values():
    assert sign_flip_p([1, 2, 3, 1, 2, 3]) == 2 / 64  # all one way: the smallest p of 6 units
    assert sign_flip_p([1, 1, 1]) == 2 / 8
    assert sign_flip_p([0, 0, 0]) == 1.0
    assert sign_flip_p([1, -1]) == 1.0
    # [5, 1, 1, -1] sums to 6; |sum| ≥ 6 for 5 with at most one of the others against it, either sign: 8 of 16
    assert sign_flip_p([5, 1, 1, -1]) == 8 / 16


@given(st.lists(st.floats(-10, 10, allow_nan=False).filter(lambda x: abs(x) > 1e-6), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None)
def test_sign_flip_properties(deltas):
    p = sign_flip_p(deltas)
    assert 2 / 2 ** len(deltas) - 1e-12 <= p <= 1.0
    assert p == sign_flip_p([-d for d in deltas])  # two-sided: the direction does not change p


def units(teachers, seeds, rate_a, rate_b):
    return [Unit(f"t{t}", s, bleu_statistics(noisy(rate_a, 100 * t + s), REFS),
                 bleu_statistics(noisy(rate_b, 1000 + 100 * t + s), REFS)) for t in teachers for s in seeds]


def test_identical_arms_give_zero_and_p_one():
    same = [Unit("t1", s, u.a, u.a) for s, u in enumerate(units([1], [1, 2, 3], 0.2, 0.2))]
    c = contrast(same, n_samples=200)
    assert c["delta"] == 0 and c["ci_low"] == 0 and c["ci_high"] == 0 and c["p_value"] == 1.0


def test_a_better_arm_has_a_positive_interval_and_the_smallest_p():
    c = contrast(units([1, 2], [1, 2, 3], 0.1, 0.5), n_samples=300)
    assert c["delta"] > 10 and c["ci_low"] > 0 and c["p_value"] == round(2 / 64, 4) and c["units"] == 6
    assert all(u["a"] > u["b"] for u in c["per_unit"])
    reverse = contrast([Unit(u.teacher, u.seed, u.b, u.a) for u in units([1, 2], [1, 2, 3], 0.1, 0.5)], n_samples=300)
    assert reverse["delta"] == -c["delta"] and reverse["ci_high"] < 0


def test_the_interval_widens_with_the_spread_between_teachers():
    """Two teachers whose gains differ (one +, one ≈ 0): resampling teachers widens the interval beyond
    what the same six units give when they are taken as one teacher's seeds."""
    built = units([1], [1, 2, 3], 0.1, 0.5) + units([2], [1, 2, 3], 0.3, 0.3)
    as_two = contrast(built, n_samples=400)
    as_one = contrast([Unit("t", i, u.a, u.b) for i, u in enumerate(built)], n_samples=400)
    assert as_two["delta"] == as_one["delta"]
    assert as_two["ci_high"] - as_two["ci_low"] > as_one["ci_high"] - as_one["ci_low"]
