"""Decoder exits: the output distribution a shallower copy of the decoder would give.

Exit k reads the hidden state after decoder layer k and sends it through exactly what follows the last
layer in the full model: the final layer norm when the architecture has one (pre-norm), the
output-dimension projection when there is one, and the shared output projection. So exit k computes
what a decoder made of the first k layers computes, and exporting it (keeping layers 0..k-1)
reproduces it exactly.

With `--exit-layer-norms 2,3` (or `all`; task self_distill_translation) exits 2 and 3 of a pre-norm
decoder each have a final layer norm of their own (`decoder.exit_layer_norms.K`, a copy of the final
one to start with) instead of sharing the top layer's. Exporting exit K makes its norm the exported
decoder's final layer norm, so plain fairseq computes what the exit computed. A post-norm decoder
(transformer_iwslt_de_en's default) has no final layer norm, and plain fairseq has no place for one,
so there the option is refused.
"""
import copy
from typing import Dict, List

import torch
from torch import nn

from fairseq_selfteach.core.exits import check_exit_layers, parse_exits, resolve_exits
from selfteach_pipeline.errors import OptionError

EXIT_NORMS = "exit_layer_norms"


def check_decoder_output(decoder, option: str = "--student-exits") -> None:
    """What follows the last decoder layer must be something an exit can reuse."""
    if getattr(decoder, "adaptive_softmax", None) is not None:
        raise OptionError(f"{option} does not support adaptive softmax output layers")
    if getattr(decoder, "decoder_layerdrop", 0.0) > 0:
        raise OptionError(f"{option} cannot be combined with --decoder-layerdrop (exits would be skipped)")


def decoder_exit_logits(decoder, inner_states: List[torch.Tensor], layer: int, mask: torch.Tensor):
    """Logits of exit `layer` (1-based) at the positions where mask (B x T) is True: (N, V)."""
    return exit_projection(decoder, inner_states[layer].transpose(0, 1)[mask], layer)  # inner: T x B x C


def exit_projection(decoder, x: torch.Tensor, layer: int) -> torch.Tensor:
    """Logits of exit `layer` from hidden states x (..., C) after that layer: its own final layer norm or
    the shared one, the output-dimension projection, the output projection (the top layer's: the model's)."""
    own = getattr(decoder, EXIT_NORMS, None)
    norm = own[str(layer)] if own is not None and str(layer) in own else decoder.layer_norm
    if norm is not None:
        x = norm(x)
    if decoder.project_out_dim is not None:
        x = decoder.project_out_dim(x)
    return decoder.output_layer(x)


def cut_decoder_to_exit(decoder, layer: int, option: str = "--exit-layer") -> None:
    """Make `decoder` (in place) the decoder of exit `layer`: its first `layer` layers, exit `layer`'s own
    final layer norm where it has one, no other exit norms; what export_student --decoder-layers K
    writes, without writing it."""
    n = len(decoder.layers)
    if not 1 <= layer <= n:
        raise OptionError(f"{option} {layer}: the model's decoder has {n} layers, so choose 1..{n}")
    own = getattr(decoder, EXIT_NORMS, None)
    if own is not None:
        if str(layer) in own:
            decoder.layer_norm = own[str(layer)]
        delattr(decoder, EXIT_NORMS)
    decoder.layers = nn.ModuleList(list(decoder.layers)[:layer])
    decoder.num_layers = layer


def add_exit_layer_norms(decoder, spec: str) -> List[int]:
    """Give the exits `spec` names (a comma list of decoder layers, or "all" below the top) a final layer
    norm of their own, each a copy of the decoder's; returns their layers."""
    layers = resolve_exits(parse_exits(spec, "--exit-layer-norms"), len(decoder.layers))
    if not layers:
        return []
    if decoder.layer_norm is None:
        raise OptionError(
            "--exit-layer-norms needs a pre-norm decoder (--decoder-normalize-before): this one is post-norm, "
            "so it has no final layer norm to give each exit, and plain fairseq could not load an exit with one")
    check_exit_layers(decoder, "decoder", layers, option="--exit-layer-norms")
    decoder.add_module(EXIT_NORMS, nn.ModuleDict({str(k): copy.deepcopy(decoder.layer_norm) for k in layers}))
    return layers


def keep_exit_layer_norm(model_state: Dict, model_cfg: Dict, layer: int) -> Dict:
    """The state of a model cut to `layer` decoder layers: exit `layer`'s own norm (where it has one)
    becomes the final layer norm; every exit norm is dropped, from the state and the config."""
    model_cfg.pop(EXIT_NORMS, None)
    own = f"decoder.{EXIT_NORMS}.{layer}."
    out = {k: v for k, v in model_state.items() if not k.startswith(f"decoder.{EXIT_NORMS}.")}
    for key, value in model_state.items():
        if key.startswith(own):
            out["decoder.layer_norm." + key[len(own):]] = value
    return out
