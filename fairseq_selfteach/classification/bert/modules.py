"""BERT's building blocks, numerically the same as Hugging Face's: self-attention, the post-LayerNorm
block, the pooler, and the classification head (which pools inside itself)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.modules import FairseqDropout

# BERT's initialiser (HF initializer_range default); only used for weights no checkpoint provides
INIT_STD = 0.02


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
    """A layer's output (B x T x C) -> BERT's pooled output -> dropout -> dense (HF
    BertForSequenceClassification). Like RoBERTa's heads it pools inside itself, so the head applied
    to layer k's output is exactly the k-layer model's prediction (a student exit).

    The task's heads share BERT's own pooler (encoder.pooler, pretrained): such a head holds it by
    reference, not as a submodule, so its weights are saved once, under encoder.pooler. An exit head
    (classification/exit_heads.py) owns a pooler of its own (own_pooler=True), saved with the head."""

    def __init__(self, pooler: BertPooler, input_dim: int, num_classes: int, dropout: float,
                 own_pooler: bool = False):
        super().__init__()
        if own_pooler:
            self.pooler = pooler
        else:
            self._pooler = (pooler,)  # a tuple: not registered as a submodule
        self.dropout_module = FairseqDropout(dropout, module_name=self.__class__.__name__)
        self.out_proj = nn.Linear(input_dim, num_classes)

    def forward(self, features: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        pooler = self.pooler if hasattr(self, "pooler") else self._pooler[0]
        pooled = pooler(features, padding_mask)
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
