"""GLUE TSV files -> fairseq indexed datasets for `--task glue` (WordPiece ids = the BERT's own ids).

    python preprocess/glue_binarize.py --task SST-2 --glue-dir GLUE/SST-2 --bert-dir CONVERTED --out BIN
    python preprocess/glue_binarize.py --task MRPC --glue-dir GLUE/MRPC --vocab vocab.txt --out BIN \
        [--max-len 128] [--lowercase | --no-lowercase]

Tokenisation is the checkpoint's own WordPiece through the HF `tokenizers` library
(BertWordPieceTokenizer built from vocab.txt: BERT's normaliser and pre-tokeniser, [CLS]/[SEP]
template). Inputs are `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` with segment ids 0 for [CLS], a and
its [SEP], 1 for b and the final [SEP]; an input longer than --max-len (specials included) is cut by
tokenizers' own `longest_first` strategy, as HF does, and counted in meta.json.
Lower-casing follows the checkpoint: --lowercase/--no-lowercase, else tokenizer_config.json's
do_lower_case next to vocab.txt, else "uncased" when vocab.txt holds no upper-case token.

BIN (written as a temporary folder next to it and renamed when complete, so a failed run leaves
nothing that looks finished) holds, for each split:
  SPLIT.tokens.{bin,idx}    WordPiece ids (fairseq mmap indexed dataset)
  SPLIT.segments.{bin,idx}  segment (token type) ids, same lengths
  SPLIT.labels.{bin,idx}    one int64 per example: the class index in the task's label list, or for
                            STS-B the float64 score's bit pattern (meta.json: label_encoding)
                            (absent for unlabelled test splits)
plus dict.txt (the BertDictionary: index i = line i of vocab.txt) and meta.json (task, labels,
num_classes, regression, max_len, lowercase, vocabulary sha256, per split: file, examples,
truncated).

Splits: train (train.tsv), valid (dev.tsv), for MNLI valid (dev_matched.tsv) and valid_mismatched
(dev_mismatched.tsv); test splits (test*.tsv, AX's diagnostic.tsv) are unlabelled and binarised when
the file is there. --heldout-every N moves every N-th training example (the N-th, 2N-th, ...) into a
split `heldout`: the trainings validate on it (checkpoint choice, early stopping, the pipelines'
sweep), so that the dev set, which is what GLUE reports, chooses nothing.
--transfer FILE binarises unlabelled text in the task's test layout (SST-2: `index<TAB>sentence`) as
the split `transfer`, for a teacher to label (evaluate_glue --subset transfer --predictions LABELS);
--transfer-labels LABELS then also appends those examples, with the teacher's labels, to train, after
the held-out split is taken (so heldout, valid and test are those of the binarisation without them):
a transfer set for the students (meta.json: splits.train.transfer_examples). Malformed input stops with FILE:LINE and a non-zero exit: a row with the wrong
number of columns, a label outside the task's label set (or an STS-B score that is not a number in
[0, 5]), an empty file, bytes that are not UTF-8.
"""
import argparse
import json
import math
import os
import struct
import sys

from download import staged_dir  # noqa: E402  (preprocess/download.py, beside this script)

from selfteach_pipeline.files import sha256_of_file, usual_file_mode
from selfteach_pipeline.glue_format import GLUE_TASKS, STSB_RANGE, is_cased_vocabulary, new_meta, write_meta

CHUNK = 8192  # examples tokenised per tokenizers.encode_batch call


class GlueFormatError(Exception):
    """Malformed input, with FILE:LINE in the message."""


def read_tsv(path, layout, labels):
    """(a texts, b texts or None, labels or None) of a GLUE TSV; GlueFormatError on malformed input.

    Lines are split on tab only (GLUE's files are read with quotechar=None: quotes are text);
    a trailing CR is dropped, and a UTF-8 byte-order mark on the first line is ignored."""
    if not os.path.isfile(path):
        raise GlueFormatError(f"{path}: file not found")
    a_col, b_col, l_col, ncols = layout["a"], layout["b"], layout["label"], layout["columns"]
    texts_a, texts_b, ys = [], [] if b_col is not None else None, [] if l_col is not None else None
    lineno = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\n")
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise GlueFormatError(
                    f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                ) from None
            if lineno == 1:
                line = line.lstrip("\ufeff")
            cells = line.split("\t")
            if len(cells) != ncols:
                raise GlueFormatError(
                    f"{path}:{lineno}: {len(cells)} tab-separated column(s), expected {ncols} "
                    f"({'header' if lineno == 1 and layout['header'] else 'row'} of the GLUE layout)"
                )
            if lineno == 1 and layout["header"]:
                continue
            texts_a.append(cells[a_col])
            if b_col is not None:
                texts_b.append(cells[b_col])
            if l_col is not None:
                ys.append(_parse_label(cells[l_col], labels, path, lineno))
    if not texts_a:
        what = "no rows after the header" if lineno else "empty file"
        raise GlueFormatError(f"{path}:{max(lineno, 1)}: {what}: no examples")
    return texts_a, texts_b, ys


def _parse_label(cell, labels, path, lineno):
    if labels is None:  # STS-B: a similarity score
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        lo, hi = STSB_RANGE
        if not (lo <= value <= hi):  # also refuses nan/inf
            raise GlueFormatError(f"{path}:{lineno}: label {cell!r} is not a score in [{lo:g}, {hi:g}]")
        return value
    try:
        return labels.index(cell)
    except ValueError:
        raise GlueFormatError(
            f"{path}:{lineno}: label {cell!r} is not one of the task's labels {labels}"
        ) from None


def resolve_vocab(args):
    """(vocab.txt path, lowercase flag, how lowercase was decided)."""
    if args.vocab:
        vocab = args.vocab
    else:
        vocab = os.path.join(args.bert_dir, "vocab.txt")
    if not os.path.isfile(vocab):
        raise GlueFormatError(f"{vocab}: vocabulary not found")
    if args.lowercase is not None:
        return vocab, args.lowercase, "command line"
    cfg_path = os.path.join(os.path.dirname(os.path.abspath(vocab)), "tokenizer_config.json")
    if os.path.isfile(cfg_path):
        try:
            with open(cfg_path, encoding="utf-8") as f:
                flag = json.load(f).get("do_lower_case")
        except (ValueError, UnicodeDecodeError) as e:
            raise GlueFormatError(f"{cfg_path}: not valid JSON ({e})") from None
        if isinstance(flag, bool):
            return vocab, flag, f"{cfg_path} do_lower_case"
    with open(vocab, encoding="utf-8", errors="replace") as f:
        cased = is_cased_vocabulary(f.read().split("\n"))
    return vocab, not cased, f"{'cased' if cased else 'uncased'} vocabulary"


def build_tokenizer(vocab, lowercase, max_len, dictionary):
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(vocab, lowercase=lowercase)  # strip_accents follows lowercase, as BERT
    tok.enable_truncation(max_length=max_len, strategy="longest_first")
    tok.no_padding()
    # the dictionary's index must be the tokenizer's id for every symbol, or embeddings misalign
    vocab_ids = tok.get_vocab()
    for idx, symbol in enumerate(dictionary.symbols):
        if dictionary.indices.get(symbol) == idx and vocab_ids.get(symbol) != idx:
            raise GlueFormatError(
                f"{vocab}: token {symbol!r} is id {vocab_ids.get(symbol)} for tokenizers but "
                f"{idx} in the BertDictionary"
            )
    return tok


def binarize_split(tok, dictionary, texts_a, texts_b, ys, prefix, regression):
    """Write PREFIX.tokens/.segments(/.labels) and return (examples, truncated, longest)."""
    import numpy as np
    import torch
    from fairseq.data import indexed_dataset

    tokens = indexed_dataset.make_builder(prefix + ".tokens.bin", impl="mmap", vocab_size=len(dictionary))
    segments = indexed_dataset.MMapIndexedDatasetBuilder(prefix + ".segments.bin", dtype=np.uint8)
    truncated, longest = 0, 0
    for start in range(0, len(texts_a), CHUNK):
        a = texts_a[start : start + CHUNK]
        inputs = a if texts_b is None else list(zip(a, texts_b[start : start + CHUNK]))
        for enc in tok.encode_batch(inputs):
            truncated += bool(enc.overflowing)
            longest = max(longest, len(enc.ids))
            tokens.add_item(torch.tensor(enc.ids, dtype=torch.int64))
            segments.add_item(torch.tensor(enc.type_ids, dtype=torch.int64))
    tokens.finalize(prefix + ".tokens.idx")
    segments.finalize(prefix + ".segments.idx")
    if ys is not None:
        labels = indexed_dataset.MMapIndexedDatasetBuilder(prefix + ".labels.bin", dtype=np.int64)
        for y in ys:
            if regression:  # exact: the float64's bits, read back with .view(torch.float64)
                y = struct.unpack("<q", struct.pack("<d", y))[0]
            labels.add_item(torch.tensor([y], dtype=torch.int64))
        labels.finalize(prefix + ".labels.idx")
    return len(texts_a), truncated, longest



def binarize(args):
    task = args.task
    spec = GLUE_TASKS[task]
    labels = spec["labels"]
    regression = labels is None
    if args.max_len < 4:
        raise GlueFormatError(f"--max-len {args.max_len}: needs room for [CLS] a [SEP] b [SEP]")
    vocab, lowercase, lowercase_from = resolve_vocab(args)
    if args.bert_dir:
        config = os.path.join(args.bert_dir, "config.json")
        if os.path.isfile(config):
            with open(config, encoding="utf-8") as f:
                positions = json.load(f).get("max_position_embeddings")
            if isinstance(positions, int) and args.max_len > positions:
                raise GlueFormatError(
                    f"--max-len {args.max_len} is longer than the {positions} positions of {config}"
                )

    # read and check every input before anything is written (and before tokenizers is loaded)
    todo = []
    for split, layout in spec["splits"].items():
        path = os.path.join(args.glue_dir, layout["file"])
        if layout["label"] is None and not os.path.exists(path):
            print(f"glue_binarize: {split}: {path} not found, skipped (unlabelled test split)")
            continue
        todo.append((split, layout, path, read_tsv(path, layout, labels)))
    transfer_labels = None
    if args.transfer:
        layout = spec["splits"].get("test")
        if layout is None or layout["label"] is not None:
            raise GlueFormatError(f"--transfer: {task} has no unlabelled test layout to read {args.transfer} with")
        todo.append(("transfer", layout, args.transfer, read_tsv(args.transfer, layout, labels)))
        if args.transfer_labels:
            transfer_labels = read_teacher_labels(args.transfer_labels, len(todo[-1][3][0]), labels, args.transfer)
    if args.heldout_every:
        todo = split_heldout(todo, args.heldout_every)
    if transfer_labels is not None:
        todo = append_transfer(todo, transfer_labels)

    from fairseq_selfteach.classification.bert.dictionary import BertDictionary, BertDictionaryError

    try:
        dictionary = BertDictionary.from_vocab(vocab)
    except BertDictionaryError as e:
        raise GlueFormatError(str(e)) from None
    tok = build_tokenizer(vocab, lowercase, args.max_len, dictionary)

    # an older BIN is replaced only once the new one is complete
    with staged_dir(os.path.abspath(args.out)) as tmp:
        meta = new_meta(
            task,
            max_len=args.max_len,
            lowercase=lowercase,
            lowercase_from=lowercase_from,
            truncation="longest_first",
            vocab=os.path.abspath(vocab),
            vocab_sha256=sha256_of_file(vocab),
            vocab_size=len(dictionary),
            glue_dir=os.path.abspath(args.glue_dir),
            heldout_every=args.heldout_every,
            splits={},
        )
        for split, layout, path, (texts_a, texts_b, ys) in todo:
            n, truncated, longest = binarize_split(
                tok, dictionary, texts_a, texts_b, ys, os.path.join(tmp, split), regression
            )
            meta["splits"][split] = {
                "file": os.path.abspath(path),
                "examples": n,
                "labelled": ys is not None,
                "pairs": texts_b is not None,
                "truncated": truncated,
                "longest": longest,
            }
            if not regression and ys is not None:
                meta["splits"][split]["label_counts"] = [ys.count(i) for i in range(len(labels))]
            if split == "train" and transfer_labels is not None:
                meta["splits"]["train"].update(
                    transfer_examples=len(transfer_labels), transfer=os.path.abspath(args.transfer),
                    transfer_labels=os.path.abspath(args.transfer_labels),
                    transfer_labels_sha256=sha256_of_file(args.transfer_labels))
            print(
                f"glue_binarize: {task} {split}: {n} examples from {path}"
                f"{f', {truncated} truncated to {args.max_len} tokens' if truncated else ''}"
            )
        dictionary.save(os.path.join(tmp, "dict.txt"))
        write_meta(tmp, meta)
        # temporary files and folders are created private; the outputs get the usual permissions
        os.chmod(os.path.join(tmp, "dict.txt"), usual_file_mode())
    return meta


def split_heldout(todo, every):
    """train's every `every`-th example becomes the split heldout, the rest stays train."""
    out = []
    for split, layout, path, (texts_a, texts_b, ys) in todo:
        if split != "train":
            out.append((split, layout, path, (texts_a, texts_b, ys)))
            continue
        parts = {"train": [], "heldout": []}
        for i in range(len(texts_a)):
            parts["heldout" if (i + 1) % every == 0 else "train"].append(i)
        if not parts["heldout"] or not parts["train"]:
            raise GlueFormatError(f"{path}: {len(texts_a)} training examples are too few for "
                                  f"--heldout-every {every}")
        for name, idx in parts.items():
            out.append((name, layout, path, ([texts_a[i] for i in idx],
                                             None if texts_b is None else [texts_b[i] for i in idx],
                                             None if ys is None else [ys[i] for i in idx])))
    return out


def read_teacher_labels(path, n, labels, transfer):
    """The labels of evaluate_glue --predictions (`index<TAB>prediction`, a header, then one row per
    example of the transfer split, in order), as class indices (or scores for STS-B)."""
    layout = {"a": 0, "b": None, "label": 1, "columns": 2, "header": True}
    index, _, ys = read_tsv(path, layout, labels)
    for i, cell in enumerate(index):
        if cell != str(i):
            raise GlueFormatError(f"{path}:{i + 2}: index {cell!r}, expected {i} (one row per example of "
                                  f"{transfer}, in order)")
    if len(ys) != n:
        raise GlueFormatError(f"{path}: {len(ys)} labels for the {n} examples of {transfer}")
    return ys


def append_transfer(todo, ys):
    """train gains the transfer split's examples with the teacher's labels ys (after heldout was taken)."""
    transfer = next(item for item in todo if item[0] == "transfer")
    out = []
    for split, layout, path, (texts_a, texts_b, labels) in todo:
        if split == "train":
            t_a, t_b, _ = transfer[3]
            texts_a = texts_a + t_a
            texts_b = None if texts_b is None else texts_b + t_b
            labels = labels + list(ys)
        out.append((split, layout, path, (texts_a, texts_b, labels)))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python preprocess/glue_binarize.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", required=True, choices=sorted(GLUE_TASKS), help="GLUE task (its TSV layout and labels)")
    p.add_argument("--glue-dir", required=True, help="the task's folder of GLUE TSV files (train.tsv, dev.tsv, ...)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--vocab", help="the checkpoint's WordPiece vocab.txt")
    src.add_argument("--bert-dir", help="output folder of convert_hf_bert (vocab.txt, config.json)")
    p.add_argument("--out", required=True, help="output folder (written under a temporary name, renamed when complete)")
    p.add_argument(
        "--max-len", type=int, default=128,
        help="longest input in tokens, [CLS] and [SEP] included; longer ones are cut longest-first (default 128)",
    )
    p.add_argument(
        "--lowercase", action=argparse.BooleanOptionalAction, default=None,
        help="lower-case (and strip accents) before WordPiece, as an uncased BERT; default: "
        "tokenizer_config.json's do_lower_case, else whether vocab.txt has upper-case tokens",
    )
    p.add_argument(
        "--heldout-every", type=int, default=0,
        help="every N-th training example goes to the split heldout (validation for training), not to train",
    )
    p.add_argument("--transfer", metavar="FILE",
                   help="unlabelled text in the task's test layout, binarised as the split transfer")
    p.add_argument("--transfer-labels", metavar="FILE",
                   help="a teacher's labels of --transfer (evaluate_glue --predictions): those examples are "
                        "appended to train, after the held-out split is taken")
    args = p.parse_args(argv)
    if args.transfer_labels and not args.transfer:
        p.error("--transfer-labels needs --transfer (the text they label)")
    if args.heldout_every == 1 or args.heldout_every < 0:
        p.error("--heldout-every must be 0 (none) or at least 2")
    try:
        binarize(args)
    except GlueFormatError as e:
        print(f"glue_binarize: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
