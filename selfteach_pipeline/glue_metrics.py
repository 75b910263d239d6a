"""GLUE's metrics, as the GLUE benchmark defines them: which figures each task reports, and how they are
computed from a summed confusion matrix or from whole arrays (scikit-learn, scipy).

Per task (GLUE_METRICS): accuracy (SST-2, QNLI, RTE, WNLI, MNLI matched and mismatched: one fairseq
valid subset each), F1 of class 1 and accuracy (MRPC, QQP), Matthews correlation (CoLA, and AX's
diagnostic), Pearson and Spearman correlation (STS-B). Every figure is in percent (x100), as the
GLUE leaderboard and fairseq's `accuracy` print them. `glue_score` is the task's own number: MCC for
CoLA, F1 for MRPC and QQP, the mean of Pearson and Spearman for STS-B, accuracy otherwise; it is
what `--best-checkpoint-metric` should select on (higher is better).

Two ways to the same numbers: `compute_metrics(task, preds, targets)` from whole arrays (the reference;
evaluate_glue and the report's tests use it) and `metrics_from_cm(task, cm)` from the confusion counts
that fairseq validation sums over batches and workers (fairseq_selfteach/classification/metrics.py logs
them). Imports neither torch nor fairseq: the report and the preprocessors use it.
"""
import math
from typing import Dict, List, Sequence

import numpy as np

from selfteach_pipeline.glue_format import TASKS, check_task

# the task's reported metrics (first = glue_score, except STS-B's pearson_spearman mean): accuracy
# unless listed here
_NOT_ACCURACY = {
    "CoLA": ["mcc", "accuracy"],
    "MRPC": ["f1", "accuracy"],
    "QQP": ["f1", "accuracy"],
    "STS-B": ["pearson", "spearman"],
    "AX": ["mcc", "accuracy"],
}
GLUE_METRICS = {task: _NOT_ACCURACY.get(task, ["accuracy"]) for task in TASKS}
SCORE_NAME = "glue_score"


def metrics_of(task: str) -> List[str]:
    return GLUE_METRICS[check_task(task)]


def score_of(task: str, values: Dict[str, float]) -> float:
    """The task's own number (glue_score) from its metrics."""
    if task == "STS-B":
        return (values["pearson"] + values["spearman"]) / 2
    return values[metrics_of(task)[0]]


def score_label(task: str) -> str:
    """What glue_score is for the task, in words (for tables and plots)."""
    if task == "STS-B":
        return "(Pearson+Spearman)/2"
    return {"mcc": "MCC", "f1": "F1", "accuracy": "accuracy"}[metrics_of(task)[0]]


# --- from a confusion matrix (summable counts) --------------------------------------------------


def accuracy_from_cm(cm: np.ndarray) -> float:
    n = cm.sum()
    return float(np.trace(cm) / n) if n else math.nan


def f1_from_cm(cm: np.ndarray, positive: int = 1) -> float:
    """sklearn.metrics.f1_score(y_true, y_pred) for the binary case (pos_label=1); 0 when there are
    no positives at all, as sklearn's zero_division default."""
    tp = cm[positive, positive]
    fp = cm[:, positive].sum() - tp
    fn = cm[positive, :].sum() - tp
    denom = 2 * tp + fp + fn
    return float(2 * tp / denom) if denom else 0.0


def mcc_from_cm(cm: np.ndarray) -> float:
    """sklearn.metrics.matthews_corrcoef (its multi-class formula, which is the binary one for 2
    classes); 0 when a marginal is constant, as sklearn."""
    cm = cm.astype(np.float64)
    t_sum = cm.sum(axis=1)
    p_sum = cm.sum(axis=0)
    n_correct = np.trace(cm)
    n = cm.sum()
    cov_ytyp = n_correct * n - np.dot(t_sum, p_sum)
    cov_ypyp = n * n - np.dot(p_sum, p_sum)
    cov_ytyt = n * n - np.dot(t_sum, t_sum)
    if cov_ypyp * cov_ytyt == 0:
        return 0.0
    return float(cov_ytyp / np.sqrt(cov_ytyt * cov_ypyp))


def metrics_from_cm(task: str, cm: np.ndarray) -> Dict[str, float]:
    """{metric: percent} and glue_score for a classification task's summed confusion matrix."""
    fns = {"accuracy": accuracy_from_cm, "f1": f1_from_cm, "mcc": mcc_from_cm}
    out = {name: 100.0 * fns[name](cm) for name in metrics_of(task)}
    out[SCORE_NAME] = score_of(task, out)
    return out


# --- from whole arrays: scikit-learn and scipy ---------------------------------------------------


def pearson_spearman(preds: Sequence[float], targets: Sequence[float]) -> Dict[str, float]:
    """scipy's Pearson and Spearman correlations, in percent; nan with fewer than two examples or
    a constant side (where they are undefined)."""
    from scipy.stats import pearsonr, spearmanr

    x = np.asarray(preds, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return {"pearson": math.nan, "spearman": math.nan}
    return {"pearson": 100.0 * float(pearsonr(x, y)[0]), "spearman": 100.0 * float(spearmanr(x, y)[0])}


def compute_metrics(task: str, preds, targets) -> Dict[str, float]:
    """The task's metrics (percent) and glue_score from whole arrays, with scikit-learn/scipy."""
    names = metrics_of(task)
    if task == "STS-B":
        out = pearson_spearman(preds, targets)
    else:
        from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

        y_true = np.asarray(targets, dtype=np.int64)
        y_pred = np.asarray(preds, dtype=np.int64)
        fns = {
            "accuracy": lambda: accuracy_score(y_true, y_pred),
            "f1": lambda: f1_score(y_true, y_pred, zero_division=0.0),
            "mcc": lambda: matthews_corrcoef(y_true, y_pred),
        }
        out = {name: 100.0 * float(fns[name]()) for name in names}
    out[SCORE_NAME] = score_of(task, out)
    return out
