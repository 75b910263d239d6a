"""selfteach_pipeline/glue_format.py: the GLUE task list, layouts and meta.json, and
that every user of them (metrics, download_glue_data, the checkpoint helpers) agrees."""
import json
import os

import pytest

from selfteach_pipeline import glue_format
from selfteach_pipeline.glue_format import GlueDataError, read_meta
from tests.helpers import load_script


def _meta(task="SST-2", **fields):
    base = dict(max_len=128, vocab_size=30522, splits={"train": {"examples": 3}})
    base.update(fields)
    return glue_format.new_meta(task, **base)


def test_tasks_and_their_users():
    from selfteach_pipeline.glue_metrics import GLUE_METRICS

    assert glue_format.TASKS == ("CoLA", "SST-2", "MRPC", "QQP", "STS-B", "MNLI", "QNLI", "RTE", "WNLI", "AX")
    assert tuple(GLUE_METRICS) == glue_format.TASKS
    download = load_script("download_glue_data")
    assert download.TASKS == glue_format.TASKS[:-1] + ("diagnostic",)
    assert download.REQUIRED_FILES["MNLI"] == ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv")
    assert download.REQUIRED_FILES["MRPC"] == ("train.tsv", "dev.tsv", "test.tsv")
    assert download.REQUIRED_FILES["diagnostic"] == ("diagnostic.tsv",)
    assert {download.REQUIRED_FILES[t] for t in ("CoLA", "SST-2", "QQP", "STS-B", "QNLI", "RTE", "WNLI")} == {
        ("train.tsv", "dev.tsv")}
    assert glue_format.GLUE_TASKS["CoLA"]["splits"]["train"] == {
        "file": "train.tsv", "header": False, "columns": 4, "a": 3, "b": None, "label": 1}


def test_new_meta_follows_the_task():
    sst, stsb, mnli = _meta("SST-2"), _meta("STS-B"), _meta("MNLI")
    assert list(sst)[:6] == ["task", "regression", "labels", "num_classes", "label_encoding", "max_len"]
    assert (sst["num_classes"], sst["labels"], sst["label_encoding"]) == (2, ["0", "1"], "class_index_int64")
    assert (stsb["regression"], stsb["num_classes"], stsb["labels"]) == (True, 1, None)
    assert stsb["label_encoding"] == "float64_bits_in_int64"
    assert mnli["labels"] == ["contradiction", "entailment", "neutral"]


def test_write_then_read(tmp_path):
    meta = _meta("STS-B", lowercase=True)
    path = glue_format.write_meta(str(tmp_path), meta)
    assert path == os.path.join(str(tmp_path), "meta.json")
    assert read_meta(str(tmp_path)) == meta
    with open(path, encoding="utf-8") as f:
        assert f.read() == json.dumps(meta, indent=1) + "\n"
    with pytest.raises(GlueDataError, match="missing 'regression'"):  # the writer checks as the reader
        glue_format.write_meta(str(tmp_path / "other"), {"task": "SST-2"})
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("content,error,message", [
    (None, GlueDataError, "meta.json not found: binarise the task with preprocess/glue_binarize.py"),
    (b"{not json", GlueDataError, "meta.json is not valid JSON: "),
    (b"\xff\xfe", GlueDataError, "meta.json is not valid JSON: "),
    ({"drop": "vocab_size"}, GlueDataError, "meta.json: missing 'vocab_size'"),
    ({"task": "SNLI"}, ValueError, "unknown GLUE task 'SNLI': one of CoLA, SST-2, MRPC"),
    ({"label_encoding": "float64_bits_in_int64"}, GlueDataError,
     "meta.json: label_encoding 'float64_bits_in_int64', expected 'class_index_int64'"),
])
def test_read_meta_refuses(tmp_path, content, error, message):
    path = tmp_path / "meta.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        meta = _meta()
        meta.pop(content.pop("drop", None), None)
        meta.update(content)
        path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(error) as e:
        read_meta(str(tmp_path))
    assert message in str(e.value)
    if error is GlueDataError:
        assert str(path) in str(e.value)  # the file is named


def test_the_file_helpers(tmp_path):
    import hashlib

    from selfteach_pipeline.files import current_umask, sha256_of_file, usual_file_mode

    data = os.urandom(3 << 20)  # several chunks
    (tmp_path / "f").write_bytes(data)
    assert sha256_of_file(str(tmp_path / "f")) == hashlib.sha256(data).hexdigest()
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027 and usual_file_mode() == 0o640
    finally:
        os.umask(old)
