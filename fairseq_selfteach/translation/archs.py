"""Shallower `transformer_iwslt_de_en` variants, selectable with --arch alone.

Names say the depths: transformer_iwslt_de_en_dec3 keeps the 6-layer encoder and has 3 decoder
layers; transformer_iwslt_de_en_enc3_dec3 has 3 of each. Any other depth is reachable with
--encoder-layers/--decoder-layers on the base arch (explicit options always win over these defaults).
"""
from fairseq.models import register_model_architecture
from fairseq.models.transformer.transformer_legacy import transformer_iwslt_de_en

TEACHER_LAYERS = 6


def _variant(encoder_layers: int, decoder_layers: int):
    def arch(args):
        args.encoder_layers = getattr(args, "encoder_layers", encoder_layers)
        args.decoder_layers = getattr(args, "decoder_layers", decoder_layers)
        transformer_iwslt_de_en(args)

    return arch


def variant_name(encoder_layers: int, decoder_layers: int) -> str:
    if encoder_layers == TEACHER_LAYERS:
        return f"transformer_iwslt_de_en_dec{decoder_layers}"
    return f"transformer_iwslt_de_en_enc{encoder_layers}_dec{decoder_layers}"


VARIANTS = [(TEACHER_LAYERS, d) for d in range(1, TEACHER_LAYERS)] + [
    (k, k) for k in range(1, TEACHER_LAYERS)
]
for _enc, _dec in VARIANTS:
    register_model_architecture("transformer", variant_name(_enc, _dec))(_variant(_enc, _dec))
