"""Distillation loss: the one place where KL(teacher || student) is computed.

Every caller (translation exits, classification heads, offline teachers) reduces its problem to
two logit tensors of shape (N, C) holding only the positions that count (pads already removed),
so masking happens once, at selection time, and the KL itself never sees a pad.
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F

KD_DIRECTIONS = ("forward", "reverse", "symmetric")


def check_kd_options(kd_alpha: float, kd_temperature: float, kd_direction: str) -> None:
    """Raise ValueError naming the option for values the loss is not defined for."""
    if not 0.0 <= kd_alpha <= 1.0:
        raise ValueError(f"--kd-alpha must be in [0, 1], got {kd_alpha}")
    if not kd_temperature > 0.0:
        raise ValueError(f"--kd-temperature must be > 0, got {kd_temperature}")
    if kd_direction not in KD_DIRECTIONS:
        raise ValueError(
            f"--kd-direction must be one of {', '.join(KD_DIRECTIONS)}, got {kd_direction!r}"
        )


def log_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """float32 log-softmax at temperature T (no division at T = 1: it is a full N x V pass)."""
    x = logits.float()
    if temperature != 1.0:
        x = x / temperature
    return F.log_softmax(x, dim=-1)


def _kl(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """sum over rows of KL(p || q), both given as log-probabilities."""
    p = p_log.exp()
    if not p_log.requires_grad:
        # p is a constant target: its negative entropy needs no autograd graph
        with torch.no_grad():
            neg_entropy = (p * p_log).sum()
        return neg_entropy - (p * q_log).sum()
    return (p * (p_log - q_log)).sum()


class TopK(NamedTuple):
    """A teacher distribution kept to its k most likely classes (a teacher cache): their indices and
    log-probabilities renormalised over those k (N x k each)."""

    indices: torch.Tensor
    log_probs: torch.Tensor


def top_k_target(indices: torch.Tensor, logits: torch.Tensor, temperature: float) -> TopK:
    """The teacher's k largest logits as a distribution at temperature T, renormalised over those k:
    exactly the full distribution when k is the vocabulary's size."""
    return TopK(indices, log_probs(logits, temperature))


def kd_from_log_probs(
    student_lp: torch.Tensor, teacher_lp, temperature: float, direction: str
) -> torch.Tensor:
    """kd_loss for log-probabilities already softened by the temperature (lets callers reuse the
    log-softmax they computed for the gold term when T = 1). A TopK teacher gives the forward KL over
    its k classes, Σ_top-k p (log p − log q): the student's full distribution q read at those k."""
    if isinstance(teacher_lp, TopK):
        if direction != "forward":
            raise ValueError(f"--kd-direction {direction} needs the teacher's whole distribution; a "
                             f"top-k teacher cache gives only forward")
        return _kl(teacher_lp.log_probs, student_lp.gather(-1, teacher_lp.indices)) * (temperature**2)
    if direction == "forward":
        kl = _kl(teacher_lp, student_lp)
    elif direction == "reverse":
        kl = _kl(student_lp, teacher_lp)
    elif direction == "symmetric":
        kl = 0.5 * (_kl(teacher_lp, student_lp) + _kl(student_lp, teacher_lp))
    else:
        raise ValueError(f"unknown KD direction {direction!r}")
    return kl * (temperature**2)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    direction: str = "forward",
) -> torch.Tensor:
    """Summed (not averaged) distillation loss over the N rows, scaled by T².

    forward:   KL(p_teacher || p_student)  (Hinton et al.; mode-covering)
    reverse:   KL(p_student || p_teacher)  (mode-seeking)
    symmetric: (forward + reverse) / 2

    Both distributions are softened by the temperature T and computed in float32 whatever the
    logits' dtype, because the KL of two nearly equal half-precision softmaxes is mostly rounding.
    The T² factor keeps the gradient magnitude independent of T (Hinton et al., 2015).
    The result is a sum over rows, like fairseq's criteria, so the trainer's division by
    sample_size turns it into a per-token (or per-sentence) mean.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits differ in shape: {tuple(student_logits.shape)} vs "
            f"{tuple(teacher_logits.shape)}"
        )
    return kd_from_log_probs(
        log_probs(student_logits, temperature), log_probs(teacher_logits, temperature),
        temperature, direction,
    )


def regression_kd(student_pred: torch.Tensor, teacher_pred: torch.Tensor) -> torch.Tensor:
    """Distillation for a regression head (STS-B): the teacher's soft output is its predicted score,
    so the term is the summed squared difference to it, in float32 (like the gold MSE of fairseq's
    sentence_prediction). Temperature and direction do not apply to a single score."""
    return F.mse_loss(student_pred.float(), teacher_pred.float(), reduction="sum")


def mix_gold_and_kd(
    gold: torch.Tensor, kd: torch.Tensor, kd_alpha: float
) -> torch.Tensor:
    """(1 − α)·gold + α·kd — the one definition of how the two terms are weighed."""
    return (1.0 - kd_alpha) * gold + kd_alpha * kd
