"""GLUE's metrics in fairseq validation (the metrics themselves are selfteach_pipeline/glue_metrics.py's).

Classification logs the confusion counts of each batch (`glue_cm_T_P`: examples of class T predicted P);
counts can be summed over batches and over workers (the logging outputs stay summable), and accuracy,
F1 and MCC are derived from the summed matrix with the same formulas as scikit-learn
(glue_metrics.metrics_from_cm). Pearson and Spearman need every (prediction, target) pair: regression
batches carry their lists (`glue_pred`, `glue_target`), concatenated over the batches of one validation
run with fairseq's concat-tensor meter and scored with scipy at the end. Lists cannot be summed across
workers: the criterion has fairseq gather them (its logging_outputs_can_be_summed is False in
validation), which fairseq's all_gather_list can only do on CUDA, so on CPU the criterion refuses a
regression task in several processes; evaluate_glue has no such limit.
"""
import math
from typing import List, Optional

import numpy as np

from selfteach_pipeline.glue_metrics import SCORE_NAME, metrics_from_cm, metrics_of, pearson_spearman, score_of

PREFIX = "glue_"  # fairseq log names: glue_accuracy, glue_f1, glue_mcc, glue_pearson, glue_spearman
ROUND = 3


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

    from selfteach_pipeline.results.collapse import one_class

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
