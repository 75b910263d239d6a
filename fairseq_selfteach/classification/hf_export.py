"""A BERT student as a Hugging Face transformers folder (export_student --format hf).

    config.json          BertConfig: num_hidden_layers = the kept layers; a classifier's id2label/label2id
                         from the task's meta.json (STS-B: one score, problem_type regression)
    model.safetensors    BertModel's weights (`bert.` prefix and `classifier.*` for a classifier, which
                         BertModel.from_pretrained reads too)
    vocab.txt            the WordPiece vocabulary of the checkpoint's dictionary (line i = id i)
    tokenizer.json       the tokenizer the data was binarised with (tokenizers' BertWordPieceTokenizer on
                         that vocabulary, its lower-casing), with tokenizer_config.json and
                         special_tokens_map.json, so AutoTokenizer loads it

transformers itself is not needed: the files are written directly (safetensors, json). What would score
differently in transformers is refused: a mean-pooled head (BertForSequenceClassification pools [CLS]),
or more than one classification head. The folder appears complete or not at all.
"""
import json
import os
from typing import Dict, Optional

import torch

from fairseq_selfteach.classification.bert.config import HF_CONFIG_FIELDS
from fairseq_selfteach.classification.bert.hf_names import hf_key
from selfteach_pipeline.errors import SelfteachError
from selfteach_pipeline.files import staged_dir
from selfteach_pipeline.glue_format import is_cased_vocabulary, read_meta


class HfExportError(SelfteachError):
    pass


def _heads(model_state: Dict) -> list:
    return sorted({k.split(".")[1] for k in model_state if k.startswith("classification_heads.")})


def hf_state_dict(model_state: Dict, model_cfg: Dict, source: str) -> Dict[str, torch.Tensor]:
    heads = _heads(model_state)
    if len(heads) > 1:
        raise HfExportError(f"{source} has {len(heads)} classification heads ({', '.join(heads)}); "
                            f"--format hf writes one BertForSequenceClassification")
    if heads and str(model_cfg.get("pooling", "cls")) == "mean":
        raise HfExportError(
            f"{source}: its head pools the mean of the tokens (--pooling mean), but transformers' "
            f"BertForSequenceClassification pools [CLS], so the exported model would score differently; "
            f"not exported (train the student with --pooling cls to deploy it in transformers)")
    prefix = "bert." if heads else ""
    out = {}
    for key, value in model_state.items():
        name = hf_key(key, heads[0] if heads else "")
        if name is None:
            raise HfExportError(f"{source}: weight {key} has no place in transformers' BERT")
        out[name if name.startswith("classifier.") else prefix + name] = value.detach().float().contiguous()
    return out


def hf_config(model_cfg: Dict, layers: int, meta: Optional[dict], pad: int) -> dict:
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
              "position_embedding_type": "absolute", "initializer_range": 0.02, "pad_token_id": pad}
    for hf_name, (ours, _) in HF_CONFIG_FIELDS.items():
        config[hf_name] = model_cfg.get(ours)
    config["num_hidden_layers"] = layers
    if meta is not None:
        config["architectures"] = ["BertForSequenceClassification"]
        if meta["regression"]:
            labels = ["LABEL_0"]
            config["problem_type"] = "regression"
        else:
            labels = [str(x) for x in meta["labels"]]
            config["problem_type"] = "single_label_classification"
        config["id2label"] = {str(i): name for i, name in enumerate(labels)}
        config["label2id"] = {name: i for i, name in enumerate(labels)}
    return config


def _lowercase(meta: Optional[dict], vocab) -> bool:
    """As the data was binarised (meta.json); for a converted model (no meta.json), as
    preprocess/glue_binarize.py would decide from its folder."""
    if meta is not None and "lowercase" in meta:
        return bool(meta["lowercase"])
    return not is_cased_vocabulary(vocab)


def write_hf_folder(state: dict, out: str, source: str) -> dict:
    """Write the plain classifier checkpoint `state` (export_student's, already cut) as an HF folder."""
    from fairseq_selfteach.classification.bert.dictionary import BertDictionary

    model_cfg, model_state = state["cfg"]["model"], state["model"]
    data = (state["cfg"].get("task") or {}).get("data")
    if not data or not os.path.isfile(os.path.join(data, "dict.txt")):
        raise HfExportError(f"{source}: its data folder {data} (the task's, with dict.txt) is not there: the "
                            f"vocabulary comes from it")
    dictionary = BertDictionary.load(os.path.join(data, "dict.txt"))
    heads = _heads(model_state)
    meta = read_meta(data) if heads else None
    weights = hf_state_dict(model_state, model_cfg, source)
    layers = int(model_cfg["encoder_layers"])  # export_student wrote the kept depth
    rows = model_state["encoder.embed_tokens.weight"].size(0)
    if rows != len(dictionary):
        raise HfExportError(f"{source}: {rows} token embeddings but {os.path.join(data, 'dict.txt')} has "
                            f"{len(dictionary)} symbols: not the model's vocabulary")
    config = hf_config(model_cfg, layers, meta, dictionary.pad())
    if config["vocab_size"] is None:
        config["vocab_size"] = len(dictionary)
    vocab = list(dictionary.symbols)
    lowercase = _lowercase(meta, vocab)

    from safetensors.torch import save_file
    from tokenizers import BertWordPieceTokenizer

    with staged_dir(os.path.abspath(out)) as tmp:
        save_file(weights, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        _write_json(os.path.join(tmp, "config.json"), config)
        with open(os.path.join(tmp, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in vocab))
        tok = BertWordPieceTokenizer(os.path.join(tmp, "vocab.txt"), lowercase=lowercase)
        tok.save(os.path.join(tmp, "tokenizer.json"))
        specials = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                    "mask_token": "[MASK]"}
        _write_json(os.path.join(tmp, "special_tokens_map.json"), specials)
        _write_json(os.path.join(tmp, "tokenizer_config.json"), {
            "tokenizer_class": "BertTokenizer", "do_lower_case": lowercase,
            "model_max_length": config["max_position_embeddings"], **specials})
    return {"layers": layers, "labels": config.get("id2label"), "lowercase": lowercase,
            "parameters": sum(v.numel() for v in weights.values())}


def _write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
