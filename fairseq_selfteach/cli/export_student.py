"""Export a self-taught translation student as a plain fairseq `transformer` checkpoint.

    python -m fairseq_selfteach.cli.export_student --checkpoint CKPT --out STUDENT.pt [--decoder-layers K]

Offline students are exported as they are (a shallower model already). For an online-trained model,
--decoder-layers K keeps decoder layers 1..K: exactly student exit K. A BERT sentence classifier
(task glue / self_distill_glue) is exported as a `glue` checkpoint; --encoder-layers K keeps its first
K layers with the pooler and heads: exactly its exit K. (That model is the plugin's, so loading it
needs --user-dir fairseq_selfteach, but not the teacher or the distillation task.) The result loads in
fairseq-generate and TransformerModel.from_pretrained without --user-dir, and without any
allow-listed global: its config is plain dicts, so torch's safe loader accepts it as is.
Its "selfteach" record names the source checkpoint (and sha256) and the training behind it: seed, updates
and seconds of the run (read from checkpoint_last.pt beside the source), the update of the saved best,
and --started-from; --no-training records a model cut from its teacher without training of its own.
"""
import argparse
import sys

from fairseq_selfteach.core import error_report
from fairseq_selfteach.core.checkpoint_io import CheckpointError, atomic_torch_save
from selfteach_pipeline.errors import SelfteachError


def plain_translation_arch(arch: str) -> str:
    from fairseq_selfteach.translation.archs import VARIANTS, variant_name

    ours = {variant_name(e, d) for e, d in VARIANTS}
    # our depth variants only change defaults that the config states explicitly
    return "transformer_iwslt_de_en" if arch in ours else arch


def _is_sentence_classifier(checkpoint: str) -> bool:
    """A BERT classifier (selfteach_bert: pooler, no decoder), whatever its arch name."""
    from fairseq_selfteach.core.checkpoint_io import load_checkpoint

    keys = load_checkpoint(checkpoint)["model"]
    return any(k.startswith("encoder.pooler.") for k in keys) and not any(k.startswith("decoder.") for k in keys)


def add_earlier_training(state: dict, earlier: str) -> None:
    """A training that continued another (a later stage of the online gradual schedule): its budget is
    both runs', so that the tables compare it with baselines of that many updates. `earlier` is the
    exported model of the run it continued (whose record already holds the runs before it)."""
    from fairseq_selfteach.core.checkpoint_io import load_checkpoint

    before = (load_checkpoint(earlier).get("selfteach") or {}).get("training")
    if not before:
        raise ValueError(f"--earlier-training {earlier}: not a model exported by export_student (no training record)")
    record = state["selfteach"]["training"]
    record["stage_updates"] = record["updates"]
    record["updates"] += before["updates"]
    record["train_seconds"] = round(record["train_seconds"] + before["train_seconds"], 1)


def export(checkpoint: str, out: str, encoder_layers=None, decoder_layers=None, started_from=None,
           trained=True, earlier=None, out_format: str = "fairseq") -> dict:
    import fairseq_selfteach  # noqa: F401  (registers the variants for the arch check)

    from fairseq_selfteach.core.export import plain_checkpoint

    if _is_sentence_classifier(checkpoint):
        # a BERT classifier: keep the first K encoder layers (online exit K), the pooler and heads;
        # the result is a `glue` task checkpoint (the model itself is the plugin's selfteach_bert)
        from fairseq_selfteach.classification.glue_task import GlueConfig

        if decoder_layers is not None:
            raise ValueError(f"{checkpoint} is a sentence classifier: it has no decoder layers")
        state = plain_checkpoint(
            checkpoint,
            keep_layers={"encoder.layers": encoder_layers},
            depth_options={"encoder.layers": "encoder_layers"},
            plain_arch=lambda arch: arch,
            plain_task="glue",
            plain_task_config=GlueConfig,
            plain_criterion="sentence_prediction",
            started_from=started_from,
            trained=trained,
        )
        # exit k's own head (--exit-heads) becomes the model's head; the other exits' heads go
        from fairseq_selfteach.classification.exit_heads import keep_exit_head

        kept = state["selfteach"]["encoder.layers_kept"]
        state["model"] = keep_exit_head(state["model"], state["cfg"]["model"], kept)
        if out_format == "hf":
            from fairseq_selfteach.classification.hf_export import write_hf_folder

            state["selfteach"]["hf"] = write_hf_folder(state, out, checkpoint)
            return state["selfteach"]
    elif out_format == "hf":
        raise ValueError(f"--format hf writes BERT students for transformers; {checkpoint} is a translation "
                         f"model: export it as a fairseq checkpoint (the default --format fairseq)")
    else:
        from fairseq.tasks.translation import TranslationConfig

        state = plain_checkpoint(
            checkpoint,
            keep_layers={"encoder.layers": encoder_layers, "decoder.layers": decoder_layers},
            depth_options={"encoder.layers": "encoder_layers", "decoder.layers": "decoder_layers"},
            plain_arch=plain_translation_arch,
            plain_task="translation",
            plain_task_config=TranslationConfig,
            plain_criterion="label_smoothed_cross_entropy",
            started_from=started_from,
            trained=trained,
        )
        # exit k's own final layer norm (--exit-layer-norms) becomes the decoder's; the others go
        from fairseq_selfteach.translation.exits import keep_exit_layer_norm

        state["model"] = keep_exit_layer_norm(state["model"], state["cfg"]["model"],
                                              state["selfteach"]["decoder.layers_kept"])
    if earlier:
        add_earlier_training(state, earlier)
    atomic_torch_save(state, out)
    return state["selfteach"]


def main(argv=None):
    error_report.install()  # a user's error is one line, no traceback, also inside fairseq's code
    return export_one(sys.argv[1:] if argv is None else list(argv))


def export_one(argv):
    p = argparse.ArgumentParser(
        prog="python -m fairseq_selfteach.cli.export_student", description=__doc__.splitlines()[0]
    )
    p.add_argument("--checkpoint", required=True, help="training checkpoint (offline or online)")
    p.add_argument("--out", required=True, help="where to write the plain fairseq checkpoint (--format hf: "
                   "the folder to write)")
    p.add_argument("--format", default="fairseq", choices=("fairseq", "hf"),
                   help="fairseq: a plain fairseq checkpoint (default); hf: a BERT student as a Hugging Face "
                   "transformers folder (config.json, model.safetensors, vocab.txt, tokenizer.json) that "
                   "BertModel / BertForSequenceClassification.from_pretrained load")
    p.add_argument(
        "--decoder-layers",
        type=int,
        default=None,
        help="keep the first K decoder layers (student exit K of an online model); default: all",
    )
    p.add_argument(
        "--encoder-layers", type=int, default=None, help="keep the first K encoder layers; default: all"
    )
    p.add_argument(
        "--started-from", default=None,
        help="what the model's training started from, in words (recorded for the results tables), e.g. "
        "\"teacher_dec4's first 2 layers\" or \"random initialisation\"",
    )
    p.add_argument(
        "--no-training", action="store_true",
        help="the model had no training of its own (a teacher cut to K layers): record 0 updates, no seed",
    )
    p.add_argument(
        "--earlier-training", default=None, metavar="EXPORTED.pt",
        help="the training continued the one behind this exported model (a later stage of the online "
        "gradual schedule): record the updates and seconds of both",
    )
    a = p.parse_args(argv)
    try:
        info = export(a.checkpoint, a.out, a.encoder_layers, a.decoder_layers, a.started_from,
                      not a.no_training, a.earlier_training, a.format)
    except (CheckpointError, SelfteachError, ValueError) as e:
        print(f"export_student: error: {e}", file=sys.stderr)
        return 2
    kept = ", ".join(f"{k.split('.')[0]} {v} layers" for k, v in info.items() if k.endswith("_kept"))
    t = info["training"]
    if "hf" in info:
        hf = info["hf"]
        labels = f", labels {', '.join(hf['labels'].values())}" if hf["labels"] else ""
        print(f"wrote {a.out}: a transformers BERT of {hf['layers']} layers, {hf['parameters']:,} parameters{labels} "
              f"(from {a.checkpoint}; trained {t['updates']} updates, seed {t['seed']})")
        return 0
    print(f"wrote {a.out}: {kept} (from {a.checkpoint}; trained {t['updates']} updates, "
          f"{t['train_seconds']} s, seed {t['seed']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
