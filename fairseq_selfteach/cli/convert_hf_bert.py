"""Convert a Hugging Face BERT checkpoint into a fairseq checkpoint of the selfteach_bert model.

    python -m fairseq_selfteach.cli.convert_hf_bert --hf-dir DIR --out OUT_DIR

DIR holds config.json, vocab.txt and the weights: model.safetensors, or pytorch_model.bin (read with
torch's safe loader, weights_only=True). Keys may carry the `bert.` prefix (BertForPreTraining,
BertForSequenceClassification) or not (BertModel); LayerNorm `gamma`/`beta` (old Google conversions)
are read as weight/bias. The pre-training heads (`cls.*`) and the `position_ids` buffer are not part
of the encoder and are skipped; a sequence classifier (`classifier.*`) becomes a classification head.
Anything else that is not a BERT encoder weight, a weight that is missing, or one of the wrong shape
is an error that names the key and the file.

OUT_DIR receives model.pt (arch bert_from_config with every size written out, task bert_encoder),
dict.txt (the BertDictionary: index i is WordPiece id i), and copies of config.json and vocab.txt.
Everything is checked before anything is written; model.pt, the file that marks a complete output,
is moved into place last, so a failed conversion never leaves an OUT_DIR/model.pt behind.
"""
import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Dict, Optional, Tuple

import torch

from fairseq_selfteach.classification.bert.dictionary import BertDictionary, BertDictionaryError
from fairseq_selfteach.classification.bert.hf_names import HF_LAYER_KEY, IN_LAYER, TOP_LEVEL, hf_key
from fairseq_selfteach.core import error_report
from fairseq_selfteach.core.checkpoint_io import atomic_torch_save, unreadable_checkpoint_message
from fairseq_selfteach.core.export import checkpoint_skeleton
from selfteach_pipeline.files import sha256_of_file, usual_file_mode

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
DEFAULT_HEAD = "sentence_classification_head"  # fairseq's sentence_prediction default head name

class ConversionError(RuntimeError):
    """A checkpoint that cannot be converted, with a message naming the file and the key."""


def fairseq_key(hf_key: str, head_name: str) -> Optional[str]:
    """Our state-dict key for an HF key; None for keys that are not encoder weights (skipped);
    KeyError for keys that are not BERT at all."""
    key = hf_key[len("bert."):] if hf_key.startswith("bert.") else hf_key
    if key.startswith("cls.") or key.endswith("position_ids"):
        return None
    # checkpoints converted from Google's TensorFlow release name LayerNorm parameters gamma/beta
    key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
    key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
    if key in TOP_LEVEL:
        return TOP_LEVEL[key]
    if key in ("classifier.weight", "classifier.bias"):
        return f"classification_heads.{head_name}.out_proj.{key.split('.')[-1]}"
    m = HF_LAYER_KEY.match(key)
    if m and m.group(2) in IN_LAYER:
        return f"encoder.layers.{m.group(1)}.{IN_LAYER[m.group(2)]}.{m.group(3)}"
    raise KeyError(hf_key)


def find_weights(hf_dir: str) -> str:
    for name in WEIGHT_FILES:
        path = os.path.join(hf_dir, name)
        if os.path.isfile(path):
            return path
    sharded = [n for n in os.listdir(hf_dir) if n.endswith(".index.json")]
    if sharded:
        raise ConversionError(
            f"{os.path.join(hf_dir, sharded[0])}: sharded checkpoints are not supported; "
            f"merge the shards into one {' or '.join(WEIGHT_FILES)}"
        )
    raise ConversionError(f"no weights in {hf_dir}: expected {' or '.join(WEIGHT_FILES)}")


def read_weights(path: str) -> Dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except Exception as e:  # safetensors' errors have no common base class
            raise ConversionError(f"cannot read weights {path}: {str(e).splitlines()[0]}") from e
    try:
        # weights_only=True: a pickle that would run code or build arbitrary objects is refused
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle and zip errors have no common base class
        # the facts only (it holds code, it is cut short): torch's message advises unsafe loading
        raise ConversionError(unreadable_checkpoint_message(path, e)) from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ConversionError(f"{path} is not a state dict of tensors")
    return state


def convert_state(
    hf_state: Dict[str, torch.Tensor], weights_path: str, head_name: str
) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Our state dict, and {our key: HF key} so that later errors can name the file's key."""
    state: Dict[str, torch.Tensor] = {}
    source: Dict[str, str] = {}
    unknown = []
    for hf_key, tensor in hf_state.items():
        try:
            key = fairseq_key(hf_key, head_name)
        except KeyError:
            unknown.append(hf_key)
            continue
        if key is None:
            continue
        if key in state:
            raise ConversionError(
                f"{weights_path}: {hf_key!r} and {source[key]!r} are the same weight ({key}); "
                f"keys must be all with or all without the 'bert.' prefix"
            )
        # fairseq trains in float32 (fp16 is fairseq's --fp16 business, not the file's)
        state[key] = tensor.float() if tensor.is_floating_point() else tensor
        source[key] = hf_key
    if unknown:
        raise ConversionError(
            f"{weights_path}: {len(unknown)} key(s) that are not BERT encoder weights: "
            f"{', '.join(sorted(unknown)[:8])}{' ...' if len(unknown) > 8 else ''}"
        )
    return state, source


def check_against_model(
    state, source, model_cfg: dict, dictionary, weights_path: str, head_name: str
) -> None:
    """The file must hold exactly the weights of the model config.json describes, in its shapes."""
    from omegaconf import OmegaConf

    from fairseq_selfteach.classification.bert.model import SelfteachBertModel

    head_key = f"classification_heads.{head_name}.out_proj.weight"
    # built on the meta device: shapes without allocating or initialising any weights
    with torch.device("meta"):
        model = SelfteachBertModel.build_from_dictionary(OmegaConf.create(model_cfg), dictionary)
        if head_key in state:
            model.register_classification_head(head_name, state[head_key].size(0))
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise ConversionError(
            f"{weights_path}: missing {len(missing)} weight(s) the config.json model needs, e.g. "
            + ", ".join(hf_key(k, head_name) or k for k in missing[:5])
        )
    extra = [k for k in state if k not in expected]
    if extra:
        # e.g. encoder.layer.7.* in a file whose config says 6 layers
        raise ConversionError(
            f"{weights_path}: weights the config.json model does not have: "
            + ", ".join(source[k] for k in extra[:5])
        )
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise ConversionError(
                f"{weights_path}: {source[key]!r} has shape {tuple(state[key].shape)}, "
                f"config.json implies {tuple(value.shape)}"
            )


def model_config(hf_config: dict) -> dict:
    from fairseq_selfteach.classification.bert.model import SelfteachBertConfig

    cfg = {f.name: f.default for f in dataclasses.fields(SelfteachBertConfig)}
    cfg.update(hf_config)
    # every size is written out: the checkpoint does not depend on where config.json was
    cfg.update({"_name": "bert_from_config", "arch": "bert_from_config", "bert_config": None})
    return cfg


def convert(hf_dir: str, out_dir: str, head_name: str = DEFAULT_HEAD) -> dict:
    from fairseq_selfteach.classification.bert.model import BertConfigError, read_hf_bert_config

    if not os.path.isdir(hf_dir):
        raise ConversionError(f"--hf-dir {hf_dir} is not a folder")
    config_path = os.path.join(hf_dir, "config.json")
    vocab_path = os.path.join(hf_dir, "vocab.txt")
    try:
        hf_fields = read_hf_bert_config(config_path)
        dictionary = BertDictionary.from_vocab(vocab_path)
    except (BertConfigError, BertDictionaryError) as e:
        raise ConversionError(str(e)) from e
    if len(dictionary) != hf_fields["vocab_size"]:
        raise ConversionError(
            f"{vocab_path} has {len(dictionary)} tokens but {config_path} says vocab_size "
            f"{hf_fields['vocab_size']}: they are not the same vocabulary"
        )
    with open(config_path, encoding="utf-8") as f:
        pad_token_id = json.load(f).get("pad_token_id", 0)
    if pad_token_id is not None and pad_token_id != dictionary.pad():
        raise ConversionError(
            f"{config_path} says pad_token_id {pad_token_id} but {dictionary.pad_word} is id "
            f"{dictionary.pad()} in {vocab_path}"
        )
    weights_path = find_weights(hf_dir)
    state, source = convert_state(read_weights(weights_path), weights_path, head_name)
    cfg_model = model_config(hf_fields)
    check_against_model(state, source, cfg_model, dictionary, weights_path, head_name)

    out_dir = os.path.abspath(out_dir)
    provenance = {
        "converted_from": os.path.abspath(weights_path),
        "source_sha256": sha256_of_file(weights_path),
        "source_config": os.path.abspath(config_path),
    }
    # the dictionary lives next to the checkpoint; arg_overrides={"data": DIR} after moving it
    cfg = {"model": cfg_model, "task": {"_name": "bert_encoder", "data": out_dir}}
    checkpoint = checkpoint_skeleton(cfg, state, "none", provenance)
    _write_output(out_dir, checkpoint, dictionary, config_path, vocab_path)
    return {
        "out": os.path.join(out_dir, "model.pt"),
        "weights": weights_path,
        "layers": cfg_model["encoder_layers"],
        "parameters": sum(v.numel() for v in state.values()),
    }


def _write_output(out_dir, checkpoint, dictionary, config_path, vocab_path) -> None:
    os.makedirs(out_dir, exist_ok=True)
    final = os.path.join(out_dir, "model.pt")
    staging = tempfile.mkdtemp(prefix=".tmp-convert-", dir=out_dir)
    try:
        dictionary.save(os.path.join(staging, "dict.txt"))
        shutil.copyfile(config_path, os.path.join(staging, "config.json"))
        shutil.copyfile(vocab_path, os.path.join(staging, "vocab.txt"))
        atomic_torch_save(checkpoint, os.path.join(staging, "model.pt"))
        # temporary files are created private (0600); the outputs get the usual permissions
        for name in ("dict.txt", "model.pt"):
            os.chmod(os.path.join(staging, name), usual_file_mode())
        # an older model.pt goes first, so no moment shows it beside a new dict.txt
        if os.path.exists(final):
            os.remove(final)
        for name in ("dict.txt", "config.json", "vocab.txt", "model.pt"):
            os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv=None) -> int:
    error_report.install()  # a user's error is one line, no traceback, also inside fairseq's code
    p = argparse.ArgumentParser(
        prog="python -m fairseq_selfteach.cli.convert_hf_bert", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--hf-dir", required=True,
        help="folder with config.json, vocab.txt and model.safetensors or pytorch_model.bin",
    )
    p.add_argument("--out", required=True, help="folder to write model.pt, dict.txt, config.json, vocab.txt")
    p.add_argument(
        "--classification-head-name", default=DEFAULT_HEAD,
        help="name of the head made from a sequence classifier's classifier.* weights, if any",
    )
    a = p.parse_args(argv)
    try:
        info = convert(a.hf_dir, a.out, a.classification_head_name)
    except (ConversionError, OSError) as e:
        print(f"convert_hf_bert: error: {e}", file=sys.stderr)
        return 1
    print(
        f"convert_hf_bert: wrote {info['out']} ({info['layers']} layers, "
        f"{info['parameters']:,} parameters, from {info['weights']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
