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


def check_exit_layers(stack, side: str, exits: List[int], option: str = "--student-exits") -> None:
    """Every exit must be below the top layer of `stack` (an encoder or decoder), the teacher exit."""
    n = len(stack.layers)
    if any(k >= n for k in exits):
        raise ValueError(
            f"{option} {','.join(map(str, exits))}: the {side} has {n} layers, so a student exit "
            f"must be between 1 and {n - 1} (layer {n} is the teacher exit)"
        )


def check_decoder_exits(decoder, exits: List[int], option: str = "--student-exits") -> None:
    check_exit_layers(decoder, "decoder", exits, option)
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


class TranslationExits:
    """Where a translation model's distributions are: the decoder's output at every real target
    token (N = target tokens in the batch); exit k = the first k decoder layers + what follows them."""

    per_sentence = False
    regression = False

    def __init__(self, padding_idx: int, ignore_prefix_size: int = 0):
        self.padding_idx = padding_idx
        self.ignore_prefix_size = ignore_prefix_size

    def check(self, model, exits: List[int]) -> None:
        check_decoder_exits(model.decoder, exits)

    def forward(self, model, sample):
        """(net_output, top logits (N, V), targets (N,), positions) for the real target tokens."""
        net_output = model(**sample["net_input"])
        target = model.get_targets(sample, net_output)
        mask = target.ne(self.padding_idx)
        if self.ignore_prefix_size > 0:
            mask[:, : self.ignore_prefix_size] = False
        return net_output, net_output[0][mask], target[mask], mask

    def exit_logits(self, model, net_output, layer: int, mask):
        return decoder_exit_logits(model.decoder, net_output[1]["inner_states"], layer, mask)

    def teacher_logits(self, teacher, sample, mask):
        return teacher.logits(sample)[mask]


class ClassificationExits:
    """Where a sentence classifier's distributions are: one per sentence (N = sentences), from the
    classification head on BERT's pooled output. Exit k pools layer k's output (not layer k-1's) as the
    model pools its last layer: the [CLS] position, or with --pooling mean the mean of the real tokens
    (padding ignored), through the same pooler and head. So it is exactly the model made of the first
    k layers, which is what export keeps. A head with one output
    is a regression head (STS-B): its outputs are scores, not class logits."""

    per_sentence = True

    def __init__(self, head_name: str):
        self.head_name = head_name
        self.regression = False

    def check(self, model, exits: List[int]) -> None:
        if self.head_name not in model.classification_heads:
            raise ValueError(f"the model has no classification head {self.head_name!r}")
        self.regression = model.classification_heads[self.head_name].out_proj.out_features == 1
        check_exit_layers(model.encoder, "encoder", exits)

    def forward(self, model, sample):
        net_output = model(**sample["net_input"], classification_head_name=self.head_name)
        target = model.get_targets(sample, [net_output[0]]).view(-1)
        return net_output, net_output[0], target, None

    def exit_logits(self, model, net_output, layer: int, mask):
        hidden = net_output[1]["inner_states"][layer]  # B x T x C; [0] is the embeddings' output
        pooled = model.pooled(hidden, net_output[1]["padding_mask"])
        return model.classification_heads[self.head_name](pooled)

    def teacher_logits(self, teacher, sample, mask):
        return teacher.logits(sample, classification_head_name=self.head_name)


def exits_for(model, criterion) -> "TranslationExits | ClassificationExits":
    """The exit adapter of a model family: encoder-decoder translation, or a sentence classifier."""
    if hasattr(model, "decoder"):
        return TranslationExits(criterion.padding_idx, criterion.ignore_prefix_size)
    if hasattr(model, "classification_heads"):
        head = getattr(criterion.task.cfg, "classification_head_name", "sentence_classification_head")
        return ClassificationExits(head)
    raise ValueError(f"self_distill does not know where {type(model).__name__}'s outputs are")
