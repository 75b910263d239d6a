"""Transfer sets: unlabelled text that a teacher labels for its students.

preprocess/sentiment_snippets.py --transfer N draws the text, glue_binarize.py --transfer binarises it
as the split `transfer`, evaluate_glue --subset transfer --predictions labels it, and glue_binarize.py
--transfer-labels appends it, so labelled, to train, after the held-out split is taken."""
import os

import glue_binarize  # preprocess/ is on pytest's pythonpath
import pytest
import sentiment_snippets

from tests.classification.test_glue import (
    SNIPPETS, SST2_TRAIN, _fake_sdist, _meta, _read, _save_tiny_checkpoint, _task, binarize_args, binarize_cli,
    sst2_files, write_files,
)
from tests.helpers import run

pytest.importorskip("tokenizers")

TRANSFER = ["a thoroughly enjoyable ride", "dull , dull , dull", "the actors seem to be having fun"]


def _transfer_tsv(folder, texts=TRANSFER):
    path = os.path.join(folder, "transfer.tsv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("index\tsentence\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    return path


def test_teacher_labels_join_train_after_the_heldout_split(tmp_path, minilm_dir):
    vocab = os.path.join(minilm_dir, "vocab.txt")
    raw = write_files(tmp_path / "raw", sst2_files())
    transfer = _transfer_tsv(tmp_path)
    plain, unlabelled, labelled = tmp_path / "plain", tmp_path / "unlabelled", tmp_path / "labelled"
    binarize_cli("SST-2", raw, plain, vocab, "--heldout-every", 2)
    binarize_cli("SST-2", raw, unlabelled, vocab, "--heldout-every", 2, "--transfer", transfer)
    assert _meta(unlabelled)["splits"]["transfer"]["labelled"] is False
    assert _meta(unlabelled)["splits"]["train"]["examples"] == len(SST2_TRAIN) - len(SST2_TRAIN) // 2

    # the teacher (a tiny fine-tuned-looking model) labels the split transfer through evaluate_glue
    _save_tiny_checkpoint(_task(str(unlabelled)), tmp_path / "teacher.pt")
    labels = tmp_path / "labels.tsv"
    run(["python", "-m", "fairseq_selfteach.cli.evaluate_glue", "--data", unlabelled, "--path", tmp_path / "teacher.pt",
         "--subset", "transfer", "--predictions", labels, "--cpu"])
    with open(labels) as f:
        teacher = [int(line.split("\t")[1]) for line in f.read().splitlines()[1:]]
    assert len(teacher) == len(TRANSFER)
    binarize_cli("SST-2", raw, labelled, vocab, "--heldout-every", 2, "--transfer", transfer,
                 "--transfer-labels", labels)

    # heldout and valid are those of the plain binarisation; train is its train, then the transfer set
    for split in ("heldout", "valid"):
        assert _read(str(labelled / f"{split}.tokens")) == _read(str(plain / f"{split}.tokens"))
        assert _read(str(labelled / f"{split}.labels")) == _read(str(plain / f"{split}.labels"))
    assert _read(str(labelled / "train.tokens")) == (_read(str(plain / "train.tokens"))
                                                     + _read(str(unlabelled / "transfer.tokens")))
    assert _read(str(labelled / "train.segments")) == (_read(str(plain / "train.segments"))
                                                       + _read(str(unlabelled / "transfer.segments")))
    assert _read(str(labelled / "train.labels")) == _read(str(plain / "train.labels")) + [[y] for y in teacher]
    meta = _meta(labelled)["splits"]["train"]
    gold = _meta(plain)["splits"]["train"]
    assert meta["examples"] == gold["examples"] + len(TRANSFER) and meta["transfer_examples"] == len(TRANSFER)
    assert meta["label_counts"] == [gold["label_counts"][c] + teacher.count(c) for c in (0, 1)]
    assert meta["transfer_labels"] == str(labels) and len(meta["transfer_labels_sha256"]) == 64


@pytest.mark.parametrize("labels_text,message", [
    ("index\tprediction\n0\t1\n1\t0\n", "labels.tsv: 2 labels for the 3 examples of"),
    ("index\tprediction\n0\t1\n2\t0\n1\t1\n", "labels.tsv:3: index '2', expected 1"),
    ("index\tprediction\n0\t1\n1\tpositive\n2\t0\n", "labels.tsv:3: label 'positive' is not one of the task's labels"),
])
def test_bad_teacher_labels_are_refused_in_one_line(tmp_path, minilm_dir, capsys, labels_text, message):
    # in-process (the CLI's own main, its exit code and stderr): the refusal comes before any tokenising
    raw = write_files(tmp_path / "raw", sst2_files())
    labels = tmp_path / "labels.tsv"
    labels.write_text(labels_text)
    args = binarize_args("SST-2", raw, tmp_path / "out", os.path.join(minilm_dir, "vocab.txt"),
                         "--transfer", _transfer_tsv(tmp_path), "--transfer-labels", labels)
    assert glue_binarize.main(args) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_teacher_labels_without_their_text_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        glue_binarize.main(["--task", "SST-2", "--glue-dir", str(tmp_path), "--vocab", "vocab.txt", "--out",
                            str(tmp_path / "out"), "--transfer-labels", "labels.tsv"])
    assert stop.value.code == 2 and "--transfer-labels needs --transfer" in capsys.readouterr().err


def test_sentiment_snippets_transfer_is_left_out_text_and_changes_nothing_else(tmp_path, capsys):
    scores = [2.5, -1.0, 0.4, 1.2, -2.2, 3.0, -0.9, 1.5, -1.5, 0.8, -0.6, 2.0, -3.1, 1.1]
    texts = [f"snippet number {i}" for i in range(len(scores))]
    texts[-1] = texts[0]  # a repeated sentence: at most once in the transfer set, never if in train or dev
    lines = "".join(f"{i}\t{s}\t{t}\r\n" for i, (s, t) in enumerate(zip(scores, texts), start=1))
    sdist = _fake_sdist(tmp_path / "fake.tar.gz", lines.encode())
    sample = ["--sdist", sdist, "--max-examples", 6, "--dev-every", 3, "--seed", 4]
    run(["python", SNIPPETS, "--out", tmp_path / "plain", *sample])
    p = run(["python", SNIPPETS, "--out", tmp_path / "t", *sample, "--transfer", 5])
    assert "transfer 5 unlabelled" in p.stdout
    for name in ("train.tsv", "dev.tsv"):
        assert (tmp_path / "t" / "SENT" / name).read_text() == (tmp_path / "plain" / "SENT" / name).read_text()
    rows = [line.split("\t") for line in (tmp_path / "t" / "SENT" / "transfer.tsv").read_text().splitlines()]
    assert rows[0] == ["index", "sentence"] and [r[0] for r in rows[1:]] == ["0", "1", "2", "3", "4"]
    sampled = {line.split("\t")[0] for name in ("train.tsv", "dev.tsv")
               for line in (tmp_path / "t" / "SENT" / name).read_text().splitlines()[1:]}
    drawn = [r[1] for r in rows[1:]]
    assert len(set(drawn)) == 5 and not set(drawn) & sampled and set(drawn) <= set(texts)
    # more than is left out, or nothing left out at all: refused in one line, nothing written (in-process)
    sample = [str(a) for a in sample]
    assert sentiment_snippets.main(["--out", str(tmp_path / "many"), *sample, "--transfer", "9"]) == 1
    err = capsys.readouterr().err
    assert "--transfer 9: only 7 snippets" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "many" / "SENT").exists()
    assert sentiment_snippets.main(["--out", str(tmp_path / "all"), "--sdist", str(sdist), "--transfer", "2"]) == 1
    assert "give --max-examples" in capsys.readouterr().err
