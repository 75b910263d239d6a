"""Using a BERT student: scoring any exit of an online checkpoint (evaluate_glue --exit-layer), and
export_student --format hf, Hugging Face transformers folders checked against transformers itself (the
reference: BertModel, BertForSequenceClassification, AutoTokenizer)."""
import json
import os

import pytest
import torch

from tests.classification.test_glue import BINARIZE, mrpc_files, write_files
from tests.helpers import USER_DIR, run

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

SENTENCES = ["The film was a delight from start to finish.", "Nobody expected the Spanish Inquisition!",
             "It rained on the 3rd of May, 2021 — all day.", "short"]


def export_hf(checkpoint, out, *extra, check=True):
    return run(["python", "-m", "fairseq_selfteach.cli.export_student", "--checkpoint", checkpoint, "--out", out,
                "--format", "hf", *extra], check=check)


def test_a_converted_minilm_cut_to_3_layers_is_transformers_own_3_layer_minilm(converted_minilm, minilm_dir, tmp_path):
    out = tmp_path / "minilm_l3"
    p = export_hf(converted_minilm / "model.pt", out, "--encoder-layers", 3, "--no-training")
    assert "a transformers BERT of 3 layers" in p.stdout
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "special_tokens_map.json",
                                       "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
    ours = transformers.BertModel.from_pretrained(out).eval()
    reference = transformers.BertModel.from_pretrained(minilm_dir, num_hidden_layers=3).eval()
    assert ours.config.num_hidden_layers == 3
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    batch = transformers.AutoTokenizer.from_pretrained(minilm_dir)(SENTENCES, padding=True, return_tensors="pt")
    mine = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert all(torch.equal(mine[k], batch[k]) for k in batch)  # the same tokenizer
    with torch.no_grad():
        a, b = ours(**batch), reference(**batch)
    assert torch.allclose(a.last_hidden_state, b.last_hidden_state, atol=1e-5, rtol=0)
    assert torch.allclose(a.pooler_output, b.pooler_output, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def mrpc_online(converted_minilm, tmp_path_factory):
    """MiniLM fine-tuned on a few MRPC pairs with a student exit after layer 2 (a few updates: what is
    checked is that two implementations agree, not what the model learnt)."""
    root = tmp_path_factory.mktemp("mrpc")
    write_files(root / "MRPC", mrpc_files())
    run(["python", BINARIZE, "--task", "MRPC", "--glue-dir", root / "MRPC", "--bert-dir", converted_minilm,
         "--out", root / "bin", "--max-len", 32])
    run(["fairseq-train", root / "bin", "--user-dir", USER_DIR, "--task", "glue", "--arch", "bert_from_config",
         "--bert-config", converted_minilm / "config.json", "--finetune-from-model", converted_minilm / "model.pt",
         "--criterion", "sentence_prediction_self_distill", "--student-exits", 2, "--kd-alpha", 0.5,
         "--optimizer", "adam", "--lr", "1e-4", "--batch-size", 2, "--max-update", 4, "--cpu",
         "--no-epoch-checkpoints", "--save-dir", root / "ckpt", "--seed", 1, "--num-workers", 0,
         "--required-batch-size-multiple", 1])
    return root


def test_an_exported_classifier_gives_fairseqs_logits_in_transformers(mrpc_online, tmp_path):
    from fairseq_selfteach.cli.evaluate_glue import load

    ckpt = mrpc_online / "ckpt" / "checkpoint_last.pt"
    plain, out = tmp_path / "exit2.pt", tmp_path / "exit2_hf"
    run(["python", "-m", "fairseq_selfteach.cli.export_student", "--checkpoint", ckpt, "--out", plain,
         "--encoder-layers", 2])
    p = export_hf(ckpt, out, "--encoder-layers", 2)
    assert "labels 0, 1" in p.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["id2label"] == {"0": "0", "1": "1"}
    model, task, head = load(str(plain), str(mrpc_online / "bin"))
    hf = transformers.BertForSequenceClassification.from_pretrained(out).eval()
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    net = sample["net_input"]
    with torch.no_grad():
        ours = model(**net, classification_head_name=head)[0]
        theirs = hf(input_ids=net["src_tokens"], token_type_ids=net["segment_labels"],
                    attention_mask=net["src_tokens"].ne(task.source_dictionary.pad()).long()).logits
    assert net["segment_labels"].any()  # sentence pairs: the second segment is there
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-5, rtol=0)


def test_scoring_an_exit_of_the_online_checkpoint_equals_scoring_the_exported_student(mrpc_online, tmp_path):
    ckpt = mrpc_online / "ckpt" / "checkpoint_last.pt"
    run(["python", "-m", "fairseq_selfteach.cli.export_student", "--checkpoint", ckpt, "--out", tmp_path / "exit2.pt",
         "--encoder-layers", 2])
    scored = {}
    for name, args in (("exit", ["--path", ckpt, "--exit-layer", 2]), ("exported", ["--path", tmp_path / "exit2.pt"])):
        run(["python", "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", mrpc_online / "bin", *args, "--cpu",
             "--json", tmp_path / f"{name}.json", "--predictions", tmp_path / f"{name}.tsv"])
        scored[name] = json.loads((tmp_path / f"{name}.json").read_text())
        scored[name]["predictions"] = (tmp_path / f"{name}.tsv").read_text()
    for key in ("glue_score", "metrics", "mean_nll", "encoder_layers", "params", "head_params", "predictions"):
        assert scored["exit"][key] == scored["exported"][key], key
    assert scored["exit"]["encoder_layers"] == 2
    p = run(["python", "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", mrpc_online / "bin", "--path", ckpt,
             "--exit-layer", 7, "--cpu"], check=False)
    assert p.returncode != 0 and "--exit-layer 7: " in p.stderr and "has 6 encoder layers, so choose 1..6" in p.stderr


def test_a_mean_pooled_classifier_is_not_exported_to_transformers(mrpc_online, tmp_path):
    """transformers' BertForSequenceClassification pools [CLS]: a student whose head pools the mean would
    score differently there, so it is refused in one line and nothing is written."""
    state = torch.load(mrpc_online / "ckpt" / "checkpoint_last.pt", weights_only=False)
    state["cfg"]["model"]["pooling"] = "mean"
    torch.save(state, tmp_path / "mean.pt")
    p = export_hf(tmp_path / "mean.pt", tmp_path / "out", check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1 and "pools [CLS], so the exported model would score differently" in p.stderr
    assert not (tmp_path / "out").exists() and os.listdir(tmp_path) == ["mean.pt"]
