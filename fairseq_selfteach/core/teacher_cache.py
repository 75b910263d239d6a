"""The teacher's outputs on the training set, computed once and read instead of running the teacher.

An offline student pays a full teacher forward every update of every epoch. `cli/teacher_cache.py`
runs the teacher over the training split once and stores, per sample id, what the KL needs:
  translation:    per target token, the teacher's k largest logits and their vocabulary indices
                  (k = 8 by default); the KL then uses the teacher's distribution renormalised over
                  those k tokens (core/kd.py kd_top_k): exact for k = vocabulary size;
  classification: per sentence, all the teacher's logits (a handful of classes: nothing to drop).

A cache is a folder, written under a temporary name and renamed when complete:
  meta.json    what it was made from (teacher sha256, the data's fingerprint, split, k, T) and the
               sha256 of each array, checked on opening, so a corrupt or truncated cache is refused
  offsets.npy  int64 (samples + 1): sample i's rows are offsets[i] .. offsets[i+1]
  values.npy   float32 (rows x k): logits, not probabilities, so any --kd-temperature can read them
               (the top k of the logits are the top k at every temperature; T is recorded, not required)
  indices.npy  int32 (rows x k): their vocabulary indices (translation only)
"""
import hashlib
import json
import logging
import os
import shutil
from typing import Optional

import numpy as np
import torch

from fairseq_selfteach.core.teacher import Teacher
from selfteach_pipeline.errors import SelfteachError, disk_full
from selfteach_pipeline.files import is_disk_full, sha256_of_file

logger = logging.getLogger(__name__)

FORMAT = 1
KINDS = ("top_k", "logits")


class CacheError(SelfteachError):
    """A teacher cache that cannot be used: missing, corrupt, or made from something else."""


def data_fingerprint(data_dir: str, split: str) -> str:
    """sha256 over the names and bytes of the split's binarised files and the dictionaries in DATA_DIR
    (the first of fairseq's colon-separated data paths)."""
    folder = str(data_dir).split(os.pathsep)[0]
    if not os.path.isdir(folder):
        raise CacheError(f"data folder {folder} does not exist")
    names = sorted(n for n in os.listdir(folder)
                   if (n.startswith(split + ".") or (n.startswith("dict") and n.endswith(".txt")))
                   and os.path.isfile(os.path.join(folder, n)))
    if not any(n.startswith(split + ".") for n in names):
        raise CacheError(f"data folder {folder} has no files of split {split!r}")
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0" + sha256_of_file(os.path.join(folder, name)).encode())
    return h.hexdigest()


def build_cache(out: str, batches, row_counts, teacher_rows, kind: str, k: int, meta: dict) -> dict:
    """Write the cache folder OUT from `batches` (every sample of the split, once, in any order).

    row_counts: rows per sample id (target tokens, or 1 per sentence); teacher_rows(sample) gives
    (logits N x C of the sample's rows in id order within the batch, rows per sample B). Written as
    OUT.tmp and renamed: OUT is complete or absent."""
    if kind not in KINDS:
        raise ValueError(f"unknown cache kind {kind!r}")
    if os.path.exists(out):
        raise CacheError(f"{out} exists: remove it, or give another --cache-out")
    counts = np.asarray(row_counts, dtype=np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    rows = int(offsets[-1])
    tmp = f"{out}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # a build that was killed
    os.makedirs(tmp)
    seen = np.zeros(len(counts), dtype=bool)
    values = indices = None
    width = None
    try:
        for sample in batches:
            logits, per_sample = teacher_rows(sample)
            ids = sample["id"].cpu().numpy()
            per_sample = np.asarray(per_sample.cpu() if torch.is_tensor(per_sample) else per_sample)
            bad = np.nonzero(per_sample != counts[ids])[0]
            if len(bad):
                i = int(ids[bad[0]])
                raise CacheError(f"sample {i} has {int(per_sample[bad[0]])} rows in its batch but the dataset "
                                 f"says {int(counts[i])}")
            if values is None:
                classes = logits.size(-1)
                width = classes if kind == "logits" else min(k, classes)
                values = _allocated_memmap(os.path.join(tmp, "values.npy"), np.float32, (rows, width))
                if kind == "top_k":
                    indices = _allocated_memmap(os.path.join(tmp, "indices.npy"), np.int32, (rows, width))
            target, _ = _row_index(offsets, ids)
            logits = logits.float()
            if kind == "top_k":
                top = logits.topk(width, dim=-1)
                values[target] = top.values.cpu().numpy()
                indices[target] = top.indices.cpu().numpy().astype(np.int32)
            else:
                values[target] = logits.cpu().numpy()
            seen[ids] = True
        if not seen.all():
            missing = int(np.nonzero(~seen)[0][0])
            raise CacheError(f"the batches left out {int((~seen).sum())} samples (first: id {missing})")
        np.save(os.path.join(tmp, "offsets.npy"), offsets)
        for array in (values, indices):
            if array is not None:
                array.flush()
        del values, indices
        arrays = ["offsets", "values"] + (["indices"] if kind == "top_k" else [])
        meta = dict(meta, format=FORMAT, kind=kind, k=width, samples=len(counts), rows=rows,
                    sha256={a: sha256_of_file(os.path.join(tmp, a + ".npy")) for a in arrays})
        size = sum(os.path.getsize(os.path.join(tmp, a + ".npy")) for a in arrays)
        meta["bytes"] = size
        meta["bytes_per_row"] = round(size / max(rows, 1), 2)
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        os.replace(tmp, out)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(e):
            raise disk_full(out, False) from e
        raise
    return meta


def _allocated_memmap(path, dtype, shape):
    """np.lib.format.open_memmap, with the file's blocks allocated at once: a memory map over a sparse
    file meets a full device only when a page is written, as SIGBUS, which no handler can turn into a
    message; posix_fallocate says ENOSPC here instead."""
    array = np.lib.format.open_memmap(path, "w+", dtype, shape)
    with open(path, "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, os.path.getsize(path))
    return array


def _row_index(offsets: np.ndarray, ids: np.ndarray):
    """The cache rows of samples `ids`, concatenated in that order, and each sample's number of rows."""
    starts = offsets[ids]
    lengths = offsets[ids + 1] - starts
    within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + within, lengths


class TeacherCache:
    """A cache folder opened for reading (memory-mapped), after every check."""

    def __init__(self, path: str, meta: dict, arrays: dict):
        self.path, self.meta = path, meta
        self.kind, self.k = meta["kind"], meta["k"]
        self.offsets = arrays["offsets"]
        self.values = arrays["values"]
        self.indices = arrays.get("indices")

    @classmethod
    def open(cls, path: str, teacher_sha256: str, data_dir: str) -> "TeacherCache":
        meta_path = os.path.join(path, "meta.json")
        if not os.path.isfile(meta_path):
            hint = " (a build was interrupted: run it again)" if os.path.isdir(path + ".tmp") else ""
            raise CacheError(f"--teacher-cache {path}: no meta.json, not a teacher cache{hint}")
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
            kind, split = meta["kind"], meta["split"]
        except (ValueError, KeyError) as e:
            raise CacheError(f"--teacher-cache {path}: meta.json is unreadable ({e})") from e
        if meta.get("format") != FORMAT or kind not in KINDS:
            raise CacheError(f"--teacher-cache {path}: format {meta.get('format')} / kind {kind!r}, this "
                             f"version reads format {FORMAT}")
        if meta["teacher_sha256"] != teacher_sha256:
            raise CacheError(f"--teacher-cache {path} was made from teacher sha256 {meta['teacher_sha256'][:12]}… "
                             f"({meta.get('teacher_path')}), but --teacher-path has sha256 {teacher_sha256[:12]}…")
        fingerprint = data_fingerprint(data_dir, split)
        if meta["data_fingerprint"] != fingerprint:
            raise CacheError(f"--teacher-cache {path} was made from other data: the {split!r} split of "
                             f"{meta.get('data')} had fingerprint {meta['data_fingerprint'][:12]}…, "
                             f"{data_dir} has {fingerprint[:12]}…")
        arrays = {}
        for name, digest in meta["sha256"].items():
            file = os.path.join(path, name + ".npy")
            if not os.path.isfile(file) or sha256_of_file(file) != digest:
                raise CacheError(f"--teacher-cache {path}: {name}.npy is missing, truncated or corrupt "
                                 f"(its sha256 differs from meta.json's); build the cache again")
            try:
                arrays[name] = np.load(file, mmap_mode="r")
            except ValueError as e:
                raise CacheError(f"--teacher-cache {path}: {name}.npy is unreadable ({e})") from e
        rows, samples = meta["rows"], meta["samples"]
        if arrays["offsets"].shape != (samples + 1,) or arrays["values"].shape[0] != rows:
            raise CacheError(f"--teacher-cache {path}: its arrays do not have the shapes meta.json gives")
        logger.info(f"teacher cache {path}: {samples} samples, {rows} rows, {kind} k={meta['k']} "
                    f"({meta['bytes_per_row']} bytes per {'token' if kind == 'top_k' else 'sentence'})")
        return cls(path, meta, arrays)

    def rows(self, ids: torch.Tensor):
        """(values, indices or None) of samples `ids`, their rows concatenated in that order, and the
        number of rows of each sample."""
        ids = ids.cpu().numpy()
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self.offsets) - 1):
            raise CacheError(f"--teacher-cache {self.path}: sample id {int(ids.max())} is beyond its "
                             f"{len(self.offsets) - 1} samples: the cache is of another split")
        index, counts = _row_index(self.offsets, ids)
        values = torch.from_numpy(np.ascontiguousarray(self.values[index]))
        indices = None if self.indices is None else torch.from_numpy(
            np.ascontiguousarray(self.indices[index]).astype(np.int64))
        return values, indices, torch.from_numpy(counts)


class CachedTeacher(Teacher):
    """The frozen teacher with its training-set outputs in a cache: training batches are answered from
    the cache (criteria ask cached_rows), validation batches by the model, whose weights also still
    initialise the student. The cache is checked against the teacher file and the data on opening."""

    cached = True

    def __init__(self, frozen: Teacher, cache: TeacherCache):
        self.frozen, self.cache = frozen, cache
        self.path, self.sha256 = frozen.path, frozen.sha256

    def logits(self, sample, **forward_kwargs):
        return self.frozen.logits(sample, **forward_kwargs)

    def cached_rows(self, sample, device, counts_expected: Optional[torch.Tensor] = None):
        values, indices, counts = self.cache.rows(sample["id"])
        if counts_expected is not None and not torch.equal(counts, counts_expected.cpu().long()):
            bad = int((counts != counts_expected.cpu().long()).nonzero()[0, 0])
            raise CacheError(
                f"--teacher-cache {self.cache.path}: sample {int(sample['id'][bad])} has {int(counts[bad])} "
                f"rows in the cache but {int(counts_expected[bad])} in this batch: not a cache of this data")
        values = values.to(device, non_blocking=True)
        return values, (None if indices is None else indices.to(device, non_blocking=True))

    def follow(self, student):
        self.frozen.follow(student)

    def state_dict(self):
        return self.frozen.state_dict()

    def layer_count(self, side):
        return self.frozen.layer_count(side)
