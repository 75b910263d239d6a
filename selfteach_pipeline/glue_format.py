"""GLUE's file formats, in one place: the task list, each task's TSV layout and labels, and the
meta.json that preprocess/glue_binarize.py writes and the `glue` task reads.

preprocess/ scripts, the task, the metrics and the command-line tools all import it, so that they
agree on the tasks and on what a binarised folder holds.
"""
import json
import os

from selfteach_pipeline.errors import SelfteachError

# label lists (index = class id) as in Hugging Face's GLUE processors and the GLUE leaderboard
_BINARY = ["0", "1"]
_NLI3 = ["contradiction", "entailment", "neutral"]
_NLI2 = ["entailment", "not_entailment"]


def _rows(file, columns, a, b=None, label=None, header=True):
    return {"file": file, "header": header, "columns": columns, "a": a, "b": b, "label": label}


def _train_dev_test(labels, columns, a, b=None, label=None, header=True, test=None):
    """train.tsv and dev.tsv share one layout; test=(columns, a, b) is test.tsv's (unlabelled, with a
    header row)."""
    return {
        "labels": labels,
        "splits": {
            "train": _rows("train.tsv", columns, a, b, label, header),
            "valid": _rows("dev.tsv", columns, a, b, label, header),
            "test": _rows("test.tsv", *test),
        },
    }


# The standard GLUE layouts (the files of GLUE's download_glue_data.py). Per task: labels (None for
# the STS-B regression), and per split the file, whether its first row is a header, the number of
# tab-separated columns, and the 0-based columns of sentence a, sentence b and the label (None =
# absent: single sentences, unlabelled test files). Unlabelled (test) splits may be missing.
GLUE_TASKS = {
    "CoLA": _train_dev_test(_BINARY, 4, a=3, label=1, header=False, test=(2, 1)),
    "SST-2": _train_dev_test(_BINARY, 2, a=0, label=1, test=(2, 1)),
    "MRPC": _train_dev_test(_BINARY, 5, a=3, b=4, label=0, test=(5, 3, 4)),
    "QQP": _train_dev_test(_BINARY, 6, a=3, b=4, label=5, test=(3, 1, 2)),
    "STS-B": _train_dev_test(None, 10, a=7, b=8, label=9, test=(9, 7, 8)),
    "MNLI": {
        "labels": _NLI3,
        "splits": {
            "train": _rows("train.tsv", 12, a=8, b=9, label=11),
            "valid": _rows("dev_matched.tsv", 16, a=8, b=9, label=15),
            "valid_mismatched": _rows("dev_mismatched.tsv", 16, a=8, b=9, label=15),
            "test": _rows("test_matched.tsv", 10, a=8, b=9),
            "test_mismatched": _rows("test_mismatched.tsv", 10, a=8, b=9),
        },
    },
    "QNLI": _train_dev_test(_NLI2, 4, a=1, b=2, label=3, test=(3, 1, 2)),
    "RTE": _train_dev_test(_NLI2, 4, a=1, b=2, label=3, test=(3, 1, 2)),
    "WNLI": _train_dev_test(_BINARY, 4, a=1, b=2, label=3, test=(3, 1, 2)),
    # the diagnostic set: unlabelled pairs scored with an MNLI model's labels
    "AX": {"labels": _NLI3, "splits": {"test": _rows("diagnostic.tsv", 3, a=1, b=2)}},
}
TASKS = tuple(GLUE_TASKS)  # CoLA SST-2 MRPC QQP STS-B MNLI QNLI RTE WNLI AX
STSB_RANGE = (0.0, 5.0)  # STS-B's similarity scores

# how SPLIT.labels stores a label: the class index, or (regression) the float64's bit pattern
LABEL_ENCODINGS = ("class_index_int64", "float64_bits_in_int64")
# the keys read_meta needs (glue_binarize writes more: lowercase, vocab, per-split counts, ...)
META_KEYS = ("task", "regression", "num_classes", "max_len", "splits", "vocab_size", "label_encoding")


class GlueDataError(SelfteachError, ValueError):
    """Binarised GLUE data that cannot be used, with a message naming the file."""


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown GLUE task {task!r}: one of {', '.join(TASKS)}")
    return task


def label_encoding(regression: bool) -> str:
    return LABEL_ENCODINGS[1] if regression else LABEL_ENCODINGS[0]


def required_files(task: str):
    """The TSV files a task's folder cannot do without: those of its labelled splits (for AX, which
    has none, its test file)."""
    splits = GLUE_TASKS[task]["splits"].values()
    labelled = [s["file"] for s in splits if s["label"] is not None]
    return tuple(labelled or [s["file"] for s in splits])


# --- meta.json -----------------------------------------------------------------------------------


def new_meta(task: str, **fields) -> dict:
    """meta.json's task-given entries (task, regression, labels, num_classes, label_encoding),
    followed by fields."""
    labels = GLUE_TASKS[task]["labels"]
    regression = labels is None
    meta = {
        "task": task,
        "regression": regression,
        "labels": labels,
        "num_classes": 1 if regression else len(labels),
        "label_encoding": label_encoding(regression),
    }
    meta.update(fields)
    return meta


def _check_meta(meta: dict, path: str) -> dict:
    for key in META_KEYS:
        if key not in meta:
            raise GlueDataError(f"{path}: missing {key!r}")
    check_task(meta["task"])
    expected = label_encoding(meta["regression"])
    if meta["label_encoding"] != expected:
        raise GlueDataError(f"{path}: label_encoding {meta['label_encoding']!r}, expected {expected!r}")
    return meta


def read_meta(data: str) -> dict:
    """DATA/meta.json, checked: GlueDataError (naming the file) when it is missing, not JSON, lacks
    a key or has the wrong label encoding; ValueError for an unknown task."""
    path = os.path.join(data, "meta.json")
    if not os.path.isfile(path):
        raise GlueDataError(f"{path} not found: binarise the task with preprocess/glue_binarize.py")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise GlueDataError(f"{path} is not valid JSON: {e}") from e
    return _check_meta(meta, path)


def write_meta(folder: str, meta: dict) -> str:
    """Write FOLDER/meta.json (checked as read_meta will check it); return its path."""
    path = os.path.join(folder, "meta.json")
    _check_meta(meta, path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    return path


def is_cased_vocabulary(tokens) -> bool:
    """Whether a WordPiece vocabulary keeps upper case: any ASCII capital outside the [SPECIAL] tokens (an
    uncased vocabulary still holds symbols such as "ℝ"). How the tokenizer's lower-casing is decided where
    no tokenizer_config.json says it (preprocess/glue_binarize.py, the export to transformers)."""
    return any("A" <= ch <= "Z" for token in tokens if not (token.startswith("[") and token.endswith("]"))
               for ch in token)
