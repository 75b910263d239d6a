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
import logging
import os
from dataclasses import fields
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from fairseq.models import (
    FairseqEncoder,
    FairseqEncoderModel,
    register_model,
    register_model_architecture,
)
from fairseq.modules import FairseqDropout

from fairseq_selfteach.classification.bert.config import (
    SIZE_FIELDS,
    BertConfigError,
    SelfteachBertConfig,
    read_hf_bert_config,
)
from fairseq_selfteach.classification.exit_heads import (
    exit_head_base,
    exit_head_layers,
    exit_head_name,
    exit_pooling,
    fill_exit_heads,
)
from fairseq_selfteach.core.layer_map import layer_index
from fairseq_selfteach.classification.bert.modules import (
    BertClassificationHead,
    BertLayer,
    BertPooler,
    init_bert_params,
)

logger = logging.getLogger(__name__)


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
        """Last layer's output B x T x C (or, with classification_head_name, that head's logits: it
        pools the last layer itself, as RoBERTa's heads do for fairseq's sentence_prediction), and the
        encoder's extra outputs (inner_states, padding_mask). Other keyword arguments of fairseq
        tasks (src_lengths, features_only) are accepted and have no effect."""
        hidden, extra = self.encoder(src_tokens, segment_labels=segment_labels)
        if classification_head_name is not None:
            head = self.classification_heads[classification_head_name]
            return head(hidden, padding_mask=extra["padding_mask"]), extra
        return hidden, extra

    def register_classification_head(self, name: str, num_classes: int, **kwargs) -> None:
        """Add (or replace) a head: BERT's pooler, dropout, and a dense layer to num_classes."""
        if name in self.classification_heads:
            prev = self.classification_heads[name].out_proj.out_features
            if prev != num_classes:
                logger.warning(
                    f're-registering head "{name}" with num_classes {num_classes} (was {prev})'
                )
        dropout = self.cfg.classifier_dropout
        dropout = self.cfg.dropout if dropout is None else dropout
        dim, ref = self.cfg.encoder_embed_dim, self.encoder.embed_tokens.weight
        head = BertClassificationHead(self.encoder.pooler, dim, num_classes, dropout)
        head.apply(init_bert_params)
        self.classification_heads[name] = head.to(device=ref.device, dtype=ref.dtype)
        for layer in exit_head_layers(self.cfg):  # exits with a pooler and head of their own
            pooler = BertPooler(dim, exit_pooling(self.cfg))
            pooler.load_state_dict(self.encoder.pooler.state_dict())
            exit_head = BertClassificationHead(pooler, dim, num_classes, dropout, own_pooler=True)
            exit_head.out_proj.apply(init_bert_params)
            self.classification_heads[exit_head_name(name, layer)] = exit_head.to(device=ref.device, dtype=ref.dtype)

    def upgrade_state_dict_named(self, state_dict, name):
        prefix = name + "." if name else ""
        self._keep_first_layers(state_dict, prefix)
        exit_heads = [k for k in self.classification_heads if exit_head_base(k, self.classification_heads)]
        fill_exit_heads(state_dict, prefix, exit_heads)
        self._match_classification_heads(state_dict, prefix)
        super().upgrade_state_dict_named(state_dict, name)

    def _keep_first_layers(self, state_dict, prefix: str) -> None:
        # a checkpoint deeper than this model: keep its first k layers (the self-teaching student)
        keep = len(self.encoder.layers)
        dropped = set()
        for key in list(state_dict):
            i = layer_index(key, prefix + "encoder.layers")
            if i is not None and i >= keep:
                dropped.add(i)
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
            if head not in self.classification_heads and exit_head_base(head, in_checkpoint):
                raise ValueError(
                    f'the checkpoint has the exit head "{head}" but this model has no such exit head: '
                    f"give the --exit-heads it was trained with"
                )
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


def _set_sizes(cfg, layers: int, dim: int, heads: int, ffn: int) -> None:
    for name, value in zip(SIZE_FIELDS, (layers, dim, heads, ffn)):
        _set_default(cfg, name, value)
    _fill_remaining(cfg)


@register_model_architecture("selfteach_bert", "selfteach_bert_base")
def selfteach_bert_base(cfg):
    _set_sizes(cfg, layers=12, dim=768, heads=12, ffn=3072)  # Devlin et al. BERT-base


@register_model_architecture("selfteach_bert", "selfteach_bert_large")
def selfteach_bert_large(cfg):
    _set_sizes(cfg, layers=24, dim=1024, heads=16, ffn=4096)  # BERT-large


@register_model_architecture("selfteach_bert", "bert_from_config")
def bert_from_config(cfg):
    path = getattr(cfg, "bert_config", None)
    # a checkpoint's saved config already holds every size: its config.json need not exist any more
    if path and any(getattr(cfg, name, None) is None for name in SIZE_FIELDS + ("vocab_size",)):
        for name, value in read_hf_bert_config(path).items():
            _set_default(cfg, name, value)
    missing = [name for name in SIZE_FIELDS if getattr(cfg, name, None) is None]
    if missing:
        raise BertConfigError(
            "--arch bert_from_config needs --bert-config PATH (an HF config.json) or explicit "
            + ", ".join("--" + m.replace("_", "-") for m in missing)
        )
    _fill_remaining(cfg)
