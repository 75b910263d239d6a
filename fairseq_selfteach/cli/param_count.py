"""Exact parameter counts per component for any checkpoint, at its own depth or a smaller one.

    python -m fairseq_selfteach.cli.param_count CKPT [--encoder-layers K] [--decoder-layers K] [--json]

Counted from the checkpoint's state dict: tensors that share storage (tied embeddings / output
projection) are counted once, under the first component that owns them, and buffers (positional
sinusoid caches, version counters) are not parameters.
"""
import argparse
import json
import sys
from collections import OrderedDict
from typing import Dict, Optional

from fairseq_selfteach.core import error_report
from fairseq_selfteach.core.checkpoint_io import CheckpointError, load_checkpoint
from fairseq_selfteach.core.layer_map import keep_first_layers, layer_count

# state-dict entries that are buffers, not parameters
BUFFER_SUFFIXES = ("version", "_float_tensor", "position_ids")

# (component, predicate on the key); the first match wins, so the order matters
COMPONENTS = (
    ("embeddings", lambda k: ".embed_tokens." in k or ".embed_positions." in k or ".embed_segments." in k
     or "embeddings." in k or k.startswith("embed")),
    ("encoder", lambda k: k.startswith("encoder.")),
    ("output projection", lambda k: ".output_projection." in k),
    ("decoder", lambda k: k.startswith("decoder.")),
    ("other", lambda k: True),
)


def count_parameters(model_state, layers: Optional[Dict[str, int]] = None) -> "OrderedDict[str, int]":
    """{component: parameters}, plus 'total' (unique parameters). layers: {prefix: keep first K}."""
    for prefix, keep in (layers or {}).items():
        if keep is None:
            continue
        have = layer_count(model_state, prefix)
        if not 1 <= keep <= have:
            raise ValueError(f"cannot count {keep} {prefix}: the checkpoint has {have}")
        model_state = keep_first_layers(model_state, prefix, keep)
    counts = OrderedDict((name, 0) for name, _ in COMPONENTS)
    seen = set()
    for key, tensor in model_state.items():
        if key.endswith(BUFFER_SUFFIXES) or not tensor.is_floating_point():
            continue
        storage = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if storage in seen:  # tied weights: already counted
            continue
        seen.add(storage)
        component = next(name for name, match in COMPONENTS if match(key))
        counts[component] += tensor.numel()
    if counts["other"] == 0:
        del counts["other"]
    counts["total"] = sum(counts.values())
    return counts


def main(argv=None):
    error_report.install()  # a user's error is one line, no traceback, also inside fairseq's code
    p = argparse.ArgumentParser(
        prog="python -m fairseq_selfteach.cli.param_count", description=__doc__.splitlines()[0]
    )
    p.add_argument("checkpoint")
    p.add_argument("--encoder-layers", type=int, help="count only the first K encoder layers")
    p.add_argument("--decoder-layers", type=int, help="count only the first K decoder layers")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = p.parse_args(argv)
    try:
        state = load_checkpoint(a.checkpoint)
        counts = count_parameters(
            state["model"], {"encoder.layers": a.encoder_layers, "decoder.layers": a.decoder_layers}
        )
    except (CheckpointError, ValueError) as e:
        print(f"param_count: error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(counts))
    else:
        width = max(len(k) for k in counts)
        for name, n in counts.items():
            print(f"{name:<{width}}  {n:>12,d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
