"""Is a model collapsed, i.e. stuck at one answer rather than weak? Each check returns a one-line
reason (for the log and the table's flag) or None. A collapsed student is not a data point about
distillation: it never left its starting point (issue: a [CLS]-pooled 3-layer exit at 2e-5 stayed at
the majority class for a whole run), and the tables mark it instead of averaging it in silently."""
import math
from typing import Optional, Sequence

import numpy as np

CHANCE_MARGIN = 0.99  # a mean gold loss above 99 % of ln(classes) has learnt nothing
SAME_OUTPUT_SHARE = 0.5  # half the test set decoded to one sentence


def one_class(cm) -> Optional[str]:
    """Every example predicted the same class (cm: rows = gold class, columns = prediction)."""
    cm = np.asarray(cm)
    n = int(cm.sum())
    predicted = np.flatnonzero(cm.sum(axis=0))
    if n == 0 or len(predicted) != 1 or cm.shape[0] < 2:
        return None
    c = int(predicted[0])
    share = cm[c].sum() / n
    kind = "the majority class" if cm[c].sum() == cm.sum(axis=1).max() else "not even the majority class"
    return f"collapsed: all {n} examples predicted class {c} ({kind}, {100 * share:.1f} % of them)"


def chance_loss(mean_nll_nats: float, num_classes: int) -> Optional[str]:
    """A mean gold cross-entropy at chance level, ln(classes)."""
    chance = math.log(num_classes)
    if num_classes < 2 or not mean_nll_nats >= CHANCE_MARGIN * chance:
        return None
    return f"collapsed: mean gold loss {mean_nll_nats:.4f} nats, chance level ln({num_classes}) = {chance:.4f}"


def constant_prediction(preds: Sequence[float], targets: Sequence[float]) -> Optional[str]:
    """A regression that predicts (almost) the same score for every example."""
    p, t = np.asarray(preds, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    if len(p) < 2 or p.std() > 1e-3 * max(t.std(), 1e-12):
        return None
    return f"collapsed: every prediction is {p.mean():.4g} (spread {p.std():.2g}, targets' {t.std():.2g})"


def same_output(hypotheses: Sequence[str]) -> Optional[str]:
    """Half or more of the test sentences decoded to one and the same hypothesis."""
    if not hypotheses:
        return None
    values, counts = np.unique(np.asarray(hypotheses, dtype=object), return_counts=True)
    top = int(counts.max())
    if top < SAME_OUTPUT_SHARE * len(hypotheses) or len(hypotheses) < 2:
        return None
    text = str(values[counts.argmax()])
    return f"collapsed: {top} of {len(hypotheses)} hypotheses are the same sentence ({text[:40]!r})"


def classification(preds, targets, num_classes: int, mean_nll_nats: Optional[float] = None,
                   regression: bool = False) -> Optional[str]:
    """Every check that applies to a classifier's dev outputs: one class for every example; or a mean
    gold loss at chance level with an accuracy no better than the majority class's share."""
    if regression:
        return constant_prediction(preds, targets)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(targets, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    if one_class(cm):
        return one_class(cm)
    # a loss at chance level alone is an unconfident model; with no better accuracy than always
    # answering the majority class it is one that learnt nothing
    majority = cm.sum(axis=1).max() / max(cm.sum(), 1)
    if mean_nll_nats is not None and np.trace(cm) / max(cm.sum(), 1) <= majority:
        reason = chance_loss(mean_nll_nats, num_classes)
        return f"{reason}, accuracy no better than the majority class" if reason else None
    return None
