"""Shallower `transformer_iwslt_de_en` variants, selectable with --arch alone.

Names say the depths: transformer_iwslt_de_en_dec3 keeps the 6-layer encoder and has 3 decoder
layers; transformer_iwslt_de_en_enc3_dec3 has 3 of each. Any other depth is reachable with
--encoder-layers/--decoder-layers on the base arch (explicit options always win over these defaults).
"""
from fairseq.models import register_model_architecture
from fairseq.models.transformer.transformer_legacy import transformer_iwslt_de_en

TEACHER_LAYERS = 6


def _depths(args, encoder_layers: int, decoder_layers: int) -> None:
    args.encoder_layers = getattr(args, "encoder_layers", encoder_layers)
    args.decoder_layers = getattr(args, "decoder_layers", decoder_layers)
    transformer_iwslt_de_en(args)


@register_model_architecture("transformer", "transformer_iwslt_de_en_dec1")
def transformer_iwslt_de_en_dec1(args):
    _depths(args, 6, 1)


@register_model_architecture("transformer", "transformer_iwslt_de_en_dec2")
def transformer_iwslt_de_en_dec2(args):
    _depths(args, 6, 2)


@register_model_architecture("transformer", "transformer_iwslt_de_en_dec3")
def transformer_iwslt_de_en_dec3(args):
    _depths(args, 6, 3)


@register_model_architecture("transformer", "transformer_iwslt_de_en_dec4")
def transformer_iwslt_de_en_dec4(args):
    _depths(args, 6, 4)


@register_model_architecture("transformer", "transformer_iwslt_de_en_dec5")
def transformer_iwslt_de_en_dec5(args):
    _depths(args, 6, 5)


@register_model_architecture("transformer", "transformer_iwslt_de_en_enc1_dec1")
def transformer_iwslt_de_en_enc1_dec1(args):
    _depths(args, 1, 1)


@register_model_architecture("transformer", "transformer_iwslt_de_en_enc2_dec2")
def transformer_iwslt_de_en_enc2_dec2(args):
    _depths(args, 2, 2)


@register_model_architecture("transformer", "transformer_iwslt_de_en_enc3_dec3")
def transformer_iwslt_de_en_enc3_dec3(args):
    _depths(args, 3, 3)


@register_model_architecture("transformer", "transformer_iwslt_de_en_enc4_dec4")
def transformer_iwslt_de_en_enc4_dec4(args):
    _depths(args, 4, 4)


@register_model_architecture("transformer", "transformer_iwslt_de_en_enc5_dec5")
def transformer_iwslt_de_en_enc5_dec5(args):
    _depths(args, 5, 5)


# (encoder, decoder) depths of the variants above; export writes the base arch name for them
VARIANTS = tuple((TEACHER_LAYERS, d) for d in range(1, TEACHER_LAYERS)) + tuple(
    (k, k) for k in range(1, TEACHER_LAYERS))


def variant_name(encoder_layers: int, decoder_layers: int) -> str:
    if encoder_layers == TEACHER_LAYERS:
        return f"transformer_iwslt_de_en_dec{decoder_layers}"
    return f"transformer_iwslt_de_en_enc{encoder_layers}_dec{decoder_layers}"
