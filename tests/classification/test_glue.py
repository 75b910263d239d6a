"""GLUE: binarisation (preprocess/glue_binarize.py), the `glue` fairseq task, GLUE metrics and an
end-to-end fine-tuning of the real MiniLM on real movie-review sentiment snippets.

Token ids are checked against the HF `tokenizers` encoding made from the MiniLM package's own
tokenizer.json (BertNormalizer + WordPiece + [CLS]/[SEP] template), which is independent of the way
glue_binarize builds its tokenizer from vocab.txt.
"""
import json
import math
import os
import re
import struct
import subprocess
import sys

import glue_binarize  # preprocess/ is on pytest's pythonpath
import numpy as np
import pytest
import torch

from tests.helpers import REPO, USER_DIR, run, train_metrics, valid_metrics

tokenizers = pytest.importorskip("tokenizers")

BINARIZE = os.path.join(REPO, "preprocess", "glue_binarize.py")
SNIPPETS = os.path.join(REPO, "preprocess", "sentiment_snippets.py")
MAX_LEN = 16  # small, so that some test inputs are truncated

# ---------------------------------------------------------------------------------------------
# small GLUE folders in the real layouts (header rows, column counts, label columns)

SST2_TRAIN = [
    ("it 's a charming and often affecting journey .", 1),
    ("unflinchingly bleak and desperate", 0),
    ("The Rock is destined to be the 21st Century's new ''Conan''.", 1),
    ("Café déjà vu: a naïve résumé of 中文 cinema 🎬", 0),
    ("an extremely long sentence that certainly goes on and on well past the sixteen token limit "
     "we set for this test", 1),
]
SST2_DEV = [("a masterpiece four years in the making", 1), ("the plot is nothing but boilerplate clichés", 0),
            ("Not bad.", 1)]

MRPC_HEADER = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"
MRPC_TRAIN = [
    ("1", "Amrozi accused his brother, whom he called \"the witness\", of deliberately distorting his evidence.",
     "Referring to him as only \"the witness\", Amrozi accused his brother of deliberately distorting his evidence."),
    ("0", "Yucaipa owned Dominick's before selling the chain to Safeway in 1998 for $2.5 billion.",
     "Yucaipa bought Dominick's in 1995 for $693 million and sold it to Safeway for $1.8 billion in 1998."),
    ("1", "Short one.", "A much longer second sentence that will need to be cut by the longest first rule."),
]
MRPC_DEV = [("1", "He said the foodservice pie business doesn't fit.", "The pie business does not fit, he said.")]

STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
STSB_TRAIN = [
    ("A plane is taking off.", "An air plane is taking off.", "5.000"),
    ("A man is playing a large flute.", "A man is playing a flute.", "3.800"),
    ("A man is spreading shreded cheese on a pizza.", "A man is spreading shredded cheese on an uncooked pizza.",
     "3.800"),
    ("Three men are playing chess.", "Two men are playing chess.", "2.600"),
    ("A woman is dancing.", "A man is talking.", "0.000"),
]
STSB_DEV = [
    ("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", "5.000"),
    ("A young child is riding a horse.", "A child is riding a horse.", "4.750"),
    ("A man is feeding a mouse to a snake.", "The man is feeding a mouse to the snake.", "5.000"),
    ("A woman is playing the guitar.", "A man is playing guitar.", "2.400"),
    ("A woman is slicing an onion.", "A man is cutting up a cucumber.", "0.333"),
]
COLA_TRAIN = [
    ("gj04", "1", "", "Our friends won't buy this analysis, let alone the next one we propose."),
    ("gj04", "0", "*", "They drank the pub."),
    ("gj04", "1", "", "The sailors rode the breeze clear of the rocks."),
]
COLA_DEV = [("gj04", "0", "*", "The more we study verbs, the crazier they get get."),
            ("gj04", "1", "", "Day by day the facts are getting murkier.")]


def _lines(rows, header=None, crlf_row=None):
    out = [header] if header is not None else []
    out += ["\t".join(r) for r in rows]
    text = ""
    for i, line in enumerate(out):
        text += line + ("\r\n" if i == crlf_row else "\n")
    return text


def sst2_files():
    return {
        "train.tsv": _lines([(s, str(y)) for s, y in SST2_TRAIN], "sentence\tlabel", crlf_row=2),
        "dev.tsv": _lines([(s, str(y)) for s, y in SST2_DEV], "sentence\tlabel"),
        "test.tsv": _lines([(str(i), s) for i, (s, _) in enumerate(SST2_DEV)], "index\tsentence"),
    }


def mrpc_files():
    def rows(data):
        return [(q, str(100 + i), str(200 + i), a, b) for i, (q, a, b) in enumerate(data)]

    return {"train.tsv": _lines(rows(MRPC_TRAIN), MRPC_HEADER), "dev.tsv": _lines(rows(MRPC_DEV), MRPC_HEADER)}


def stsb_files():
    def rows(data):
        return [(str(i), "main-captions", "MSRvid", "2012test", f"{i:04d}", "none", "none", a, b, s)
                for i, (a, b, s) in enumerate(data)]

    return {"train.tsv": _lines(rows(STSB_TRAIN), STSB_HEADER), "dev.tsv": _lines(rows(STSB_DEV), STSB_HEADER)}


def cola_files():
    return {"train.tsv": _lines(COLA_TRAIN), "dev.tsv": _lines(COLA_DEV)}


def mnli_files():
    train_header = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
    dev_header = train_header.replace("label1\tgold_label", "label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label")

    def rows(pairs, dev):
        out = []
        for i, (a, b, y) in enumerate(pairs):
            labels = [y] * (5 if dev else 1)
            out.append((str(i), "1", f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a, b, *labels, y))
        return out

    train = [("The cat sat.", "A cat is sitting.", "entailment"), ("It rained.", "It was dry.", "contradiction"),
             ("He left early.", "He was tired.", "neutral")]
    matched = [("She sang.", "Someone sang.", "entailment")]
    mismatched = [("The shop closed.", "The shop is open.", "contradiction"), ("We ate.", "We were hungry.", "neutral")]
    return {"train.tsv": _lines(rows(train, False), train_header),
            "dev_matched.tsv": _lines(rows(matched, True), dev_header),
            "dev_mismatched.tsv": _lines(rows(mismatched, True), dev_header)}


def write_files(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, content in files.items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(os.path.join(folder, name), mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as f:
            f.write(content)
    return str(folder)



@pytest.fixture(scope="module")
def reference_tokenizer(minilm_dir):
    tok = tokenizers.Tokenizer.from_file(os.path.join(minilm_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_LEN, strategy="longest_first")
    return tok


def binarize_args(task, glue_dir, out, vocab, *extra):
    """glue_binarize.py's command line (as strings, for its main in-process too)."""
    return [str(a) for a in ("--task", task, "--glue-dir", glue_dir, "--vocab", vocab, "--out", out,
                             "--max-len", MAX_LEN, *extra)]


def binarize_cli(task, glue_dir, out, vocab, *extra, check=True):
    return run(["python", BINARIZE, *binarize_args(task, glue_dir, out, vocab, *extra)], check=check)


@pytest.fixture(scope="module")
def glue_bins(tmp_path_factory, minilm_dir):
    """SST-2, MRPC, STS-B, CoLA and MNLI folders in the real layouts, binarised by the CLI."""
    root = tmp_path_factory.mktemp("glue")
    vocab = os.path.join(minilm_dir, "vocab.txt")
    out = {}
    for task, files in (("SST-2", sst2_files()), ("MRPC", mrpc_files()), ("STS-B", stsb_files()),
                        ("CoLA", cola_files()), ("MNLI", mnli_files())):
        raw = write_files(root / "raw" / task, files)
        p = binarize_cli(task, raw, root / "bin" / task, vocab)
        out[task] = {"raw": raw, "bin": str(root / "bin" / task), "stdout": p.stdout}
    return out


def _read(prefix):
    from fairseq.data.indexed_dataset import MMapIndexedDataset

    ds = MMapIndexedDataset(prefix)
    return [ds[i].tolist() for i in range(len(ds))]


def _meta(bin_dir):
    with open(os.path.join(bin_dir, "meta.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# binarisation


@pytest.mark.parametrize(
    "task,split,examples",
    [
        ("SST-2", "train", [(s, None) for s, _ in SST2_TRAIN]),
        ("SST-2", "valid", [(s, None) for s, _ in SST2_DEV]),
        ("SST-2", "test", [(s, None) for s, _ in SST2_DEV]),
        ("MRPC", "train", [(a, b) for _, a, b in MRPC_TRAIN]),
        ("STS-B", "valid", [(a, b) for a, b, _ in STSB_DEV]),
        ("CoLA", "train", [(r[3], None) for r in COLA_TRAIN]),
    ],
)
def test_token_and_segment_ids_equal_hf_tokenizers(glue_bins, reference_tokenizer, task, split, examples):
    prefix = os.path.join(glue_bins[task]["bin"], split)
    tokens, segments = _read(prefix + ".tokens"), _read(prefix + ".segments")
    assert len(tokens) == len(examples)
    truncated = 0
    for (a, b), ids, seg in zip(examples, tokens, segments):
        enc = reference_tokenizer.encode(a) if b is None else reference_tokenizer.encode(a, b)
        assert ids == enc.ids and seg == enc.type_ids
        assert ids[0] == 101 and ids[-1] == 102 and len(ids) <= MAX_LEN  # [CLS] ... [SEP]
        if b is not None:  # [CLS] a [SEP] (segment 0) b [SEP] (segment 1)
            first_sep = ids.index(102)
            assert set(seg[: first_sep + 1]) == {0} and set(seg[first_sep + 1:]) == {1}
        truncated += bool(enc.overflowing)
    assert _meta(glue_bins[task]["bin"])["splits"][split]["truncated"] == truncated


def test_truncation_is_longest_first_and_counted(glue_bins, reference_tokenizer):
    meta = _meta(glue_bins["MRPC"]["bin"])
    assert meta["splits"]["train"]["truncated"] >= 2 and meta["truncation"] == "longest_first"
    # "Short one." keeps all its tokens; the long second sentence is the one cut
    ids = _read(os.path.join(glue_bins["MRPC"]["bin"], "train.tokens"))[2]
    assert len(ids) == MAX_LEN and ids[:5] == reference_tokenizer.encode("Short one.").ids[:4] + [102]
    assert _meta(glue_bins["SST-2"]["bin"])["splits"]["train"]["truncated"] >= 1


def test_labels_and_meta(glue_bins):
    sst = _meta(glue_bins["SST-2"]["bin"])
    assert sst["task"] == "SST-2" and sst["num_classes"] == 2 and sst["labels"] == ["0", "1"]
    assert not sst["regression"] and sst["max_len"] == MAX_LEN and sst["lowercase"] is True
    assert {s: v["examples"] for s, v in sst["splits"].items()} == {"train": 5, "valid": 3, "test": 3}
    assert sst["splits"]["test"]["labelled"] is False
    assert not os.path.exists(os.path.join(glue_bins["SST-2"]["bin"], "test.labels.bin"))
    assert [y[0] for y in _read(os.path.join(glue_bins["SST-2"]["bin"], "train.labels"))] == [y for _, y in SST2_TRAIN]
    assert [y[0] for y in _read(os.path.join(glue_bins["MRPC"]["bin"], "train.labels"))] == [1, 0, 1]
    assert [y[0] for y in _read(os.path.join(glue_bins["CoLA"]["bin"], "valid.labels"))] == [0, 1]
    # STS-B: float scores, exact (float64 bits in the int64 dataset)
    stsb = _meta(glue_bins["STS-B"]["bin"])
    assert stsb["regression"] and stsb["num_classes"] == 1 and stsb["labels"] is None
    bits = [y[0] for y in _read(os.path.join(glue_bins["STS-B"]["bin"], "valid.labels"))]
    assert [struct.unpack("<d", struct.pack("<q", b))[0] for b in bits] == [float(s) for _, _, s in STSB_DEV]
    # MNLI: three labels, matched and mismatched dev sets
    mnli = _meta(glue_bins["MNLI"]["bin"])
    assert mnli["labels"] == ["contradiction", "entailment", "neutral"]
    assert {s: v["examples"] for s, v in mnli["splits"].items()} == {"train": 3, "valid": 1, "valid_mismatched": 2}
    assert [y[0] for y in _read(os.path.join(glue_bins["MNLI"]["bin"], "valid_mismatched.labels"))] == [0, 2]
    # the dictionary: index = WordPiece id
    with open(os.path.join(glue_bins["SST-2"]["bin"], "dict.txt"), encoding="utf-8") as f:
        symbols = [line.rsplit(" ", 1)[0] for line in f.read().split("\n")[:-1]]
    with open(sst["vocab"], encoding="utf-8") as f:
        assert symbols == f.read().split("\n")[:-1]


def _replace_row(text, lineno, new):
    lines = text.split("\n")
    lines[lineno - 1] = new
    return "\n".join(lines)


MALFORMED = {
    "wrong column count": ("SST-2", lambda f: dict(f, **{"train.tsv": _replace_row(f["train.tsv"], 3, "no label column")}),
                           "train.tsv:3:", "column"),
    "extra column": ("MRPC", lambda f: dict(f, **{"dev.tsv": f["dev.tsv"] + "1\t1\t2\ta\tb\textra\n"}),
                     "dev.tsv:3:", "column"),
    "label outside the set": ("SST-2", lambda f: dict(f, **{"dev.tsv": _replace_row(f["dev.tsv"], 4, "fine\t2")}),
                              "dev.tsv:4:", "label"),
    "MNLI label": ("MNLI", lambda f: dict(f, **{"dev_mismatched.tsv": f["dev_mismatched.tsv"].replace(
        "\tneutral\tneutral\tneutral\tneutral\tneutral\tneutral", "\tneutral\tneutral\tneutral\tneutral\tneutral\tmaybe")}),
        "dev_mismatched.tsv:3:", "label"),
    "STS-B score not a number": ("STS-B", lambda f: dict(f, **{"train.tsv": f["train.tsv"].replace("3.800", "high", 1)}),
                                 "train.tsv:3:", "label"),
    "STS-B score out of range": ("STS-B", lambda f: dict(f, **{"dev.tsv": f["dev.tsv"].replace("0.333", "7.5")}),
                                 "dev.tsv:6:", "label"),
    "CoLA label": ("CoLA", lambda f: dict(f, **{"train.tsv": f["train.tsv"].replace("gj04\t0\t*", "gj04\tx\t*")}),
                   "train.tsv:2:", "label"),
    "empty file": ("SST-2", lambda f: dict(f, **{"dev.tsv": ""}), "dev.tsv:1:", "empty"),
    "header only": ("SST-2", lambda f: dict(f, **{"train.tsv": "sentence\tlabel\n"}), "train.tsv:1:", "no rows"),
    "not UTF-8": ("CoLA", lambda f: dict(f, **{"dev.tsv": f["dev.tsv"].encode() + b"gj04\t1\t\tna\xefve caf\xe9\n"}),
                  "dev.tsv:3:", "UTF-8"),
    "missing file": ("MRPC", lambda f: {"train.tsv": f["train.tsv"]}, "dev.tsv", "not found"),
}
MAKERS = {"SST-2": sst2_files, "MRPC": mrpc_files, "STS-B": stsb_files, "CoLA": cola_files, "MNLI": mnli_files}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_stops_with_file_and_line(tmp_path, minilm_dir, capsys, case):
    # in-process, through the CLI's own main (its exit code, its stderr): a process per case would spend
    # its 4 s importing fairseq; test_failed_run_keeps_the_previous_output refuses through the real CLI
    task, corrupt, where, what = MALFORMED[case]
    raw = write_files(tmp_path / "raw", corrupt(MAKERS[task]()))
    out = tmp_path / "out" / "bin"
    code = glue_binarize.main(binarize_args(task, raw, out, os.path.join(minilm_dir, "vocab.txt")))
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert where in err and what in err, err
    assert os.path.join(raw, where.split(":")[0]) in err  # the full path of the file
    assert not out.exists()
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []  # no temporary left


def test_failed_run_keeps_the_previous_output(tmp_path, minilm_dir):
    vocab = os.path.join(minilm_dir, "vocab.txt")
    raw = write_files(tmp_path / "raw", sst2_files())
    out = tmp_path / "bin"
    binarize_cli("SST-2", raw, out, vocab)
    before = _meta(out)
    write_files(tmp_path / "raw", {"dev.tsv": b"sentence\tlabel\nbad \xff byte\t1\n"})
    p = binarize_cli("SST-2", raw, out, vocab, check=False)
    assert p.returncode == 1 and "dev.tsv:2:" in p.stderr
    assert _meta(out) == before and sorted(os.listdir(tmp_path)) == ["bin", "raw"]


# ---------------------------------------------------------------------------------------------
# the task: sample contract, nothing dropped


def _task(bin_dir):
    from omegaconf import OmegaConf

    from fairseq_selfteach.classification.glue_task import GlueConfig, GlueTask

    return GlueTask.setup_task(OmegaConf.structured(GlueConfig(data=bin_dir)))


@pytest.mark.parametrize("task_name", ["SST-2", "MRPC", "STS-B"])
def test_sample_contract(glue_bins, task_name):
    task = _task(glue_bins[task_name]["bin"])
    ds = task.load_dataset("train")
    batch = ds.collater([ds[i] for i in range(len(ds))])
    assert set(batch) == {"id", "nsentences", "ntokens", "net_input", "target"}
    assert set(batch["net_input"]) == {"src_tokens", "segment_labels", "src_lengths"}
    tokens, segments, lengths = (batch["net_input"][k] for k in ("src_tokens", "segment_labels", "src_lengths"))
    assert tokens.dtype == segments.dtype == lengths.dtype == torch.long
    assert tokens.shape == segments.shape and tokens.size(0) == len(ds) == batch["nsentences"]
    assert (tokens[:, 0] == task.dictionary.bos()).all() and task.dictionary.bos_word == "[CLS]"
    pad = task.dictionary.pad()
    for row, seg, n in zip(tokens, segments, lengths):  # right-padded, segment 0 on padding
        assert (row[:n] != pad).all() and (row[n:] == pad).all() and (seg[n:] == 0).all()
    assert batch["ntokens"] == int(lengths.sum())
    prefix = os.path.join(glue_bins[task_name]["bin"], "train")
    assert [t[:n].tolist() for t, n in zip(tokens, lengths)] == [_read(prefix + ".tokens")[i] for i in batch["id"]]
    target = batch["target"]
    assert target.shape == (len(ds),)
    if task_name == "STS-B":
        assert target.dtype == torch.float32 and task.regression and task.num_classes == 1
        assert target.tolist() == pytest.approx([float(STSB_TRAIN[i][2]) for i in batch["id"]])
    else:
        assert target.dtype == torch.long and task.num_classes == 2


def test_no_batch_is_dropped(glue_bins):
    """fairseq drops a last partial batch that is not a multiple of --required-batch-size-multiple."""
    task = _task(glue_bins["SST-2"]["bin"])
    ds = task.load_dataset("train")  # 5 examples
    for multiple, bsz in ((8, 2), (8, 4), (4, 3)):
        itr = task.get_batch_iterator(ds, max_sentences=bsz, required_batch_size_multiple=multiple)
        ids = sorted(i for b in itr.next_epoch_itr(shuffle=False) for i in b["id"].tolist())
        assert ids == list(range(len(ds)))
        itr = task.get_batch_iterator(ds, None, bsz, None, False, multiple)  # positional, as some callers
        assert sorted(i for b in itr.next_epoch_itr(shuffle=False) for i in b["id"].tolist()) == ids


def test_task_refuses_contradicting_options(glue_bins):
    from omegaconf import OmegaConf

    from fairseq_selfteach.classification.glue_task import GlueConfig, GlueDataError, GlueTask

    bin_dir = glue_bins["SST-2"]["bin"]
    for kwargs, msg in (({"glue_task": "CoLA"}, "meta.json is SST-2"), ({"num_classes": 3}, "num-classes"),
                        ({"regression_target": True}, "classification"), ({"max_positions": 8}, "max_len")):
        with pytest.raises(GlueDataError, match=msg):
            GlueTask.setup_task(OmegaConf.structured(GlueConfig(data=bin_dir, **kwargs)))


def _tiny_model(task):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"_name": "selfteach_bert", "encoder_layers": 1, "encoder_embed_dim": 32,
                            "encoder_attention_heads": 2, "encoder_ffn_embed_dim": 64, "dropout": 0.0,
                            "attention_dropout": 0.0, "max_position_embeddings": 64})
    torch.manual_seed(0)
    return task.build_model(cfg).eval()


def test_build_model_refuses_another_vocabulary(glue_bins, minilm_dir, tmp_path):
    """A checkpoint's dict.txt (next to its --bert-config) must be the data's."""
    import shutil

    from omegaconf import OmegaConf

    from fairseq_selfteach.classification.glue_task import GlueDataError

    task = _task(glue_bins["SST-2"]["bin"])
    shutil.copy(os.path.join(minilm_dir, "config.json"), tmp_path / "config.json")
    with open(os.path.join(glue_bins["SST-2"]["bin"], "dict.txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    lines[2000], lines[2001] = lines[2001], lines[2000]
    (tmp_path / "dict.txt").write_text("\n".join(lines), encoding="utf-8")
    cfg = OmegaConf.create({"_name": "bert_from_config", "bert_config": str(tmp_path / "config.json")})
    with pytest.raises(GlueDataError, match="first at index 2000"):
        task.build_model(cfg)


def _save_tiny_checkpoint(task, path, drop_heads=False):
    """A fine-tuned-looking checkpoint (fairseq's layout) of a tiny random model."""
    from omegaconf import OmegaConf

    from fairseq_selfteach.core.checkpoint_io import atomic_torch_save

    model = _tiny_model(task)
    state = {k: v for k, v in model.state_dict().items() if not (drop_heads and k.startswith("classification_heads."))}
    model_cfg = {"_name": "selfteach_bert", "encoder_layers": 1, "encoder_embed_dim": 32, "encoder_attention_heads": 2,
                 "encoder_ffn_embed_dim": 64, "dropout": 0.0, "attention_dropout": 0.0, "max_position_embeddings": 64}
    atomic_torch_save({
        "args": None,
        "cfg": {"model": model_cfg, "task": OmegaConf.to_container(task.cfg)},
        "model": state,
        "optimizer_history": [{"criterion_name": "SentencePredictionCriterion", "optimizer_name": "none",
                               "lr_scheduler_state": {"best": None}, "num_updates": 0}],
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0}},
        "task_state": {},
    }, str(path))
    return model


def test_evaluate_glue_scores_every_example(glue_bins, tmp_path):
    from sklearn.metrics import matthews_corrcoef

    from selfteach_pipeline.glue_metrics import compute_metrics

    bin_dir = glue_bins["CoLA"]["bin"]
    task = _task(bin_dir)
    model = _save_tiny_checkpoint(task, tmp_path / "ft.pt")
    p = run(["python", "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", bin_dir, "--path", tmp_path / "ft.pt",
             "--subset", "train", "--json", tmp_path / "r.json", "--predictions", tmp_path / "p.tsv", "--cpu"])
    assert "3/3 scored" in p.stdout
    with open(tmp_path / "r.json") as f:
        result = json.load(f)
    with open(tmp_path / "p.tsv") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    ds = task.load_dataset("train")
    batch = ds.collater([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        logits = model(**batch["net_input"], classification_head_name="sentence_classification_head")[0]
    preds = [0] * len(ds)
    for i, pred in zip(batch["id"].tolist(), logits.argmax(-1).tolist()):
        preds[i] = pred
    assert rows == [[str(i), str(y)] for i, y in enumerate(preds)]
    targets = [int(r[1]) for r in COLA_TRAIN]
    assert result["scored"] == result["examples"] == 3 and result["task"] == "CoLA"
    assert result["metrics"] == pytest.approx(
        {k: v for k, v in compute_metrics("CoLA", preds, targets).items() if k != "glue_score"})
    assert result["glue_score"] == pytest.approx(100 * matthews_corrcoef(targets, preds))


def test_evaluate_glue_unlabelled_split_and_refusals(glue_bins, tmp_path):
    bin_dir = glue_bins["SST-2"]["bin"]
    task = _task(bin_dir)
    _save_tiny_checkpoint(task, tmp_path / "ft.pt")
    p = run(["python", "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", bin_dir, "--path", tmp_path / "ft.pt",
             "--subset", "test", "--predictions", tmp_path / "p.tsv", "--cpu"])
    assert "(unlabelled)" in p.stdout
    with open(tmp_path / "p.tsv") as f:
        lines = f.read().split("\n")
    assert lines[0] == "index\tprediction" and len(lines) == 5 and lines[-1] == ""
    assert [line.split("\t")[0] for line in lines[1:4]] == ["0", "1", "2"]
    assert all(line.split("\t")[1] in ("0", "1") for line in lines[1:4])
    # a model without the head (e.g. the converted pretrained BERT) is refused, not scored at random
    _save_tiny_checkpoint(task, tmp_path / "nohead.pt", drop_heads=True)
    p = run(["python", "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", bin_dir, "--path", tmp_path / "nohead.pt",
             "--cpu"], check=False)
    assert p.returncode == 1 and "no classification head" in p.stderr
    # another task's data: the head has the wrong number of outputs
    p = run(["python", "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", glue_bins["MNLI"]["bin"], "--path",
             tmp_path / "ft.pt", "--cpu"], check=False)
    assert p.returncode == 1 and "has 2 outputs" in p.stderr


def _criterion(task, name="sentence_prediction", **extra):
    from omegaconf import OmegaConf

    from fairseq.criterions import CRITERION_DATACLASS_REGISTRY

    # the criterion's full config, as fairseq builds it from the command line
    cfg = OmegaConf.merge(OmegaConf.structured(CRITERION_DATACLASS_REGISTRY[name]), {"_name": name, **extra})
    return task.build_criterion(cfg)


def test_regression_target_must_match_the_data(glue_bins):
    """The task checks --regression-target against meta.json (it no longer rewrites the criterion's)."""
    from fairseq_selfteach.classification.glue_task import GlueDataError

    task = _task(glue_bins["STS-B"]["bin"])
    with pytest.raises(GlueDataError, match="regression task: pass --regression-target"):
        _criterion(task)
    assert _criterion(task, regression_target=True).regression_target
    with pytest.raises(GlueDataError, match="classification task: drop --regression-target"):
        _criterion(_task(glue_bins["SST-2"]["bin"]), regression_target=True)


# fairseq's own criterion (the task scores an extra forward) and ours (the counts are in its log)
@pytest.mark.parametrize("criterion_name", ["sentence_prediction", "sentence_prediction_self_distill"])
@pytest.mark.parametrize("task_name", ["SST-2", "MNLI", "STS-B"])
def test_valid_step_metrics_equal_sklearn_scipy(glue_bins, task_name, criterion_name):
    """Through the task's valid_step and reduce_metrics, batch by batch, as fairseq validates."""
    from fairseq.logging import metrics
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score

    task = _task(glue_bins[task_name]["bin"])
    model = _tiny_model(task)
    assert "sentence_classification_head" in model.classification_heads
    # report_mcc exercises label_dictionary
    criterion = _criterion(task, criterion_name, regression_target=task.regression,
                           report_mcc=not task.regression)
    assert criterion.regression_target == task.regression
    split = "valid_mismatched" if task_name == "MNLI" else "train"
    ds = task.load_dataset(split)
    logs, preds, targets = [], [], []
    for sample in task.get_batch_iterator(ds, max_sentences=1, required_batch_size_multiple=8).next_epoch_itr(
            shuffle=False):
        _loss, _size, log = task.valid_step(sample, model, criterion)
        logs.append(log)
        with torch.no_grad():
            logits = model(**sample["net_input"], classification_head_name="sentence_classification_head")[0]
        preds += (logits.view(-1) if task.regression else logits.argmax(-1)).tolist()
        targets += sample["target"].tolist()
    assert len(logs) > 1 and len(preds) == len(ds)
    with metrics.aggregate(new_root=True) as agg:
        for log in logs:
            task.reduce_metrics([log], criterion)
        stats = agg.get_smoothed_values()
    assert stats["glue_n"] == len(ds)
    if task.regression:
        assert stats["glue_pearson"] == pytest.approx(round(100 * pearsonr(preds, targets)[0], 3), abs=1e-3)
        assert stats["glue_spearman"] == pytest.approx(round(100 * spearmanr(preds, targets)[0], 3), abs=1e-3)
        assert stats["glue_score"] == pytest.approx((stats["glue_pearson"] + stats["glue_spearman"]) / 2, abs=2e-3)
    else:
        assert stats["glue_accuracy"] == pytest.approx(round(100 * accuracy_score(targets, preds), 3))
        assert stats["glue_score"] == stats["glue_accuracy"]
        assert stats["accuracy"] == pytest.approx(100 * accuracy_score(targets, preds), abs=0.05)  # the criterion's


# ---------------------------------------------------------------------------------------------
# metrics


def _batches(n, sizes_seed=0):
    rng = np.random.RandomState(sizes_seed)
    cuts = sorted(rng.choice(np.arange(1, n), size=6, replace=False))
    return list(zip([0] + cuts, cuts + [n]))


@pytest.mark.parametrize("num_classes,seed", [(2, 0), (2, 1), (3, 2)])
def test_count_metrics_equal_sklearn(num_classes, seed):
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    from fairseq_selfteach.classification import metrics as gm
    from selfteach_pipeline import glue_metrics

    rng = np.random.RandomState(seed)
    n = 997
    targets = rng.randint(num_classes, size=n)
    preds = np.where(rng.rand(n) < 0.6, targets, rng.randint(num_classes, size=n))  # correlated
    cm = np.zeros(num_classes * num_classes, dtype=np.int64)
    for start, end in _batches(n):  # summed over batches, as over workers
        cm += gm.confusion_counts(torch.tensor(preds[start:end]), torch.tensor(targets[start:end]), num_classes)
    cm = cm.reshape(num_classes, num_classes)
    assert cm.sum() == n
    assert glue_metrics.accuracy_from_cm(cm) == pytest.approx(accuracy_score(targets, preds), abs=1e-12)
    assert glue_metrics.mcc_from_cm(cm) == pytest.approx(matthews_corrcoef(targets, preds), abs=1e-12)
    if num_classes == 2:
        assert glue_metrics.f1_from_cm(cm) == pytest.approx(f1_score(targets, preds), abs=1e-12)
        for task in ("MRPC", "QQP"):
            ref = glue_metrics.compute_metrics(task, preds, targets)
            got = glue_metrics.metrics_from_cm(task, cm)
            assert got == pytest.approx(ref, abs=1e-9) and got["glue_score"] == pytest.approx(100 * f1_score(targets, preds))
        assert glue_metrics.metrics_from_cm("CoLA", cm)["glue_score"] == pytest.approx(100 * matthews_corrcoef(targets, preds))
    else:
        assert glue_metrics.metrics_from_cm("MNLI", cm) == pytest.approx(glue_metrics.compute_metrics("MNLI", preds, targets), abs=1e-9)


def test_count_metrics_degenerate_cases_equal_sklearn():
    from sklearn.metrics import f1_score, matthews_corrcoef

    from fairseq_selfteach.classification import metrics as gm
    from selfteach_pipeline import glue_metrics

    for targets, preds in (([0, 1, 1, 0], [1, 1, 1, 1]), ([0, 0, 0], [0, 0, 0]), ([1, 1], [0, 0])):
        cm = np.array(gm.confusion_counts(torch.tensor(preds), torch.tensor(targets), 2)).reshape(2, 2)
        assert glue_metrics.mcc_from_cm(cm) == pytest.approx(matthews_corrcoef(targets, preds))
        assert glue_metrics.f1_from_cm(cm) == pytest.approx(f1_score(targets, preds, zero_division=0.0))


def test_logged_metrics_over_batches_equal_sklearn_scipy():
    """fairseq's meters: per-batch logging outputs reduced one by one, derived at the end."""
    from fairseq.logging import metrics
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    from fairseq_selfteach.classification import metrics as gm
    from selfteach_pipeline import glue_metrics

    rng = np.random.RandomState(3)
    n = 501
    targets = rng.randint(2, size=n)
    preds = np.where(rng.rand(n) < 0.7, targets, 1 - targets)
    for task, ref in (("MRPC", {"glue_f1": f1_score(targets, preds), "glue_accuracy": accuracy_score(targets, preds)}),
                      ("CoLA", {"glue_mcc": matthews_corrcoef(targets, preds)})):
        with metrics.aggregate(new_root=True) as agg:
            for start, end in _batches(n):
                log = {"glue_n": end - start}
                for i, c in enumerate(gm.confusion_counts(preds[start:end], targets[start:end], 2)):
                    log[gm.cm_key(i // 2, i % 2)] = c
                gm.log_glue_metrics([log], task, 2, regression=False)
            stats = agg.get_smoothed_values()
        assert stats["glue_n"] == n
        for name, value in ref.items():
            assert stats[name] == pytest.approx(round(100 * value, 3), abs=1e-9)
        assert stats["glue_score"] == stats["glue_f1" if task == "MRPC" else "glue_mcc"]

    y = rng.rand(n) * 5
    x = y + rng.randn(n)
    with metrics.aggregate(new_root=True) as agg:
        for start, end in _batches(n):
            gm.log_glue_metrics([{"glue_n": end - start, "glue_pred": x[start:end].tolist(),
                                  "glue_target": y[start:end].tolist()}], "STS-B", 1, regression=True)
        stats = agg.get_smoothed_values()
    p, s = 100 * pearsonr(x, y)[0], 100 * spearmanr(x, y)[0]
    assert stats["glue_pearson"] == pytest.approx(round(p, 3)) and stats["glue_spearman"] == pytest.approx(round(s, 3))
    assert stats["glue_score"] == pytest.approx(round((p + s) / 2, 3))
    ref = glue_metrics.compute_metrics("STS-B", x, y)
    assert ref["pearson"] == pytest.approx(p) and ref["glue_score"] == pytest.approx((p + s) / 2)


# ---------------------------------------------------------------------------------------------
# --best-checkpoint-metric: fairseq's own options (as with --eval-bleu, a GLUE metric is named and
# maximised explicitly); the task reads them through II() interpolation and changes nothing


@pytest.mark.parametrize(
    "extra,metric,maximize",
    [
        ([], "loss", False),
        (["--best-checkpoint-metric", "loss"], "loss", False),
        (["--best-checkpoint-metric", "glue_accuracy", "--maximize-best-checkpoint-metric"], "glue_accuracy", True),
        (["--maximize-best-checkpoint-metric", "--best-checkpoint-metric", "glue_f1"], "glue_f1", True),
    ],
)
def test_best_checkpoint_metric_defaults(glue_bins, minilm_dir, extra, metric, maximize):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        glue_bins["SST-2"]["bin"], "--user-dir", USER_DIR, "--task", "glue", "--arch", "bert_from_config",
        "--bert-config", os.path.join(minilm_dir, "config.json"), "--criterion", "sentence_prediction", *extra])
    cfg = convert_namespace_to_omegaconf(args)
    assert (cfg.checkpoint.best_checkpoint_metric, cfg.checkpoint.maximize_best_checkpoint_metric) == (metric, maximize)
    from fairseq import tasks

    task = tasks.setup_task(cfg.task)
    assert (task.cfg.best_checkpoint_metric, task.cfg.maximize_best_checkpoint_metric) == (metric, maximize)


def test_a_glue_metric_that_would_be_minimised_is_refused(glue_bins, minilm_dir, tmp_path):
    p = run(["fairseq-train", glue_bins["SST-2"]["bin"], "--user-dir", USER_DIR, "--task", "glue",
             "--arch", "bert_from_config", "--bert-config", os.path.join(minilm_dir, "config.json"),
             "--criterion", "sentence_prediction", "--best-checkpoint-metric", "glue_score",
             "--optimizer", "adam", "--lr", "1e-4", "--batch-size", 4, "--max-update", 1, "--cpu",
             "--save-dir", tmp_path], check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "error: --best-checkpoint-metric glue_score is better when higher: add " \
        "--maximize-best-checkpoint-metric" in p.stderr


def test_fairseq_train_with_a_head_learning_rate(glue_bins, minilm_dir, toy_data, tmp_path):
    """--optimizer adam_head_lr --head-lr-scale 20 through fairseq-train (the arithmetic is
    tests/classification/test_head_lr.py): the heads get their group; a model without heads is refused."""
    common = ["--optimizer", "adam_head_lr", "--head-lr-scale", 20, "--lr", "2e-5", "--cpu", "--no-save"]
    p = run(["fairseq-train", glue_bins["SST-2"]["bin"], "--user-dir", USER_DIR, "--task", "glue",
             "--arch", "bert_from_config", "--bert-config", os.path.join(minilm_dir, "config.json"),
             "--criterion", "sentence_prediction", "--batch-size", 4, "--max-update", 2, *common,
             "--save-dir", tmp_path / "glue"])
    assert re.search(r"adam_head_lr: [\d,]+ classification-head parameters at 20 × the learning rate",
                     p.stdout + p.stderr), (p.stdout + p.stderr)[-2000:]
    p = run(["fairseq-train", toy_data, "--user-dir", USER_DIR, "--arch", "transformer_iwslt_de_en",
             "--encoder-layers", 1, "--decoder-layers", 1, "--max-tokens", 500, "--max-update", 1, *common,
             "--save-dir", tmp_path / "mt"], check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "error: --head-lr-scale: the model has no classification heads" in p.stderr


@pytest.mark.parametrize("task_name,criterion,message", [
    ("SST-2", "self_distill", "--criterion self_distill is for translation models"),
])
def test_the_wrong_familys_criterion_is_named(glue_bins, minilm_dir, tmp_path, task_name, criterion, message):
    p = run(["fairseq-train", glue_bins[task_name]["bin"], "--user-dir", USER_DIR, "--task", "glue",
             "--arch", "bert_from_config", "--bert-config", os.path.join(minilm_dir, "config.json"),
             "--criterion", criterion, "--optimizer", "adam", "--lr", "1e-4", "--batch-size", 4,
             "--max-update", 1, "--cpu", "--save-dir", tmp_path], check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert message in p.stderr and "use --criterion sentence_prediction_self_distill" in p.stderr


def test_a_translation_checkpoint_as_a_bert_teacher_is_refused_in_one_line(glue_bins, minilm_dir, teacher, tmp_path):
    """The reverse of test_e2e's BERT-as-translation-teacher case: the wrong family, named in one line."""
    p = run(["fairseq-train", glue_bins["MRPC"]["bin"], "--user-dir", USER_DIR, "--task", "self_distill_glue",
             "--teacher-path", teacher["path"], "--arch", "bert_from_config", "--bert-config",
             os.path.join(minilm_dir, "config.json"), "--encoder-layers", 2, "--criterion",
             "sentence_prediction_self_distill", "--optimizer", "adam", "--lr", "1e-4", "--batch-size", 2,
             "--max-update", 1, "--cpu", "--save-dir", tmp_path], check=False)
    errors = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert p.returncode != 0 and len(errors) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert teacher["path"] in errors[0] and "needs a model with classification heads, not transformer_iwslt_de_en" \
        in errors[0]
    assert not os.path.exists(tmp_path / "checkpoint_last.pt")


# ---------------------------------------------------------------------------------------------
# end to end: the real MiniLM fine-tuned on real movie-review snippets


@pytest.fixture(scope="session")
def vader_sdist(tmp_path_factory):
    """The vadersentiment 3.3.2 sdist, fetched once per session with pip (pip download vadersentiment==3.3.2)."""
    dest = tmp_path_factory.mktemp("vader")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    "vadersentiment==3.3.2", "-d", str(dest), "--quiet"], check=True)
    return str(dest / "vaderSentiment-3.3.2.tar.gz")


def test_sentiment_snippets(tmp_path, vader_sdist):
    p = run(["python", SNIPPETS, "--out", tmp_path, "--sdist", vader_sdist, "--min-abs-score", "0.5"])
    assert "dropped (|score| <= 0.5)" in p.stdout
    with open(tmp_path / "SENT" / "SOURCE.json") as f:
        src = json.load(f)
    assert src["snippets"] == 10605 and src["dropped"] > 37
    kept = src["snippets"] - src["dropped"]
    assert src["dev"]["examples"] == kept // 10 and src["train"]["examples"] == kept - kept // 10
    with open(tmp_path / "SENT" / "train.tsv", encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[0] == "sentence\tlabel" and lines[-1] == ""
    assert all(len(line.split("\t")) == 2 and line.split("\t")[1] in ("0", "1") for line in lines[1:-1])
    assert 0.4 < src["train"]["positive"] / src["train"]["examples"] < 0.6
    assert sorted(os.listdir(tmp_path)) == ["SENT"]


def _fake_sdist(path, snippets: bytes, link=False):
    """An sdist shaped like vaderSentiment-3.3.2.tar.gz, with a nested archive."""
    import io
    import tarfile

    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        info = tarfile.TarInfo("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
        info.size = len(snippets)
        tar.addfile(info, io.BytesIO(snippets))
    data = inner.getvalue()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_sentiment_snippets_rules_and_refusals(tmp_path):
    rows = [(i, score, f"snippet number {i}\twith a tab") for i, score in
            enumerate([2.5, -1.0, 0.0, 0.4, -0.3, 1.2, -2.2, 3.0, -0.9, 0.1, 1.5, -1.5], start=1)]
    text = "".join(f"{i}\t{s}\t{t.replace(chr(9), ' ')}\r\n" for i, s, t in rows).encode()
    sdist = _fake_sdist(tmp_path / "fake.tar.gz", text)
    p = run(["python", SNIPPETS, "--out", tmp_path / "o", "--sdist", sdist, "--min-abs-score", "0.35", "--dev-every", 3])
    assert "3 dropped" in p.stdout  # 0.0, 0.1 and -0.3: |score| <= 0.35
    with open(tmp_path / "o" / "SENT" / "dev.tsv") as f:
        dev = f.read()
    with open(tmp_path / "o" / "SENT" / "train.tsv") as f:
        train = f.read()
    kept = [(t.replace("\t", " "), int(s > 0)) for _, s, t in rows if abs(s) > 0.35]
    assert dev == "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in kept[2::3])
    assert train == "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for i, (t, y) in enumerate(kept) if i % 3 != 2)
    # a link where the inner archive should be: refused, nothing written
    bad = _fake_sdist(tmp_path / "bad.tar.gz", text, link=True)
    p = run(["python", SNIPPETS, "--out", tmp_path / "b", "--sdist", bad], check=False)
    assert p.returncode == 1 and "not a regular file" in p.stderr
    assert not (tmp_path / "b" / "SENT").exists()


@pytest.mark.slow
def test_finetune_minilm_on_sentiment_snippets(tmp_path, converted_minilm, vader_sdist):
    """convert -> snippets -> binarise -> fairseq-train (sentence_prediction, --finetune-from-model the
    converted checkpoint) -> evaluate_glue. The dev set (123 examples) is not a multiple of 8."""
    conv = converted_minilm
    run(["python", SNIPPETS, "--out", tmp_path, "--sdist", vader_sdist, "--max-examples", 615, "--dev-every", 5])
    bin_dir = tmp_path / "bin"
    run(["python", BINARIZE, "--task", "SST-2", "--glue-dir", tmp_path / "SENT", "--bert-dir", conv,
         "--out", bin_dir, "--max-len", 64])
    meta = _meta(bin_dir)
    n_dev = meta["splits"]["valid"]["examples"]
    assert n_dev == 123
    majority = 100.0 * max(meta["splits"]["valid"]["label_counts"]) / n_dev

    save = tmp_path / "ft"
    p = run([
        "fairseq-train", bin_dir, "--user-dir", USER_DIR, "--task", "glue",
        "--arch", "bert_from_config", "--bert-config", conv / "config.json",
        "--finetune-from-model", conv / "model.pt", "--criterion", "sentence_prediction",
        "--optimizer", "adam", "--adam-betas", "(0.9,0.999)", "--adam-eps", "1e-6", "--weight-decay", "0.01",
        "--lr", "5e-5", "--lr-scheduler", "polynomial_decay", "--warmup-updates", 5,
        "--total-num-update", 48, "--max-update", 48, "--batch-size", 32,
        "--cpu", "--save-dir", save, "--no-epoch-checkpoints", "--no-last-checkpoints",
        "--log-format", "simple", "--log-interval", 16, "--seed", 1, "--num-workers", 0,
        "--best-checkpoint-metric", "glue_score", "--maximize-best-checkpoint-metric",
    ])  # no --required-batch-size-multiple (default 8): the task scores every dev example anyway
    log = p.stdout + p.stderr
    assert "loading the first" not in log  # all 6 layers
    rows = valid_metrics(log)
    print("dev after each epoch:", [(r["num_updates"], r["glue_accuracy"], r["glue_n"]) for r in rows],
          f"majority {majority:.2f}")
    assert len(rows) == 3  # 3 epochs of 16 updates
    assert all(r["glue_n"] == n_dev for r in rows)  # every dev example scored, each time
    best = max(r["glue_score"] for r in rows)
    assert rows[-1]["best_glue_score"] == best
    assert best > majority + 10, (best, majority)
    m = re.findall(r"Saved checkpoint \S*checkpoint_best\.pt .*score ([\d.]+)\)", log)
    assert m and float(m[-1]) == pytest.approx(best)

    out = tmp_path / "eval.json"
    run(["python", "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", bin_dir, "--path", save / "checkpoint_best.pt",
         "--json", out, "--cpu"])
    with open(out) as f:
        result = json.load(f)
    assert result["scored"] == result["examples"] == n_dev
    assert result["glue_score"] == pytest.approx(best, abs=1e-3)  # sklearn on all 123 = the validation log
    assert result["metrics"]["accuracy"] == pytest.approx(best, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# regression (STS-B) under --criterion sentence_prediction_self_distill, online and offline, through fairseq-train


def test_stsb_self_distill_online_and_offline(glue_bins, minilm_dir, tmp_path):
    bin_dir = glue_bins["STS-B"]["bin"]
    common = ["--user-dir", USER_DIR, "--arch", "bert_from_config", "--bert-config",
              os.path.join(minilm_dir, "config.json"), "--criterion", "sentence_prediction_self_distill",
              "--regression-target", "--kd-alpha", 0.5,
              "--optimizer", "adam", "--lr", "1e-4", "--batch-size", 2, "--cpu", "--no-epoch-checkpoints",
              "--log-format", "simple", "--log-interval", 1, "--seed", 1, "--num-workers", 0,
              "--required-batch-size-multiple", 1, "--max-update", 3]
    p = run(["fairseq-train", bin_dir, "--task", "glue", "--encoder-layers", 2, "--student-exits", 1,
             "--save-dir", tmp_path / "online"] + common)
    rows = valid_metrics(p.stdout + p.stderr)
    assert rows and all(r["glue_n"] == 5 for r in rows)  # every dev pair scored
    assert all(math.isfinite(r[k]) for r in rows for k in ("glue_pearson", "glue_spearman", "exit1_kd_loss"))
    assert all("exit1_accuracy" not in r for r in rows)  # scores have no accuracy
    p = run(["fairseq-train", bin_dir, "--task", "self_distill_glue", "--teacher-path",
             tmp_path / "online" / "checkpoint_last.pt", "--encoder-layers", 1,
             "--save-dir", tmp_path / "offline"] + common)
    log = p.stdout + p.stderr
    assert "encoder.layers <- teacher [0]" in log
    rows = valid_metrics(log)
    assert rows and all(r["kd_loss"] > 0 and math.isfinite(r["glue_pearson"]) for r in rows)


@pytest.mark.parametrize("task_name", ["SST-2", "STS-B"])
def test_training_from_a_teacher_cache_equals_the_teacher(glue_bins, minilm_dir, tmp_path, task_name):
    """cli/teacher_cache.py stores every logit (or the score) of every training sentence; an offline
    student trained from it logs the same terms at every update as one running the teacher, and ends
    with the same weights (dropout off, the same batches)."""
    bin_dir = glue_bins[task_name]["bin"]
    regression = ["--regression-target"] if task_name == "STS-B" else []
    common = ["--user-dir", USER_DIR, "--arch", "bert_from_config", "--bert-config",
              os.path.join(minilm_dir, "config.json"), "--criterion", "sentence_prediction_self_distill",
              *regression, "--kd-alpha", 0.5, "--kd-temperature", 2, "--dropout", 0, "--attention-dropout", 0,
              "--optimizer", "adam", "--lr", "1e-4", "--batch-size", 2, "--cpu", "--no-epoch-checkpoints",
              "--log-format", "simple", "--log-interval", 1, "--seed", 1, "--num-workers", 0,
              "--required-batch-size-multiple", 1]
    run(["fairseq-train", bin_dir, "--task", "glue", "--encoder-layers", 2, "--max-update", 2,
         "--save-dir", tmp_path / "teacher"] + common)
    teacher = tmp_path / "teacher" / "checkpoint_last.pt"
    student = ["--task", "self_distill_glue", "--teacher-path", teacher, "--encoder-layers", 1, "--max-update", 4]
    p = run(["python", "-m", "fairseq_selfteach.cli.teacher_cache", bin_dir, *student, *common,
             "--cache-out", tmp_path / "cache"])
    assert "logits k=" in p.stdout and "bytes per sentence" in p.stdout
    logs = {}
    for name, extra in (("plain", []), ("cached", ["--teacher-cache", tmp_path / "cache"])):
        p = run(["fairseq-train", bin_dir, *student, *extra, "--save-dir", tmp_path / name] + common)
        logs[name] = train_metrics(p.stdout + p.stderr)
    assert sorted(logs["cached"]) == sorted(logs["plain"]) == [1, 2, 3, 4]
    for update, row in logs["cached"].items():
        for key in ("loss", "gold_loss", "kd_loss"):
            assert row[key] == pytest.approx(logs["plain"][update][key], abs=2e-3), (update, key)
    a = torch.load(tmp_path / "cached" / "checkpoint_last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "plain" / "checkpoint_last.pt", weights_only=False)["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in b)


@pytest.mark.parametrize("stuck", [True, False])
def test_validation_log_flags_a_model_stuck_at_one_class(stuck, caplog):
    """glue_collapsed: 1 and a warning when every validation example got the same class, else 0."""
    import logging

    from fairseq.logging import metrics

    from fairseq_selfteach.classification import metrics as gm

    counts = {(0, 1): 2, (1, 1): 5} if stuck else {(0, 0): 1, (0, 1): 1, (1, 1): 5}
    logs = [{"glue_n": 7, **{gm.cm_key(t, p): counts.get((t, p), 0) for t in range(2) for p in range(2)}}]
    with metrics.aggregate() as agg:
        gm.log_glue_metrics(logs, "SST-2", 2, False)
        with caplog.at_level(logging.WARNING):
            values = agg.get_smoothed_values()
    assert values[gm.COLLAPSED] == int(stuck)
    assert ("collapsed: all 7 examples predicted class 1 (the majority class" in caplog.text) == stuck
