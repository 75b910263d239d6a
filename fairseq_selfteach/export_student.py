"""Export a self-taught translation student as a plain fairseq `transformer` checkpoint.

    python -m fairseq_selfteach.export_student --checkpoint CKPT --out STUDENT.pt [--decoder-layers K]

Offline students are exported as they are (a shallower model already). For an online-trained model,
--decoder-layers K keeps decoder layers 1..K: exactly student exit K. The result loads in
fairseq-generate and TransformerModel.from_pretrained without --user-dir, and without any
allow-listed global: its config is plain dicts, so torch's safe loader accepts it as is.
"""
import argparse
import sys

from fairseq_selfteach.checkpoints import CheckpointError, atomic_torch_save


def plain_translation_arch(arch: str) -> str:
    from fairseq_selfteach.models.transformer_depths import VARIANTS, variant_name

    ours = {variant_name(e, d) for e, d in VARIANTS}
    # our depth variants only change defaults that the config states explicitly
    return "transformer_iwslt_de_en" if arch in ours else arch


def export(checkpoint: str, out: str, encoder_layers=None, decoder_layers=None) -> dict:
    import fairseq_selfteach  # noqa: F401  (registers the variants for the arch check)
    from fairseq.tasks.translation import TranslationConfig

    from fairseq_selfteach.student_checkpoint import plain_checkpoint

    state = plain_checkpoint(
        checkpoint,
        keep_layers={"encoder.layers": encoder_layers, "decoder.layers": decoder_layers},
        depth_options={"encoder.layers": "encoder_layers", "decoder.layers": "decoder_layers"},
        plain_arch=plain_translation_arch,
        plain_task="translation",
        plain_task_config=TranslationConfig,
        plain_criterion="label_smoothed_cross_entropy",
    )
    atomic_torch_save(state, out)
    return state["selfteach"]


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m fairseq_selfteach.export_student", description=__doc__.splitlines()[0]
    )
    p.add_argument("--checkpoint", required=True, help="training checkpoint (offline or online)")
    p.add_argument("--out", required=True, help="where to write the plain fairseq checkpoint")
    p.add_argument(
        "--decoder-layers",
        type=int,
        default=None,
        help="keep the first K decoder layers (student exit K of an online model); default: all",
    )
    p.add_argument(
        "--encoder-layers", type=int, default=None, help="keep the first K encoder layers; default: all"
    )
    a = p.parse_args(argv)
    try:
        info = export(a.checkpoint, a.out, a.encoder_layers, a.decoder_layers)
    except (CheckpointError, ValueError) as e:
        print(f"export_student: error: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {a.out}: encoder {info['encoder.layers_kept']} layers, decoder "
        f"{info['decoder.layers_kept']} layers (from {a.checkpoint})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
