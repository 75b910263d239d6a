"""GLUE's metrics, as the GLUE benchmark defines them, and their fairseq logging.

Per task (GLUE_METRICS): accuracy (SST-2, QNLI, RTE, WNLI, MNLI matched and mismatched: one fairseq
valid subset each), F1 of class 1 and accuracy (MRPC, QQP), Matthews correlation (CoLA, and AX's
diagnostic), Pearson and Spearman correlation (STS-B). Every figure is in percent (x100), as the
GLUE leaderboard and fairseq's `accuracy` print them. `glue_score` is the task's own number: MCC for
CoLA, F1 for MRPC and QQP, the mean of Pearson and Spearman for STS-B, accuracy otherwise; it is
what `--best-checkpoint-metric` should select on (higher is better).

Two ways to the same numbers:
- `compute_metrics(task, preds, targets)`: from whole arrays with scikit-learn and scipy (the
  reference; used by evaluate_glue);
- `log_glue_metrics(logging_outputs, ...)`: fairseq validation. Classification logs the confusion
  counts of each batch (`glue_cm_T_P`: examples of class T predicted P); counts can be summed over
  batches and over workers (the logging outputs stay summable), and accuracy, F1 and MCC are derived
  from the summed matrix with the same formulas as scikit-learn (accuracy_score, f1_score, and
  matthews_corrcoef's multi-class form). Pearson and Spearman need every (prediction, target) pair:
  regression batches carry their lists (`glue_pred`, `glue_target`), concatenated over the batches
  of one validation run with fairseq's concat-tensor meter and scored with scipy at the end. Lists
  cannot be summed across workers: the criterion has fairseq gather them (its
  logging_outputs_can_be_summed is False in validation), which fairseq's all_gather_list can only do
  on CUDA, so on CPU the criterion refuses a regression task in several processes; evaluate_glue has
  no such limit.
"""
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from fairseq_selfteach.classification.glue_format import TASKS, check_task

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
PREFIX = "glue_"  # fairseq log names: glue_accuracy, glue_f1, glue_mcc, glue_pearson, glue_spearman
ROUND = 3


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


def confusion_counts(preds, targets, num_classes: int) -> List[int]:
    """Row-major num_classes x num_classes counts (row = target, column = prediction) of one batch;
    preds and targets are integer tensors or arrays."""
    import torch

    preds = torch.as_tensor(preds).reshape(-1).long()
    targets = torch.as_tensor(targets).reshape(-1).long().to(preds.device)
    flat = torch.bincount(targets * num_classes + preds, minlength=num_classes * num_classes)
    return flat.tolist()


def cm_key(t: int, p: int) -> str:
    return f"glue_cm_{t}_{p}"


def score_batch(logits, target, num_classes: int, regression: bool) -> dict:
    """Logging-output entries for one validation batch: glue_n, and the confusion counts glue_cm_T_P
    (classification: summable) or the glue_pred / glue_target lists (regression: gathered)."""
    out = {"glue_n": int(target.numel())}
    if regression:
        out["glue_pred"] = logits.detach().float().view(-1).cpu().tolist()
        out["glue_target"] = target.detach().float().view(-1).cpu().tolist()
    else:
        counts = confusion_counts(logits.argmax(dim=-1), target, num_classes)
        for i, count in enumerate(counts):
            out[cm_key(i // num_classes, i % num_classes)] = count
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


# --- fairseq logging -----------------------------------------------------------------------------


def log_glue_metrics(logging_outputs, task: str, num_classes: int, regression: bool) -> None:
    """Called from the task's reduce_metrics: sums this call's counts into fairseq's meters and
    registers the derived metrics (computed from everything summed so far in the validation run)."""
    from fairseq.logging import metrics

    if not logging_outputs or "glue_n" not in logging_outputs[0]:
        return  # training steps carry no predictions
    metrics.log_scalar_sum("glue_n", sum(int(log.get("glue_n", 0)) for log in logging_outputs))
    if regression:
        import torch

        preds = [x for log in logging_outputs for x in log.get("glue_pred", [])]
        targets = [x for log in logging_outputs for x in log.get("glue_target", [])]
        metrics.log_concat_tensor("_glue_pred", torch.tensor(preds, dtype=torch.float64), dim=0)
        metrics.log_concat_tensor("_glue_target", torch.tensor(targets, dtype=torch.float64), dim=0)

        def values(meters):
            if "_glue_pred" not in meters or meters["_glue_pred"].tensor is None:
                return {"pearson": math.nan, "spearman": math.nan, SCORE_NAME: math.nan}
            out = pearson_spearman(meters["_glue_pred"].tensor.numpy(), meters["_glue_target"].tensor.numpy())
            out[SCORE_NAME] = score_of(task, out)
            return out

    else:
        for t in range(num_classes):
            for p in range(num_classes):
                key = cm_key(t, p)
                metrics.log_scalar_sum("_" + key, sum(int(log.get(key, 0)) for log in logging_outputs))

        def values(meters):
            cm = _summed_cm(meters, num_classes)
            if cm.sum() == 0:
                return {name: math.nan for name in metrics_of(task) + [SCORE_NAME]}
            return metrics_from_cm(task, cm)

        metrics.log_derived(COLLAPSED, _collapsed(num_classes), priority=31)
    for name in metrics_of(task) + [SCORE_NAME]:
        log_name = name if name == SCORE_NAME else PREFIX + name
        metrics.log_derived(log_name, _derived(values, name), priority=30)


def _summed_cm(meters, num_classes) -> np.ndarray:
    """The confusion matrix summed so far in this validation run (rows: gold, columns: predicted)."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t in range(num_classes):
        for p in range(num_classes):
            key = "_" + cm_key(t, p)
            cm[t, p] = int(meters[key].sum) if key in meters else 0
    return cm


COLLAPSED = PREFIX + "collapsed"  # 1 when every validation example got the same class


def _collapsed(num_classes):
    """glue_collapsed: 1 and a warning in the log when every example of the validation run was
    predicted one class (a student stuck at the majority class), else 0."""
    import logging

    from fairseq_selfteach.reporting.collapse import one_class

    def fn(meters) -> int:
        reason = one_class(_summed_cm(meters, num_classes))
        if reason:
            logging.getLogger(__name__).warning(f"validation: {reason}")
        return int(reason is not None)

    return fn


def _derived(values, name):
    def fn(meters) -> Optional[float]:
        v = values(meters)[name]
        return v if math.isnan(v) else round(v, ROUND)

    return fn
