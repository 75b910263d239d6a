"""The distillation core's math, checked against hand computations."""
import math

import pytest
import torch
import torch.nn.functional as F

from fairseq_selfteach.core.kd import check_kd_options, kd_loss, mix_gold_and_kd


def test_kl_is_zero_when_student_equals_teacher():
    logits = torch.randn(7, 11)
    for direction in ("forward", "reverse", "symmetric"):
        assert kd_loss(logits, logits.clone(), 2.0, direction).abs().item() < 1e-6


def test_forward_kl_matches_definition():
    s, t = torch.randn(5, 9), torch.randn(5, 9)
    p_t = F.softmax(t, -1)
    expected = (p_t * (F.log_softmax(t, -1) - F.log_softmax(s, -1))).sum()
    assert torch.allclose(kd_loss(s, t, 1.0, "forward"), expected, atol=1e-6)
    # torch's own KL agrees: kl_div(input=log q, target=p) = sum p (log p - log q)
    torch_kl = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="sum")
    assert torch.allclose(kd_loss(s, t, 1.0, "forward"), torch_kl, atol=1e-6)


def test_reverse_and_symmetric():
    s, t = torch.randn(4, 6), torch.randn(4, 6)
    fwd, rev = kd_loss(s, t, 1.0, "forward"), kd_loss(s, t, 1.0, "reverse")
    assert torch.allclose(rev, kd_loss(t, s, 1.0, "forward"), atol=1e-6)
    assert not torch.allclose(fwd, rev)
    assert torch.allclose(kd_loss(s, t, 1.0, "symmetric"), (fwd + rev) / 2, atol=1e-6)


def test_temperature_squared_scaling():
    s, t = torch.randn(3, 8), torch.randn(3, 8)
    T = 3.0
    softened = kd_loss(s / T, t / T, 1.0, "forward")  # the KL of the softened distributions
    assert torch.allclose(kd_loss(s, t, T, "forward"), softened * T**2, atol=1e-5)


def test_half_precision_logits_are_computed_in_float32():
    s, t = torch.randn(6, 50), torch.randn(6, 50)
    out = kd_loss(s.half(), t.half(), 1.0, "forward")
    assert out.dtype == torch.float32
    assert torch.allclose(out, kd_loss(s.half().float(), t.half().float(), 1.0), atol=1e-5)


def test_mix():
    gold, kd = torch.tensor(2.0), torch.tensor(10.0)
    assert mix_gold_and_kd(gold, kd, 0.0).item() == 2.0
    assert mix_gold_and_kd(gold, kd, 1.0).item() == 10.0
    assert math.isclose(mix_gold_and_kd(gold, kd, 0.25).item(), 0.75 * 2 + 0.25 * 10)


@pytest.mark.parametrize(
    "alpha,temperature,direction,message",
    [(1.5, 1.0, "forward", "--kd-alpha"), (-0.1, 1.0, "forward", "--kd-alpha"),
     (0.5, 0.0, "forward", "--kd-temperature"), (0.5, -2, "forward", "--kd-temperature"),
     (0.5, 1.0, "sideways", "--kd-direction")],
)
def test_bad_options_name_the_option(alpha, temperature, direction, message):
    with pytest.raises(ValueError, match=message):
        check_kd_options(alpha, temperature, direction)
