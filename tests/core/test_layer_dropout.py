"""Layer dropout rising with depth (core/layer_dropout.py): LayerSkip's rates, a per-sequence skip in
training only, and the criteria of both families with it (off at evaluation)."""
import math

import pytest
import torch
from hypothesis import given, strategies as st

from fairseq_selfteach.core.layer_dropout import check_layer_dropout, depth_dropout_rates, install_layer_dropout
from selfteach_pipeline.errors import OptionError


@given(p_max=st.floats(min_value=0.0, max_value=0.99), layers=st.integers(min_value=2, max_value=48))
def test_rates_rise_from_zero_at_the_first_layer_to_p_max_at_the_top(p_max, layers):
    rates = depth_dropout_rates(p_max, layers)
    assert len(rates) == layers and rates[0] == 0.0
    assert math.isclose(rates[-1], p_max, rel_tol=1e-12, abs_tol=1e-12)
    assert all(a <= b for a, b in zip(rates, rates[1:]))
    # LayerSkip's D(l) = e^{l·ln 2 / (L-1)} - 1
    assert all(math.isclose(r, p_max * (math.exp(l * math.log(2) / (layers - 1)) - 1), abs_tol=1e-12)
               for l, r in enumerate(rates))


def test_a_single_layer_is_never_skipped():
    assert depth_dropout_rates(0.5, 1) == [0.0]


class AddOne(torch.nn.Module):
    def forward(self, x, other=None):
        return x + 1, "attn", None


@pytest.mark.parametrize("batch_dim", [0, 1])
def test_each_sequence_either_skips_the_layer_or_takes_its_output_in_training_only(batch_dim):
    layers = torch.nn.ModuleList([AddOne(), AddOne()])
    rates = install_layer_dropout(layers, 0.5, top=2, batch_dim=batch_dim)
    assert rates == [0.0, 0.5]
    x = torch.zeros(2000, 3, 3) if batch_dim == 0 else torch.zeros(3, 2000, 3)
    torch.manual_seed(0)
    y, attn, _ = layers[1](x, "enc")
    assert attn == "attn"  # the layer's other outputs pass through
    per_sequence = y.transpose(0, batch_dim).reshape(y.size(batch_dim), -1)
    skipped = per_sequence.eq(0).all(1)
    assert (skipped | per_sequence.eq(1).all(1)).all()  # a whole sequence skips, or none of it
    assert 0.45 < skipped.float().mean() < 0.55
    assert layers[0](x)[0].eq(1).all()  # the first layer never skips
    layers.eval()
    assert layers[1](x)[0].eq(1).all()  # evaluation never skips


@pytest.mark.parametrize("p_max", [-0.1, 1.0])
def test_bad_rate_names_the_option(p_max):
    with pytest.raises(OptionError, match="--layer-dropout-max must be in"):
        check_layer_dropout(p_max)


def test_translation_criterion_skips_layers_in_training_and_never_in_validation(toy_data):
    from tests.translation.test_criterion import setup

    options = ("--criterion", "self_distill", "--student-exits", "all", "--kd-alpha", "0.5")
    _, model, plain, sample = setup(toy_data, *options)
    _, dropping_model, dropping, _ = setup(toy_data, *options, "--layer-dropout-max", "0.9")
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), dropping_model.parameters()))
    model.eval(), dropping_model.eval()
    assert torch.equal(plain(model, sample)[0], dropping(dropping_model, sample)[0])
    model.train(), dropping_model.train()  # (setup's --dropout 0: only layer dropout is random here)
    torch.manual_seed(1)
    trained = dropping(dropping_model, sample)[0]
    torch.manual_seed(1)
    assert torch.equal(trained, dropping(dropping_model, sample)[0])  # reproducible from torch's seed
    torch.manual_seed(1)
    assert not torch.equal(trained, plain(model, sample)[0])
