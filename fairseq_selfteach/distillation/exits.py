"""Student exits inside one model: the output distribution a shallower copy of the network would give.

For a fairseq Transformer decoder, exit k reads the hidden state after decoder layer k and sends it
through exactly what follows the last layer in the full model — the final layer norm when the
architecture has one (pre-norm), the output-dimension projection when there is one, and the shared
output projection. So exit k computes what a k-layer decoder made of the first k layers computes,
and exporting it (keeping layers 0..k-1) reproduces it exactly.
"""
from typing import List

import torch


def parse_exits(spec: str, option: str = "--student-exits") -> List[int]:
    spec = (spec or "").strip()
    if not spec:
        return []
    try:
        exits = sorted({int(x) for x in spec.split(",")})
    except ValueError:
        raise ValueError(f"{option} must be a comma list of layer numbers such as 3 or 2,4; got {spec!r}")
    if any(k < 1 for k in exits):
        raise ValueError(f"{option} layer numbers start at 1 (the first layer); got {spec!r}")
    return exits


def check_decoder_exits(decoder, exits: List[int], option: str = "--student-exits") -> None:
    n = len(decoder.layers)
    bad = [k for k in exits if k >= n]
    if bad:
        raise ValueError(
            f"{option} {','.join(map(str, exits))}: the decoder has {n} layers, so a student exit "
            f"must be between 1 and {n - 1} (layer {n} is the teacher exit)"
        )
    if getattr(decoder, "adaptive_softmax", None) is not None:
        raise ValueError(f"{option} does not support adaptive softmax output layers")
    if getattr(decoder, "decoder_layerdrop", 0.0) > 0:
        raise ValueError(f"{option} cannot be combined with --decoder-layerdrop (exits would be skipped)")


def decoder_exit_logits(decoder, inner_states: List[torch.Tensor], layer: int, mask: torch.Tensor):
    """Logits of exit `layer` (1-based) at the positions where mask (B x T) is True: (N, V)."""
    x = inner_states[layer].transpose(0, 1)[mask]  # inner states are T x B x C
    if decoder.layer_norm is not None:
        x = decoder.layer_norm(x)
    if decoder.project_out_dim is not None:
        x = decoder.project_out_dim(x)
    return decoder.output_layer(x)
