"""Decoder exits: the output distribution a shallower copy of the decoder would give.

Exit k reads the hidden state after decoder layer k and sends it through exactly what follows the last
layer in the full model: the final layer norm when the architecture has one (pre-norm), the
output-dimension projection when there is one, and the shared output projection. So exit k computes
what a decoder made of the first k layers computes, and exporting it (keeping layers 0..k-1)
reproduces it exactly.
"""
from typing import List

import torch

from fairseq_selfteach.core.errors import OptionError


def check_decoder_output(decoder, option: str = "--student-exits") -> None:
    """What follows the last decoder layer must be something an exit can reuse."""
    if getattr(decoder, "adaptive_softmax", None) is not None:
        raise OptionError(f"{option} does not support adaptive softmax output layers")
    if getattr(decoder, "decoder_layerdrop", 0.0) > 0:
        raise OptionError(f"{option} cannot be combined with --decoder-layerdrop (exits would be skipped)")


def decoder_exit_logits(decoder, inner_states: List[torch.Tensor], layer: int, mask: torch.Tensor):
    """Logits of exit `layer` (1-based) at the positions where mask (B x T) is True: (N, V)."""
    x = inner_states[layer].transpose(0, 1)[mask]  # inner states are T x B x C
    if decoder.layer_norm is not None:
        x = decoder.layer_norm(x)
    if decoder.project_out_dim is not None:
        x = decoder.project_out_dim(x)
    return decoder.output_layer(x)
