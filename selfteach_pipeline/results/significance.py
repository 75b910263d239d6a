"""Confidence intervals and paired significance tests for the results tables.

Translation: sacreBLEU's paired bootstrap resampling (`sacrebleu.significance.PairedTest`, test_type
"bs", 1,000 resamples, sacreBLEU's fixed seed 12345, the detokenised lowercased BLEU of the tables).
Classification: the same bootstrap over dev examples (same resamples, seed and interval rule) and, for
labels, the exact McNemar test (scipy's exact binomial test on the discordant pairs); regression
(STS-B) has no discordant pairs and gets the paired-bootstrap p-value instead.

Intervals follow sacreBLEU's convention (`estimate_ci`): the bootstrap mean ± half the width of the
central 95 % of the resampled scores. With several seeds, each resample of the test set is scored for
every seed and averaged, so the interval is that of the seed mean (with one seed it is exactly
sacreBLEU's). A p-value compares one seed with the same seed of its baseline (or with a baseline that
has no seed: the teacher, a pruned teacher); with several seeds the row reports the largest, so a row
is called better only when every seed is.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from selfteach_pipeline.scores import N_SAMPLES, SEED, bleu_paired_p, detok_bleu, mcnemar_p  # noqa: F401  (defined once)



def resamples(n_items: int, n_samples: int = N_SAMPLES, seed: int = SEED) -> np.ndarray:
    """(n_samples, n_items) indices: the very resamples sacreBLEU's paired bootstrap draws."""
    return np.random.default_rng(seed).choice(n_items, size=(n_samples, n_items), replace=True)


def interval(resampled: Sequence[np.ndarray]) -> Tuple[float, float, float]:
    """(mean, low, high) of the seed mean, from each seed's scores on the same resamples."""
    from sacrebleu.significance import estimate_ci

    mean, half = estimate_ci(np.mean(np.stack([np.asarray(r, dtype=np.float64) for r in resampled]), axis=0))
    return float(mean), float(mean - half), float(mean + half)


# --- translation -------------------------------------------------------------------------------


def bleu_resampled(hypotheses: Sequence[str], references: Sequence[str], idx: np.ndarray) -> np.ndarray:
    """BLEU of each resample (rows of idx) from the sentences' sufficient statistics, as sacreBLEU's
    bootstrap computes it (float32 statistics)."""
    metric = detok_bleu()
    stats = np.array(metric._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype="float32")
    return np.array([metric._compute_score_from_stats(s.sum(0)).score for s in stats[idx]])


# --- classification ----------------------------------------------------------------------------


def score_function(task: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """glue_score of (predictions, targets) for the task, as evaluate_glue computes it."""
    from selfteach_pipeline.glue_metrics import SCORE_NAME, compute_metrics

    return lambda preds, targets: compute_metrics(task, preds, targets)[SCORE_NAME]


def glue_resampled(task: str, preds, targets, idx: np.ndarray) -> np.ndarray:
    """glue_score of each resample (rows of idx)."""
    from selfteach_pipeline.glue_metrics import GLUE_METRICS

    preds, targets = np.asarray(preds), np.asarray(targets)
    if GLUE_METRICS[task] == ["accuracy"]:  # the common case, vectorised
        return 100.0 * (preds[idx] == targets[idx]).mean(axis=1)
    score = score_function(task)
    return np.array([score(preds[i], targets[i]) for i in idx])


def bootstrap_paired_p(system_resampled: np.ndarray, baseline_resampled: np.ndarray, system_score: float,
                       baseline_score: float) -> float:
    """sacreBLEU's paired-bootstrap p-value rule applied to any metric's resampled scores (1.0 where the
    two systems' resampled scores are all equal, as for identical outputs; see bleu_paired_p)."""
    from sacrebleu.significance import _compute_p_value

    if np.array_equal(np.asarray(system_resampled), np.asarray(baseline_resampled)):
        return 1.0
    diffs = np.abs(np.asarray(system_resampled) - np.asarray(baseline_resampled))
    return float(_compute_p_value(diffs - diffs.mean(), abs(system_score - baseline_score)))


def glue_paired_p(task: str, regression: bool, system: Dict, baseline: Dict) -> Tuple[float, str]:
    """(p-value, test name) of one system's dev outputs against a baseline's ({"predictions",
    "targets"} each, the same examples in the same order)."""
    targets = np.asarray(system["targets"])
    if regression:
        idx = resamples(len(targets))
        score = score_function(task)
        return bootstrap_paired_p(glue_resampled(task, system["predictions"], targets, idx),
                                  glue_resampled(task, baseline["predictions"], targets, idx),
                                  score(np.asarray(system["predictions"]), targets),
                                  score(np.asarray(baseline["predictions"]), targets)), "paired bootstrap"
    return mcnemar_p(np.asarray(system["predictions"]) == targets,
                     np.asarray(baseline["predictions"]) == targets), "exact McNemar"


def largest(p_values: List[Optional[float]]) -> Optional[float]:
    known = [p for p in p_values if p is not None]
    return max(known) if known else None
