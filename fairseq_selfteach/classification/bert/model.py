"""BERT as a fairseq model (`selfteach_bert`), numerically the same network as Hugging Face's BertModel.

Architectures (--arch):
- selfteach_bert_base: 12 layers, hidden 768, 12 heads, FFN 3072 (Devlin et al. BERT-base);
- selfteach_bert_large: 24 layers, hidden 1024, 16 heads, FFN 4096 (BERT-large);
- bert_from_config: every size read from an HF config.json given with --bert-config (any depth/width).
fairseq itself registers `bert_base` and `bert_large` (for its legacy masked_lm model) and refuses a
second registration of a name, hence the prefix.

The network, as BERT defines it: token + position (0, 1, ... from [CLS]) + segment (token type)
embeddings summed, LayerNorm, dropout; then post-LayerNorm blocks (self-attention with q/k/v/out
projections, residual, LayerNorm; dense -> exact (erf) GELU -> dense, residual, LayerNorm); a pooler
(dense + tanh on the [CLS] position) and optional classification heads (dropout + dense on the
pooled output, as BertForSequenceClassification).

Self-teaching reads the layers: forward returns every layer's output (`inner_states`), and a model
built with --encoder-layers k below a checkpoint's depth loads that checkpoint's first k layers
(upgrade_state_dict_named drops the rest), which is exactly the k-layer student.

Inputs are right-padded with [CLS] first (fairseq's RightPadDataset, HF tokenizers): positions count
from 0 at the first column as in BERT, so a left-padded batch would be wrong and is refused.
"""
import json
import logging
import os
import re
from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import (
    FairseqEncoder,
    FairseqEncoderModel,
    register_model,
    register_model_architecture,
)
from fairseq.modules import FairseqDropout

logger = logging.getLogger(__name__)

# BERT's initialiser (HF initializer_range default); only used for weights no checkpoint provides
INIT_STD = 0.02


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


class BertConfigError(ValueError):
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


class BertSelfAttention(nn.Module):
    """Multi-head self-attention with BERT's q/k/v/output projections (named as fairseq's)."""

    def __init__(self, embed_dim: int, num_heads: int, attention_dropout: float):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"hidden size {embed_dim} is not a multiple of {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.attention_dropout = attention_dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """x: B x T x C; attn_mask: B x 1 x 1 x T, True where a key may be attended, or None."""
        bsz, seq_len, embed_dim = x.shape

        def heads(t):
            return t.view(bsz, seq_len, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        # softmax(q k^T / sqrt(d) + mask) v, the same arithmetic as BertSelfAttention, in one kernel
        ctx = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attention_dropout if self.training else 0.0
        )
        return self.out_proj(ctx.transpose(1, 2).reshape(bsz, seq_len, embed_dim))


class BertLayer(nn.Module):
    """One post-LayerNorm BERT block."""

    def __init__(self, cfg):
        super().__init__()
        dim, eps = cfg.encoder_embed_dim, cfg.layer_norm_eps
        self.self_attn = BertSelfAttention(dim, cfg.encoder_attention_heads, cfg.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.dropout_module = FairseqDropout(cfg.dropout, module_name=self.__class__.__name__)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.self_attn_layer_norm(x + self.dropout_module(self.self_attn(x, attn_mask)))
        # BERT's "gelu" is the exact erf form, not the tanh approximation
        h = self.fc2(F.gelu(self.fc1(x)))
        return self.final_layer_norm(x + self.dropout_module(h))


class BertPooler(nn.Module):
    """dense + tanh on the first ([CLS]) position, or (pooling="mean") on the mean of the real tokens."""

    def __init__(self, dim: int, pooling: str = "cls"):
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.pooling = str(pooling)

    def forward(self, hidden: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.pooling == "mean":
            if padding_mask is None:
                summary = hidden.mean(dim=1)
            else:  # pads neither add to the sum nor count
                keep = (~padding_mask).unsqueeze(-1).type_as(hidden)
                summary = (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
        else:
            summary = hidden[:, 0]
        return torch.tanh(self.dense(summary))


class BertClassificationHead(nn.Module):
    """dropout + dense on the pooled output (HF BertForSequenceClassification's classifier)."""

    def __init__(self, input_dim: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout_module = FairseqDropout(dropout, module_name=self.__class__.__name__)
        self.out_proj = nn.Linear(input_dim, num_classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout_module(pooled))


def init_bert_params(module: nn.Module) -> None:
    """BERT's initialisation (HF BertPreTrainedModel._init_weights) for a model trained from scratch."""
    if isinstance(module, nn.Linear):
        module.weight.data.normal_(mean=0.0, std=INIT_STD)
        if module.bias is not None:
            module.bias.data.zero_()
    elif isinstance(module, nn.Embedding):
        module.weight.data.normal_(mean=0.0, std=INIT_STD)
        if module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        module.weight.data.fill_(1.0)
        module.bias.data.zero_()


class BertEncoder(FairseqEncoder):
    def __init__(self, cfg, dictionary):
        super().__init__(dictionary)
        dim = cfg.encoder_embed_dim
        self.padding_idx = dictionary.pad()
        self.max_position_embeddings = cfg.max_position_embeddings
        self.embed_tokens = nn.Embedding(len(dictionary), dim, padding_idx=self.padding_idx)
        self.embed_positions = nn.Embedding(cfg.max_position_embeddings, dim)
        self.embed_segments = nn.Embedding(cfg.type_vocab_size, dim)
        self.layernorm_embedding = nn.LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.dropout_module = FairseqDropout(cfg.dropout, module_name=self.__class__.__name__)
        self.layers = nn.ModuleList([BertLayer(cfg) for _ in range(cfg.encoder_layers)])
        self.pooler = BertPooler(dim, getattr(cfg, "pooling", "cls"))
        self.apply(init_bert_params)

    def forward(
        self, src_tokens: torch.Tensor, segment_labels: Optional[torch.Tensor] = None, **unused
    ) -> Tuple[torch.Tensor, Dict[str, object]]:
        """src_tokens, segment_labels: B x T (segment_labels default to 0, the first segment).

        Returns the last layer's output (B x T x C) and {"inner_states": [embeddings output, layer 1
        output, ..., layer L output] (each B x T x C), "padding_mask": B x T, True at padding}.
        """
        bsz, seq_len = src_tokens.shape
        if seq_len > self.max_position_embeddings:
            raise ValueError(
                f"input of {seq_len} tokens is longer than the {self.max_position_embeddings} "
                f"positions this BERT has (truncate the input)"
            )
        padding_mask = src_tokens.eq(self.padding_idx)
        has_pads = bool(padding_mask.any())
        if has_pads and bool(padding_mask[:, 0].any()):
            raise ValueError(
                "BERT input must be right-padded with [CLS] first: a sequence starts with padding"
            )
        if segment_labels is None:
            segment_labels = torch.zeros_like(src_tokens)
        positions = torch.arange(seq_len, device=src_tokens.device)
        x = self.embed_tokens(src_tokens) + self.embed_segments(segment_labels)
        x = x + self.embed_positions(positions).unsqueeze(0)
        x = self.dropout_module(self.layernorm_embedding(x))
        # padded keys get no attention; padded queries still produce (ignored) outputs, as in BERT
        attn_mask = (~padding_mask)[:, None, None, :] if has_pads else None
        inner_states: List[torch.Tensor] = [x]
        for layer in self.layers:
            x = layer(x, attn_mask)
            inner_states.append(x)
        return x, {"inner_states": inner_states, "padding_mask": padding_mask}

    def max_positions(self) -> int:
        return self.max_position_embeddings


@register_model("selfteach_bert", dataclass=SelfteachBertConfig)
class SelfteachBertModel(FairseqEncoderModel):
    def __init__(self, cfg, encoder: BertEncoder):
        super().__init__(encoder)
        self.cfg = cfg
        self.classification_heads = nn.ModuleDict()

    @classmethod
    def build_model(cls, cfg, task):
        return cls.build_from_dictionary(cfg, task.source_dictionary)

    @classmethod
    def build_from_dictionary(cls, cfg, dictionary) -> "SelfteachBertModel":
        if getattr(cfg, "vocab_size", None) is not None and len(dictionary) != cfg.vocab_size:
            source = getattr(dictionary, "source_path", None)
            raise ValueError(
                f"the dictionary{' ' + source if source else ''} has {len(dictionary)} symbols but "
                f"the model's vocabulary (vocab_size) has {cfg.vocab_size}: use the dict.txt written "
                f"with the checkpoint (BertDictionary; a fairseq Dictionary adds 4 symbols and "
                f"shifts every WordPiece id)"
            )
        return cls(cfg, BertEncoder(cfg, dictionary))

    def forward(
        self,
        src_tokens: torch.Tensor,
        segment_labels: Optional[torch.Tensor] = None,
        classification_head_name: Optional[str] = None,
        **kwargs,
    ):
        """Last layer's output B x T x C (or, with classification_head_name, that head's logits on
        the pooled output, as RoBERTa's forward for fairseq's sentence_prediction), and the
        encoder's extra outputs (inner_states, padding_mask). Other keyword arguments of fairseq
        tasks (src_lengths, features_only) are accepted and have no effect."""
        hidden, extra = self.encoder(src_tokens, segment_labels=segment_labels)
        if classification_head_name is not None:
            pooled = self.pooled(hidden, extra["padding_mask"])
            return self.classification_heads[classification_head_name](pooled), extra
        return hidden, extra

    def pooled(self, hidden: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """BERT's pooled output (dense + tanh of the [CLS] position, or of the mean of the real
        tokens with --pooling mean, which needs the padding mask) of any layer's output."""
        if self.encoder.pooler.pooling == "mean" and padding_mask is None:
            raise ValueError("--pooling mean needs the padding mask (the encoder's extra output)")
        return self.encoder.pooler(hidden, padding_mask)

    def register_classification_head(self, name: str, num_classes: int, **kwargs) -> None:
        """Add (or replace) a head: dropout + dense from the pooled output to num_classes."""
        if name in self.classification_heads:
            prev = self.classification_heads[name].out_proj.out_features
            if prev != num_classes:
                logger.warning(
                    f're-registering head "{name}" with num_classes {num_classes} (was {prev})'
                )
        dropout = self.cfg.classifier_dropout
        head = BertClassificationHead(
            self.cfg.encoder_embed_dim,
            num_classes,
            self.cfg.dropout if dropout is None else dropout,
        )
        head.apply(init_bert_params)
        ref = self.encoder.embed_tokens.weight
        self.classification_heads[name] = head.to(device=ref.device, dtype=ref.dtype)

    def upgrade_state_dict_named(self, state_dict, name):
        prefix = name + "." if name else ""
        self._keep_first_layers(state_dict, prefix)
        self._match_classification_heads(state_dict, prefix)
        super().upgrade_state_dict_named(state_dict, name)

    def _keep_first_layers(self, state_dict, prefix: str) -> None:
        # a checkpoint deeper than this model: keep its first k layers (the self-teaching student)
        keep = len(self.encoder.layers)
        pat = re.compile(r"^" + re.escape(prefix + "encoder.layers.") + r"(\d+)\.")
        dropped = set()
        for key in list(state_dict):
            m = pat.match(key)
            if m and int(m.group(1)) >= keep:
                dropped.add(int(m.group(1)))
                del state_dict[key]
        if dropped:
            logger.info(
                f"loading the first {keep} of the checkpoint's {keep + len(dropped)} layers "
                f"(--encoder-layers {keep})"
            )

    def _match_classification_heads(self, state_dict, prefix: str) -> None:
        head_prefix = prefix + "classification_heads."
        in_checkpoint = {}
        for key in state_dict:
            if key.startswith(head_prefix) and key.endswith(".out_proj.weight"):
                head = key[len(head_prefix) : -len(".out_proj.weight")]
                in_checkpoint[head] = state_dict[key].size(0)
        for head, num_classes in in_checkpoint.items():
            if head not in self.classification_heads:
                # a fine-tuned checkpoint brings its heads along
                self.register_classification_head(head, num_classes)
            elif self.classification_heads[head].out_proj.out_features != num_classes:
                raise ValueError(
                    f'classification head "{head}" has {num_classes} classes in the checkpoint '
                    f"but {self.classification_heads[head].out_proj.out_features} in the model; "
                    f"register the new head under another name"
                )
        # heads the task registered that the checkpoint lacks (fine-tuning a pretrained BERT) keep
        # their fresh initialisation
        for key, value in self.classification_heads.state_dict().items():
            state_dict.setdefault(head_prefix + key, value)

    @classmethod
    def load_converted(cls, out_dir: str, encoder_layers: Optional[int] = None) -> "SelfteachBertModel":
        """The model in OUT_DIR (written by fairseq_selfteach.cli.convert_hf_bert), through fairseq's
        own checkpoint loader, in eval mode; encoder_layers=k keeps its first k layers."""
        from fairseq import checkpoint_utils

        path = os.path.join(out_dir, "model.pt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no converted BERT checkpoint in {out_dir} ({path} not found)")
        overrides = {"data": out_dir}
        if encoder_layers is not None:
            overrides["encoder_layers"] = encoder_layers
        models, _cfg, _task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides)
        return models[0].eval()


def _set_default(cfg, name: str, value) -> None:
    # explicit command-line options (or a checkpoint's saved config) win over the arch's sizes
    if getattr(cfg, name, None) is None:
        setattr(cfg, name, value)


def _fill_remaining(cfg) -> None:
    # every field present, so a saved config (or one from an older version) builds the same model
    for f in fields(SelfteachBertConfig):
        _set_default(cfg, f.name, f.default)


# Google's BERT sizes: layers, hidden size, attention heads, FFN size
_BERT_SIZES = {"selfteach_bert_base": (12, 768, 12, 3072), "selfteach_bert_large": (24, 1024, 16, 4096)}


def _register_size(arch_name, sizes):
    @register_model_architecture("selfteach_bert", arch_name)
    def arch(cfg):
        for name, value in zip(("encoder_layers", "encoder_embed_dim", "encoder_attention_heads",
                                "encoder_ffn_embed_dim"), sizes):
            _set_default(cfg, name, value)
        _fill_remaining(cfg)

    return arch


selfteach_bert_base, selfteach_bert_large = (_register_size(n, s) for n, s in _BERT_SIZES.items())


@register_model_architecture("selfteach_bert", "bert_from_config")
def bert_from_config(cfg):
    path = getattr(cfg, "bert_config", None)
    if path:
        for name, value in read_hf_bert_config(path).items():
            _set_default(cfg, name, value)
    missing = [name for name in SIZE_FIELDS if getattr(cfg, name, None) is None]
    if missing:
        raise BertConfigError(
            "--arch bert_from_config needs --bert-config PATH (an HF config.json) or explicit "
            + ", ".join("--" + m.replace("_", "-") for m in missing)
        )
    _fill_remaining(cfg)
