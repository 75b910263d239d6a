"""A full disk while writing an output (#13), simulated: the write fails with ENOSPC part-way. The
previous complete file stays in place, no partial file is left under any name, and the error is one
line naming the file (DiskFullError, a SelfteachError: the tools, and in fairseq's own the excepthook of
core/error_report.py, print just that)."""
import errno
import os
import re

import numpy as np
import pytest
import torch

import fairseq_selfteach.core.checkpoint_io as checkpoint_io
import selfteach_pipeline.files as files
import fairseq_selfteach.core.teacher_cache as teacher_cache
from selfteach_pipeline.errors import DiskFullError, SelfteachError


def enospc():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def assert_explained(error, path, existed):
    message = str(error)
    assert isinstance(error, SelfteachError) and "\n" not in message
    assert message.startswith(f"no space left on the device writing {path}: ")
    assert ("is unchanged" in message) == existed


def test_a_checkpoint_write_that_fills_the_disk_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "student.pt"
    checkpoint_io.atomic_torch_save({"model": {"w": torch.ones(3)}}, str(path))
    before = path.read_bytes()

    def full_after_some_bytes(obj, f):
        f.write(b"PK\x03\x04" + b"\0" * 4096)  # the start of a zip, then the device is full
        raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos") from enospc()

    monkeypatch.setattr(checkpoint_io.torch, "save", full_after_some_bytes)
    with pytest.raises(DiskFullError) as e:
        checkpoint_io.atomic_torch_save({"model": {"w": torch.zeros(3)}}, str(path))
    assert_explained(e.value, path, existed=True)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["student.pt"]


def test_a_results_file_that_fills_the_disk_is_never_half_written(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    real_fdopen = os.fdopen

    class FullFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            raise enospc()

    monkeypatch.setattr(files.os, "fdopen", lambda fd, *a, **k: FullFile(real_fdopen(fd, *a, **k)))
    with pytest.raises(DiskFullError) as e:
        files.atomic_write_text(str(path), '{"rows": []}\n' * 100)
    assert_explained(e.value, path, existed=False)
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    files.atomic_write_text(str(path), "old\n")
    monkeypatch.setattr(files.os, "fdopen", lambda fd, *a, **k: FullFile(real_fdopen(fd, *a, **k)))
    with pytest.raises(DiskFullError) as e:
        files.atomic_write_text(str(path), "new\n" * 100)
    assert_explained(e.value, path, existed=True)
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["results.json"]


def test_a_teacher_cache_that_does_not_fit_is_refused_before_its_memory_map_is_written(tmp_path, monkeypatch):
    """A memory map over a sparse file would meet the full disk as SIGBUS when a page is written; the
    cache's blocks are allocated up front, so the build stops with ENOSPC there and leaves nothing."""
    out = tmp_path / "cache"
    calls = []

    def no_room(fd, offset, length):
        calls.append(length)
        raise enospc()

    monkeypatch.setattr(teacher_cache.os, "posix_fallocate", no_room)
    batches = [{"id": torch.tensor([0, 1])}]
    rows = lambda sample: (torch.randn(2, 5), torch.tensor([1, 1]))  # noqa: E731  (2 sentences, 5 classes)
    with pytest.raises(DiskFullError) as e:
        teacher_cache.build_cache(str(out), batches, np.array([1, 1]), rows, "logits", 0, {})
    assert_explained(e.value, out, existed=False)
    assert calls and calls[0] >= 2 * 5 * 4  # the whole values array, allocated at once
    assert os.listdir(tmp_path) == []


# ------------------------------------------------- through the CLIs: fairseq's own writing, simulated
@pytest.mark.slow
def test_a_full_disk_in_fairseqs_checkpoint_save_is_one_line_and_the_rerun_goes_on(toy_data, tmp_path):
    """fairseq-train whose second checkpoint save (end of epoch 2) meets a full disk in torch.save, and so
    do fairseq's two retries: one line naming the checkpoint, no traceback (fairseq logs one, dropped),
    checkpoint_last.pt of epoch 1 whole; the same command again continues."""
    from tests.helpers import kill_at, train

    args = ["--arch", "transformer_iwslt_de_en", "--encoder-layers", 1, "--decoder-layers", 1,
            "--criterion", "label_smoothed_cross_entropy", "--lr", "1e-3", "--max-epoch", 2]
    p = train(toy_data, tmp_path, *args, check=False,
              env=kill_at("torch:save:2", "enospc"))
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    last_line = p.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"error: no space left on the device writing {re.escape(str(tmp_path))}/checkpoint_"
                        r"(best|last)\.pt: free some space and run the same command again, which continues "
                        r"from the last complete checkpoint", last_line), last_line
    saved = torch.load(tmp_path / "checkpoint_last.pt", weights_only=False)["optimizer_history"][-1]
    assert saved["num_updates"] == 23  # epoch 1's, whole
    again = train(toy_data, tmp_path, *args)
    assert "checkpoint_last.pt (epoch 2 @ 23 updates)" in again.stdout + again.stderr


@pytest.mark.slow
def test_a_full_disk_while_binarising_is_one_line_and_nothing_is_taken_for_done(tmp_path):
    """prepare_translation.py whose fairseq-preprocess meets a full disk: one line, exit 2, and no
    prepared folder under the final name (the partial one stays OUT.tmp, redone by the next run)."""
    from tests.helpers import REPO, kill_at, run

    raw = tmp_path / "raw"
    raw.mkdir()
    for split, n in (("train", 60), ("test", 5)):
        for lang in ("de", "en"):
            (raw / f"{split}.{lang}").write_text("".join(f"{lang} satz nummer {i} .\n" for i in range(n)))
    out = tmp_path / "prep"
    script = os.path.join(REPO, "preprocess", "prepare_translation.py")
    args = ["python", script, "--raw", raw, "--src", "de", "--tgt", "en", "--out", out, "--bpe-merges", 20,
            "--workers", 1]
    p = run(args, check=False, env=kill_at("fairseq.data.indexed_dataset:MMapIndexedDatasetBuilder.add_item:3",
                                           "enospc"))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert p.stderr.strip() == (f"error: no space left on the device while fairseq-preprocess wrote {out}.tmp/bin: "
                                f"{out} was not made; free some space and run again")
    assert not out.exists()
