"""Contrasts between two arms over units (teacher seed × student seed): a signed difference, a
hierarchical-bootstrap 95 % interval, and an exact sign-flip test across the units.

A unit is one teacher and one student seed; arms are paired within it (the same seed fixes the batch
order). The difference is the mean over units of score(a) − score(b) on the whole test set. The interval
resamples, 1,000 times (seed 12345, sacreBLEU's): the teachers with replacement, then each drawn
teacher's seeds with replacement, then the sentences with replacement (one draw per replicate, shared by
every arm and unit: the test set is the same) — so it carries the variation between teachers, seeds and
sentences. It is the central 95 % of the replicates' differences. The test is exact: every assignment of
signs to the units' differences, two-sided (with 6 units the smallest possible p is 2/64 = 0.031).
Scores are computed from per-sentence sufficient statistics, so a resample's BLEU is exactly
sacreBLEU's corpus BLEU of the resampled sentences (classification: the accuracy of the resampled examples).
"""
import itertools
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import numpy as np

from selfteach_pipeline.scores import N_SAMPLES, SEED, detok_bleu


@dataclass
class Unit:
    teacher: str
    seed: int
    a: np.ndarray  # (sentences, statistics) of arm a
    b: np.ndarray


def bleu_statistics(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """(sentences, statistics): sacreBLEU's sufficient statistics of each sentence (lowercased BLEU)."""
    return np.array(detok_bleu()._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype=np.float64)


def accuracy_statistics(predictions: Sequence, targets: Sequence) -> np.ndarray:
    """(examples, 2): [right, 1] per example, whose sums give the accuracy of any resample."""
    right = np.asarray(predictions) == np.asarray(targets)
    return np.stack([right.astype(np.float64), np.ones(len(right))], axis=1)


def accuracy_of_sums(sums: np.ndarray) -> np.ndarray:
    sums = np.atleast_2d(sums)
    return 100.0 * sums[:, 0] / sums[:, 1]


def bleu_of_sums(sums: np.ndarray) -> np.ndarray:
    """BLEU of each row of summed statistics, by sacreBLEU's own formula."""
    metric = detok_bleu()
    return np.array([metric._compute_score_from_stats([float(v) for v in row]).score for row in np.atleast_2d(sums)])


def sign_flip_p(deltas: Sequence[float]) -> float:
    """Exact two-sided sign-flip p of the units' differences (mean as the statistic)."""
    d = np.asarray(deltas, dtype=np.float64)
    if not len(d) or np.allclose(d, 0):
        return 1.0
    observed = abs(d.mean())
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    return float(np.mean(np.abs((signs * d).mean(axis=1)) >= observed - 1e-9))


def contrast(units: List[Unit], score: Callable[[np.ndarray], np.ndarray] = bleu_of_sums,
             n_samples: int = N_SAMPLES, seed: int = SEED) -> Dict[str, float]:
    """{delta, ci_low, ci_high, p_value, units, per_unit}: arm a minus arm b over the units."""
    if not units:
        raise ValueError("a contrast needs at least one unit")
    n = units[0].a.shape[0]
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.choice(n, n), minlength=n) for _ in range(n_samples)]).astype(np.float64)
    # every unit's score under every sentence resample, for both arms: (units, replicates)
    full_a = np.array([score(u.a.sum(0))[0] for u in units])
    full_b = np.array([score(u.b.sum(0))[0] for u in units])
    rep = np.array([score(counts @ u.a) - score(counts @ u.b) for u in units])
    teachers: Dict[str, List[int]] = {}
    for i, u in enumerate(units):
        teachers.setdefault(u.teacher, []).append(i)
    groups = list(teachers.values())
    deltas = np.empty(n_samples)
    for r in range(n_samples):
        drawn = [groups[g] for g in rng.choice(len(groups), len(groups))]
        idx = np.concatenate([rng.choice(g, len(g)) for g in drawn])
        deltas[r] = rep[idx, r].mean()
    per_unit = full_a - full_b
    low, high = np.percentile(deltas, [2.5, 97.5])
    return {"delta": round(float(per_unit.mean()), 2), "ci_low": round(float(low), 2), "ci_high": round(float(high), 2),
            "p_value": round(sign_flip_p(per_unit), 4), "units": len(units),
            "per_unit": [{"teacher": u.teacher, "seed": u.seed, "a": round(float(x), 2), "b": round(float(y), 2)}
                         for u, x, y in zip(units, full_a, full_b)]}
