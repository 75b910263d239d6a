"""The cached teacher (core/teacher_cache.py, cli/teacher_cache.py, --teacher-cache): the top-k KL, the
cache built by the real tool from a trained teacher, training from it through fairseq-train, and every
refusal (another teacher, other data, a corrupt or truncated cache, a direction the top k cannot give)."""
import os
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import USER_DIR, run, train, train_metrics, valid_metrics

from fairseq_selfteach.core.kd import kd_from_log_probs, kd_loss, log_probs, top_k_target

STUDENT = ["--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en", "--encoder-layers", 2,
           "--decoder-layers", 2, "--criterion", "self_distill", "--kd-alpha", 0.5, "--kd-temperature", 2,
           "--lr", "1e-3", "--warmup-updates", 5, "--dropout", 0, "--log-interval", 1]


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 6), vocab=st.integers(2, 40), temperature=st.sampled_from([0.5, 1.0, 2.0, 20.0]),
       scale=st.sampled_from([1.0, 30.0]), seed=st.integers(0, 2**16))
def test_top_k_with_k_the_vocabulary_is_the_full_kl(rows, vocab, temperature, scale, seed):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(rows, vocab, generator=g) * scale
    teacher = torch.randn(rows, vocab, generator=g) * scale
    top = teacher.topk(vocab, dim=-1)
    cached = kd_from_log_probs(log_probs(student, temperature), top_k_target(top.indices, top.values, temperature),
                               temperature, "forward")
    # float32 sums of terms up to (scale / T) in size, times T²: summation order shows at that scale
    tolerance = 1e-6 * temperature**2 * rows * vocab * max(1.0, scale / temperature)
    assert torch.allclose(cached, kd_loss(student, teacher, temperature), rtol=1e-5, atol=tolerance)


def test_top_k_renormalises_over_the_k_and_refuses_other_directions():
    student, teacher = torch.randn(3, 10), torch.randn(3, 10)
    top = teacher.topk(4, dim=-1)
    target = top_k_target(top.indices, top.values, 2.0)
    assert torch.allclose(target.log_probs.exp().sum(-1), torch.ones(3))
    p = target.log_probs.exp()
    q = log_probs(student, 2.0).gather(-1, top.indices)
    expected = (p * (target.log_probs - q)).sum() * 4.0
    assert torch.allclose(kd_from_log_probs(log_probs(student, 2.0), target, 2.0, "forward"), expected)
    with pytest.raises(ValueError, match="top-k teacher cache gives only forward"):
        kd_from_log_probs(log_probs(student), target, 1.0, "reverse")


slow = pytest.mark.slow


def build_cache(data, teacher_path, out, *extra, check=True):
    return run(["python", "-m", "fairseq_selfteach.cli.teacher_cache", data, "--user-dir", USER_DIR,
                "--teacher-path", teacher_path, *STUDENT, "--cpu", "--max-tokens", 1024, "--cache-out", out,
                *extra], check=check)


def vocabulary(data):
    with open(os.path.join(data, "dict.tgt.txt"), encoding="utf-8") as f:
        return 4 + sum(1 for _ in f)  # fairseq's 4 special symbols come first


@pytest.fixture(scope="module")
def caches(teacher, toy_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    full, top8 = root / "full", root / "top8"
    p = build_cache(toy_data, teacher["path"], full, "--cache-top-k", vocabulary(toy_data))
    build_cache(toy_data, teacher["path"], top8)
    return {"full": full, "top8": top8, "log": p.stdout + p.stderr, "root": root}


@slow
def test_the_tool_caches_every_target_token_of_the_teacher(caches, teacher, toy_data):
    import json

    from fairseq.data import data_utils

    meta = json.loads((caches["full"] / "meta.json").read_text())
    assert f"wrote {caches['full']}: 3000 samples" in caches["log"]
    targets = data_utils.load_indexed_dataset(os.path.join(toy_data, "train.src-tgt.tgt"), None)
    assert meta["samples"] == len(targets) == 3000 and meta["rows"] == int(targets.sizes.sum())
    assert meta["kind"] == "top_k" and meta["k"] == vocabulary(toy_data) and meta["split"] == "train"
    top8 = json.loads((caches["top8"] / "meta.json").read_text())
    assert top8["k"] == 8 and top8["bytes_per_row"] == pytest.approx(8 * 8, abs=1.5)  # float32 + int32, and the offsets
    assert not any(name.endswith(".tmp") for name in os.listdir(caches["root"]))
    # the stored logits are the teacher's: sample 7's rows equal its logits at every target token
    from fairseq_selfteach.core.teacher_cache import TeacherCache, data_fingerprint
    from selfteach_pipeline.files import sha256_of_file

    cache = TeacherCache.open(str(caches["top8"]), sha256_of_file(teacher["path"]), toy_data)
    values, indices, counts = cache.rows(torch.tensor([7, 3]))
    assert counts.tolist() == [int(targets.sizes[7]), int(targets.sizes[3])]
    assert values.shape == (counts.sum(), 8) and torch.all(values[:, :-1] >= values[:, 1:])
    assert meta["data_fingerprint"] == data_fingerprint(toy_data, "train")


@slow
def test_training_from_a_full_cache_equals_the_teacher(caches, teacher, toy_data, tmp_path):
    """k = the vocabulary: every logged term of every update equals the uncached run's (the same
    batches, dropout off); the valid loss too, which still runs the teacher."""
    runs = {}
    for name, extra in (("teacher", []), ("cache", ["--teacher-cache", caches["full"]])):
        p = train(toy_data, tmp_path / name, "--teacher-path", teacher["path"], *STUDENT, "--max-update", 6, *extra)
        runs[name] = p.stdout + p.stderr
    assert "teacher cache" in runs["cache"] and "teacher cache" not in runs["teacher"]
    mine, theirs = train_metrics(runs["cache"]), train_metrics(runs["teacher"])
    assert sorted(mine) == sorted(theirs) == [1, 2, 3, 4, 5, 6]
    for update in mine:
        for key in ("loss", "gold_loss", "kd_loss", "nll_loss"):
            assert mine[update][key] == pytest.approx(theirs[update][key], abs=2e-3), (update, key)
    assert mine[6]["kd_loss"] != mine[1]["kd_loss"]
    losses = [[{k: v for k, v in row.items() if k.endswith("loss")} for row in valid_metrics(runs[name])]
              for name in ("cache", "teacher")]
    assert losses[0] == losses[1] and losses[0]  # validation runs the teacher: the same losses
    a = torch.load(tmp_path / "cache" / "checkpoint_last.pt", weights_only=False)
    b = torch.load(tmp_path / "teacher" / "checkpoint_last.pt", weights_only=False)
    assert a["task_state"]["teacher_cache"] == str(caches["full"])
    for key in b["model"]:
        assert torch.allclose(a["model"][key], b["model"][key], atol=1e-4), key


@slow
def test_training_from_a_top_8_cache_learns(caches, teacher, toy_data, tmp_path):
    p = train(toy_data, tmp_path / "s", "--teacher-path", teacher["path"], *STUDENT, "--max-update", 40,
              "--log-interval", 10, "--teacher-cache", caches["top8"])
    rows = train_metrics(p.stdout + p.stderr)
    first, last = rows[min(rows)], rows[max(rows)]
    assert max(rows) == 40 and last["kd_loss"] < first["kd_loss"] and last["loss"] < first["loss"]


def refused(toy_data, teacher_path, cache, tmp_path, *extra, data=None):
    p = train(data or toy_data, tmp_path / "refused", "--teacher-path", teacher_path, *STUDENT, "--max-update", 1,
              "--teacher-cache", cache, *extra, check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "refused" / "checkpoint_last.pt").exists()
    return p.stderr.strip().splitlines()[-1]


@slow
def test_another_teacher_file_is_refused(caches, teacher, toy_data, tmp_path):
    other = tmp_path / "other.pt"
    state = torch.load(teacher["path"], weights_only=False)
    state["re_saved"] = 1  # other bytes, same weights
    torch.save(state, other)
    line = refused(toy_data, other, caches["top8"], tmp_path)
    assert "was made from teacher sha256" in line and "--teacher-path has sha256" in line


@slow
def test_other_data_is_refused(caches, teacher, toy_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    with open(data / "train.src-tgt.tgt.bin", "ab") as f:
        f.write(b"\0\0")
    line = refused(toy_data, teacher["path"], caches["top8"], tmp_path, data=str(data))
    assert "was made from other data" in line and "fingerprint" in line


@slow
@pytest.mark.parametrize("damage", ["flip", "truncate", "meta"])
def test_a_corrupt_or_truncated_cache_is_refused(caches, teacher, toy_data, tmp_path, damage):
    cache = tmp_path / "cache"
    shutil.copytree(caches["top8"], cache)
    values = cache / "values.npy"
    if damage == "flip":
        data = bytearray(values.read_bytes())
        data[-5] ^= 0xFF
        values.write_bytes(bytes(data))
    elif damage == "truncate":
        with open(values, "r+b") as f:
            f.truncate(os.path.getsize(values) // 2)
    else:
        (cache / "meta.json").write_text("{not json")
    line = refused(toy_data, teacher["path"], cache, tmp_path)
    assert ("truncated or corrupt" in line) if damage != "meta" else ("meta.json is unreadable" in line), line


@slow
def test_what_the_cache_cannot_do_is_refused(caches, teacher, toy_data, tmp_path):
    line = refused(toy_data, teacher["path"], caches["top8"], tmp_path, "--kd-direction", "reverse")
    assert "--kd-direction reverse needs the teacher's whole distribution" in line
    line = refused(toy_data, teacher["path"], tmp_path / "nowhere", tmp_path)
    assert "no meta.json, not a teacher cache" in line
    p = build_cache(toy_data, teacher["path"], caches["top8"], check=False)
    assert p.returncode == 1 and "exists: remove it" in p.stderr and "Traceback" not in p.stderr
    assert np.load(caches["top8"] / "offsets.npy").shape == (3001,)  # untouched
    (tmp_path / "empty").mkdir()
    p = build_cache(tmp_path / "empty", teacher["path"], tmp_path / "c", check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith(f"teacher_cache: error: data {tmp_path / 'empty'}: ")


def test_a_missing_arch_is_one_line_saying_so(tmp_path):
    """fairseq's parser raises a bare RuntimeError without --arch; the tool names the option instead (it
    stops there: neither the data nor the teacher is read)."""
    p = run(["selfteach-teacher-cache", tmp_path, "--task", "self_distill_translation", "--teacher-path",
             tmp_path / "teacher.pt", "--cache-out", tmp_path / "cache"], check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert p.stderr.strip().splitlines()[-1].startswith("teacher_cache: error: --arch is missing: "), p.stderr
    assert not (tmp_path / "cache").exists()
