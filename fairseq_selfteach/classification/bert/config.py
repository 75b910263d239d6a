"""The `selfteach_bert` model's options, and reading them from a Hugging Face BERT config.json."""
import json
import os
from dataclasses import dataclass, field
from typing import Dict, Optional

from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from selfteach_pipeline.errors import SelfteachError


@dataclass
class SelfteachBertConfig(FairseqDataclass):
    encoder_layers: int = field(
        default=12,
        metadata={
            "help": "number of Transformer layers (HF num_hidden_layers); fewer than a checkpoint "
            "has builds its first k layers: the self-teaching student"
        },
    )
    encoder_embed_dim: int = field(
        default=768, metadata={"help": "hidden size of embeddings and layers (HF hidden_size)"}
    )
    encoder_attention_heads: int = field(
        default=12, metadata={"help": "attention heads per layer (HF num_attention_heads)"}
    )
    encoder_ffn_embed_dim: int = field(
        default=3072, metadata={"help": "inner size of the feed-forward block (HF intermediate_size)"}
    )
    dropout: float = field(
        default=0.1,
        metadata={"help": "dropout on embeddings and on each sublayer's output (HF hidden_dropout_prob)"},
    )
    attention_dropout: float = field(
        default=0.1,
        metadata={"help": "dropout on attention probabilities (HF attention_probs_dropout_prob)"},
    )
    classifier_dropout: Optional[float] = field(
        default=None,
        metadata={
            "help": "dropout before a classification head's dense layer; default: --dropout "
            "(HF classifier_dropout)"
        },
    )
    pooling: ChoiceEnum(["cls", "mean"]) = field(
        default="cls",
        metadata={
            "help": "what the pooler (dense + tanh) reads, for the heads and every student exit: cls, "
            "BERT's [CLS] position; mean, the mean of the real tokens (padding ignored), the pooling "
            "sentence-transformers models such as MiniLM were trained with"
        },
    )
    exit_heads: str = field(
        default="",
        metadata={
            "help": "encoder layers (a comma list, or all: every layer below the top) whose student exit "
            "gets a pooler and classification head of its own instead of the top layer's "
            "(classification/exit_heads.py); exporting exit k keeps its head"
        },
    )
    exit_pooling: str = field(
        default="",
        metadata={"help": "what the exit heads' poolers read: cls or mean (default: as --pooling)"},
    )
    max_position_embeddings: int = field(
        default=512,
        metadata={"help": "rows of the learned position table: the longest input, [CLS] and [SEP] included"},
    )
    type_vocab_size: int = field(
        default=2, metadata={"help": "number of segment (token type) ids: 2 for sentence pairs"}
    )
    layer_norm_eps: float = field(
        default=1e-12, metadata={"help": "epsilon of every LayerNorm (HF layer_norm_eps)"}
    )
    vocab_size: Optional[int] = field(
        default=None,
        metadata={
            "help": "vocabulary size the weights were trained with (set from --bert-config); a "
            "dictionary of another size is refused instead of silently misaligning token ids"
        },
    )
    bert_config: Optional[str] = field(
        default=None,
        metadata={
            "help": "HF BERT config.json to read every size from (--arch bert_from_config); "
            "options given explicitly, such as --encoder-layers, override it"
        },
    )


# HF config.json key -> (our config field, HF BertConfig's default or None where the file must say).
# Sizes must be in the file: a config without them is more likely a mistake than BERT-base.
HF_CONFIG_FIELDS = {
    "num_hidden_layers": ("encoder_layers", None),
    "hidden_size": ("encoder_embed_dim", None),
    "num_attention_heads": ("encoder_attention_heads", None),
    "intermediate_size": ("encoder_ffn_embed_dim", None),
    "vocab_size": ("vocab_size", None),
    "hidden_dropout_prob": ("dropout", 0.1),
    "attention_probs_dropout_prob": ("attention_dropout", 0.1),
    "classifier_dropout": ("classifier_dropout", None),
    "max_position_embeddings": ("max_position_embeddings", 512),
    "type_vocab_size": ("type_vocab_size", 2),
    "layer_norm_eps": ("layer_norm_eps", 1e-12),
}
SIZE_FIELDS = ("encoder_layers", "encoder_embed_dim", "encoder_attention_heads", "encoder_ffn_embed_dim")

class BertConfigError(SelfteachError, ValueError):
    """A config.json this model cannot reproduce, with a message naming the file and the key."""


def read_hf_bert_config(path: str) -> Dict[str, object]:
    """Our config fields from an HF BERT config.json; refuses what BertModel would compute
    differently here (another activation, relative positions, another model type)."""
    if not os.path.isfile(path):
        raise BertConfigError(f"BERT config not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            hf = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BertConfigError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(hf, dict):
        raise BertConfigError(f"{path}: expected a JSON object")
    model_type = hf.get("model_type", "bert")
    if model_type != "bert":
        raise BertConfigError(f"{path}: model_type {model_type!r} is not 'bert'")
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise BertConfigError(f"{path}: hidden_act {act!r} is not supported (only BERT's exact 'gelu')")
    pos = hf.get("position_embedding_type", "absolute")
    if pos != "absolute":
        raise BertConfigError(
            f"{path}: position_embedding_type {pos!r} is not supported (only 'absolute')"
        )
    out: Dict[str, object] = {}
    for hf_key, (name, default) in HF_CONFIG_FIELDS.items():
        value = hf.get(hf_key, default)
        if value is None and name != "classifier_dropout":
            raise BertConfigError(f"{path}: missing {hf_key!r}")
        out[name] = value
    for name in SIZE_FIELDS + ("vocab_size", "max_position_embeddings", "type_vocab_size"):
        if not isinstance(out[name], int) or out[name] < 1:
            raise BertConfigError(f"{path}: {name} must be a positive integer, got {out[name]!r}")
    if out["encoder_embed_dim"] % out["encoder_attention_heads"]:
        raise BertConfigError(
            f"{path}: hidden_size {out['encoder_embed_dim']} is not a multiple of "
            f"num_attention_heads {out['encoder_attention_heads']}"
        )
    return out
