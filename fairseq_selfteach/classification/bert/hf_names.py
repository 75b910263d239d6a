"""Hugging Face BERT's parameter names and ours (the selfteach_bert model): one table, read both ways, by
the import (cli/convert_hf_bert.py) and the export to HF (classification/hf_export.py)."""
import re
from typing import Optional

# HF name (after the `bert.` prefix) -> our name
TOP_LEVEL = {
    "embeddings.word_embeddings.weight": "encoder.embed_tokens.weight",
    "embeddings.position_embeddings.weight": "encoder.embed_positions.weight",
    "embeddings.token_type_embeddings.weight": "encoder.embed_segments.weight",
    "embeddings.LayerNorm.weight": "encoder.layernorm_embedding.weight",
    "embeddings.LayerNorm.bias": "encoder.layernorm_embedding.bias",
    "pooler.dense.weight": "encoder.pooler.dense.weight",
    "pooler.dense.bias": "encoder.pooler.dense.bias",
}
IN_LAYER = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "self_attn_layer_norm",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "output.LayerNorm": "final_layer_norm",
}
HF_LAYER_KEY = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
OUR_LAYER_KEY = re.compile(r"^encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_OURS_TO_HF = {ours: hf for hf, ours in IN_LAYER.items()}


def hf_key(our_key: str, head_name: str) -> Optional[str]:
    """The HF name (without the `bert.` prefix; `classifier.*` for head_name's output layer) of one of
    our weights; None for a weight HF's BERT has no place for."""
    for hf, ours in TOP_LEVEL.items():
        if ours == our_key:
            return hf
    if our_key.startswith(f"classification_heads.{head_name}.out_proj."):
        return "classifier." + our_key.rsplit(".", 1)[1]
    m = OUR_LAYER_KEY.match(our_key)
    if m and m.group(2) in _OURS_TO_HF:
        return f"encoder.layer.{m.group(1)}.{_OURS_TO_HF[m.group(2)]}.{m.group(3)}"
    return None
