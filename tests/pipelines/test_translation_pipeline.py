"""scripts/iwslt14.sh end to end: the IWSLT14 data path on an archive in the real layout, and the
cut-down offline demo (bible-ci) with every stage, resume and the results table."""
import glob
import json
import os
import re

import pytest
import sacrebleu
import torch
from sacremoses import MosesDetokenizer

from tests.helpers import REPO, run
from tests.pipelines.test_iwslt14_download import N_TEST, N_TRAIN, make_archive

SCRIPT = os.path.join(REPO, "scripts", "iwslt14.sh")


def pipeline(*args, check=True):
    return run(["bash", SCRIPT] + [str(a) for a in args], check=check)


def lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def test_iwslt14_data_path_from_local_archive(tmp_path):
    archive = tmp_path / "de-en.tgz"
    make_archive(str(archive))
    out = tmp_path / "run"
    p = pipeline("de", "--archive", archive, "--out", out, "--only-data")
    assert "data ready" in p.stdout
    prep = out / "data" / "prep"
    splits = (prep / "SPLITS.txt").read_text()
    # every test segment is kept (never cleaned), valid is every 23rd cleaned train pair
    test_de, test_en = lines(prep / "tok" / "test.de"), lines(prep / "tok" / "test.en")
    assert len(test_de) == len(test_en) == N_TEST
    assert f"test\t{N_TEST} pairs" in splits
    n_train, n_valid = (len(lines(prep / "tok" / f"{s}.de")) for s in ("train", "valid"))
    assert n_valid == (n_train + n_valid) // 23 and n_train + n_valid <= N_TRAIN
    # Moses tokenisation and lowercasing happened; the raw reference keeps the original text
    assert all(t == t.lower() for t in test_en)
    assert lines(prep / "ref" / "test.en") == lines(out / "data" / "raw" / "test.en")
    # joined dictionary, binarised splits, BPE codes
    assert (prep / "bin" / "dict.de.txt").read_text() == (prep / "bin" / "dict.en.txt").read_text()
    for split in ("train", "valid", "test"):
        assert (prep / "bin" / f"{split}.de-en.de.bin").exists()
    assert (prep / "bpe" / "codes").exists()
    # a second run skips both stages
    p = pipeline("de", "--archive", archive, "--out", out, "--only-data")
    assert p.stdout.count("done earlier, skipped") == 2


def test_unknown_setting_is_named(tmp_path):
    p = pipeline("xx", "--out", tmp_path, check=False)
    assert p.returncode != 0
    assert "unknown setting xx" in p.stderr and "translation_settings.tsv" in p.stderr


def test_sentencepiece_option(tmp_path):
    archive = tmp_path / "de-en.tgz"
    make_archive(str(archive))
    raw = tmp_path / "raw"
    run(["python", os.path.join(REPO, "preprocess", "iwslt14.py"), "--src", "de", "--archive", archive,
         "--out", raw])
    out = tmp_path / "prep"
    run(["python", os.path.join(REPO, "preprocess", "prepare_translation.py"), "--raw", raw / "raw",
         "--src", "de", "--out", out, "--bpe", "sentencepiece", "--bpe-merges", 120, "--workers", 1])
    assert (out / "bpe" / "spm.model").exists() and (out / "bin" / "dict.de.txt").exists()
    assert any("▁" in line for line in lines(out / "bpe" / "train.en"))


@pytest.fixture(scope="module")
def bible_ci(tmp_path_factory):
    out = tmp_path_factory.mktemp("bible_ci")
    p = pipeline("bible-ci", "--out", out, "--seqkd", "--cpu")
    return out, p.stdout + p.stderr


EXPECTED_ROWS = {"teacher_dec3": "teacher", "pruned_dec1": "pruned", "scratch_dec1": "scratch",
                 "offline_dec1": "offline", "online_dec1": "online", "gradual_dec2": "gradual",
                 "gradual_dec1": "gradual", "seqkd_dec1": "seqkd"}


@pytest.mark.slow
def test_bible_ci_table_rows_and_scores(bible_ci):
    out, _ = bible_ci
    rows = {os.path.basename(p)[:-5]: json.load(open(p)) for p in glob.glob(str(out / "results" / "*.json"))}
    assert {k: r["method"] for k, r in rows.items()} == EXPECTED_ROWS
    n_test = len(lines(out / "data" / "raw" / "test.en"))
    table = (out / "results.md").read_text()
    png = (out / "bleu_vs_params.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = MosesDetokenizer(lang="en")
    refs = lines(out / "data" / "raw" / "test.en")
    for name, r in rows.items():
        assert f"| {name} | {r['method']} |" in table
        assert r["test_sentences"] == r["sentences"] == n_test  # every test sentence decoded and scored
        assert "case:lc" in r["sacrebleu_signature"] and "tok:13a" in r["sacrebleu_signature"]
        # the score recomputed from the generate log with sacreBLEU directly
        hyps = {}
        for line in lines(out / "generate" / f"{name}.txt"):
            if line.startswith("H-"):
                sid, _, text = line[2:].split("\t", 2)
                hyps[int(sid)] = md.detokenize(text.split())
        score = sacrebleu.corpus_bleu([hyps[i] for i in range(n_test)], [refs], lowercase=True).score
        assert abs(score - r["sacrebleu"]) < 0.01, name
        assert r["sentences_per_s"] > 0
    # exact parameters: same depth, same count, whatever the method; fewer layers, fewer parameters
    depth1 = {rows[k]["params"] for k in rows if k.endswith("_dec1")}
    assert len(depth1) == 1
    assert rows["teacher_dec3"]["params"] > rows["gradual_dec2"]["params"] > depth1.pop()


@pytest.mark.slow
def test_bible_ci_models_are_what_they_claim(bible_ci):
    out, _ = bible_ci
    teacher = torch.load(out / "models" / "teacher_dec3.pt", weights_only=True)["model"]
    pruned = torch.load(out / "models" / "pruned_dec1.pt", weights_only=True)["model"]
    # the pruned baseline is the teacher's first decoder layer, untouched
    assert set(pruned) < set(teacher)
    assert all(torch.equal(pruned[k], teacher[k]) for k in pruned)
    # the offline student started from the same weights and was then trained: it moved
    offline = torch.load(out / "models" / "offline_dec1.pt", weights_only=True)["model"]
    assert set(offline) == set(pruned)
    assert not torch.equal(offline["decoder.layers.0.fc1.weight"], pruned["decoder.layers.0.fc1.weight"])
    # the teacher learned: validation loss went down
    valid = [float(m) for m in re.findall(r"valid on 'valid' subset \| loss ([\d.]+)",
                                          (out / "logs" / "teacher.train.log").read_text())]
    assert len(valid) >= 2 and valid[-1] < valid[0]
    # the seq-KD corpus is the teacher's output: same sources, different targets
    assert lines(out / "data" / "seqkd" / "train.es") == lines(out / "data" / "prep" / "bpe" / "train.es")
    assert lines(out / "data" / "seqkd" / "train.en") != lines(out / "data" / "prep" / "bpe" / "train.en")


@pytest.mark.slow
def test_bible_ci_rerun_skips_and_resumes(bible_ci):
    out, _ = bible_ci
    before = (out / "results" / "offline_dec1.json").read_text()
    # an interrupted run: offline_dec1's later stages never finished and a half-written log lies around
    for stage in ("offline_dec1", "export_offline_dec1", "eval_offline_dec1"):
        os.remove(out / "stages" / f"{stage}.done")
    os.remove(out / "results" / "offline_dec1.json")
    (out / "generate" / "offline_dec1.txt.tmp").write_text("H-0\t-1.0\thalf written\n")
    p = pipeline("bible-ci", "--out", out, "--seqkd", "--cpu")
    redone = [s for s in re.findall(r"^== (\S+)$", p.stdout, re.M)]
    assert redone == ["offline_dec1", "export_offline_dec1", "eval_offline_dec1"]
    assert "teacher: done earlier, skipped" in p.stdout
    # the training had finished before the interruption: it is neither redone nor resumed
    assert "offline_dec1: training had finished" in p.stdout
    assert not (out / "generate" / "offline_dec1.txt.tmp").exists()
    assert json.loads((out / "results" / "offline_dec1.json").read_text())["sacrebleu"] == json.loads(before)["sacrebleu"]


@pytest.mark.slow
def test_bible_ci_interrupted_training_resumes(bible_ci):
    out, _ = bible_ci
    # a training killed part way: its checkpoint_last.pt is behind and the log has no "done training"
    log = out / "logs" / "gradual_dec1.train.log"
    log.write_text(log.read_text() + "2026-01-01 | killed\n")
    for stage in ("gradual_dec1", "export_gradual_dec1", "eval_gradual_dec1"):
        os.remove(out / "stages" / f"{stage}.done")
    p = pipeline("bible-ci", "--out", out, "--seqkd", "--cpu")
    assert re.findall(r"^== (\S+)$", p.stdout, re.M) == ["gradual_dec1", "export_gradual_dec1",
                                                       "eval_gradual_dec1"]
    resumed = log.read_text().split("killed")[1]
    assert re.search(r"Loaded checkpoint .*gradual_dec1/checkpoint_last\.pt \(epoch \d+ @ [1-9]\d* updates\)",
                     resumed)
    assert (out / "results" / "gradual_dec1.json").exists()
