"""Layer dropout rising with depth (LayerSkip, Elhoushi et al., 2024), for both families' layer stacks.

In training each sequence skips layer l (0-based, of the L layers up to the teacher exit) with
probability p_l = p_max·(2^{l/(L−1)} − 1): never the first layer, p_max the teacher exit's. A skipped
layer passes its input on unchanged, so the exits above it learn to cope without it, which is what
lets early exits of one model do well (LayerSkip, section 4.1). Evaluation never skips.

It is installed as forward hooks on the layers (install_layer_dropout), so the model, its state dict
and its checkpoints are exactly fairseq's; LayerSkip's schedule over training time, S(t), is left out
(the rate is constant). The skipped layer is still computed and its output discarded: this is
regularisation, not a speed-up.
"""
from typing import List

import torch

from selfteach_pipeline.errors import OptionError


def depth_dropout_rates(p_max: float, layers: int) -> List[float]:
    """p_l for l = 0..layers−1 (a single layer is never skipped: it is the first)."""
    if layers < 2:
        return [0.0] * layers
    return [p_max * (2.0 ** (l / (layers - 1)) - 1.0) for l in range(layers)]


def check_layer_dropout(p_max: float) -> None:
    if not 0.0 <= p_max < 1.0:
        raise OptionError(f"--layer-dropout-max must be in [0, 1); got {p_max}")


def _skip_hook(rate: float, batch_dim: int):
    def hook(module, args, output):
        if not module.training or rate <= 0.0:
            return output
        x_in = args[0]
        x_out = output[0] if isinstance(output, tuple) else output
        shape = [1] * x_in.dim()
        shape[batch_dim] = x_in.size(batch_dim)
        # one draw per sequence, from torch's generator (seeded by fairseq): reproducible
        keep = torch.rand(shape, device=x_in.device) >= rate
        mixed = torch.where(keep, x_out, x_in)
        return (mixed,) + tuple(output[1:]) if isinstance(output, tuple) else mixed

    return hook


def install_layer_dropout(layers, p_max: float, top: int, batch_dim: int) -> List[float]:
    """Hooks on layers[0..top−1] (the layers up to the teacher exit; those above it are left alone)
    that skip them in training as depth_dropout_rates says. Each layer's first input and first output
    are its hidden states; batch_dim is where the sequences are (1 for fairseq's T x B x C decoder
    states, 0 for BERT's B x T x C). Returns the rates, for the log."""
    rates = depth_dropout_rates(p_max, top)
    for layer, rate in zip(list(layers)[:top], rates):
        layer.register_forward_hook(_skip_hook(rate, batch_dim))
    return rates
