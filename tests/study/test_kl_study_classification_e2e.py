"""The KL study's classification family end to end, through the real tools (selfteach-convert-hf-bert,
fairseq-train with the plugin's GLUE tasks, selfteach-export-student, selfteach-evaluate-glue): the
MiniLM's first 3 layers as the teacher on a small synthetic sentiment set, 1-layer students, one seed
(the translation test runs two),
then the report's accuracy contrasts with McNemar's test per unit."""
import json
import os
import random

import pytest

from tests.helpers import REPO, run

pytestmark = pytest.mark.slow

GOOD = ["good", "great", "wonderful", "lovely", "superb", "fine", "brilliant", "pleasant"]
BAD = ["bad", "awful", "terrible", "boring", "dreadful", "poor", "dull", "horrible"]
THINGS = ["film", "story", "cast", "ending", "music", "script", "acting", "plot"]


def sentences(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randrange(2)
        word = rng.choice(GOOD if label else BAD)
        rows.append((f"the {rng.choice(THINGS)} was {word} and the {rng.choice(THINGS)} too", label))
    return rows


@pytest.fixture(scope="module")
def sentiment_bin(tmp_path_factory, minilm_dir):
    root = tmp_path_factory.mktemp("klsent")
    os.makedirs(root / "SENT")
    for split, n, seed in (("train", 150, 1), ("dev", 40, 2)):
        (root / "SENT" / f"{split}.tsv").write_text(
            "sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in sentences(n, seed)))
    run(["python", os.path.join(REPO, "preprocess", "glue_binarize.py"), "--task", "SST-2", "--glue-dir",
         root / "SENT", "--vocab", os.path.join(minilm_dir, "vocab.txt"), "--out", root / "bin", "--max-len", 32,
         "--heldout-every", 5])
    return str(root / "bin")


def test_classification_arms_run_and_the_report_compares_accuracy(sentiment_bin, minilm_dir, tmp_path):
    out = str(tmp_path / "teacher1")
    tiny = ["--set", f"bert_dir={minilm_dir}", "--set", "teacher_layers=3", "--set", "student_depth=1",
            "--set", "gradual_via=2", "--set", "teacher_updates=10", "--set", "teacher_warmup=2",
            "--set", "student_updates=6", "--set", "student_warmup=1", "--set", "student_seeds=1",
            "--set", "sweep_temperature=1", "--set", "batch_size=16",
            "--set", "update_cost_updates=8", "--set", "update_cost_pairs=1"]
    stdout = run(["selfteach-kl-study", "--family", "classification", "--out", out, "--data", sentiment_bin,
                  "--cores", 2] + tiny).stdout
    assert "sweep picked α = " in stdout
    log = open(os.path.join(out, "logs", "train_ce_same_init_s1.log")).read()
    assert "student initialised from teacher" in log and "encoder.layers <- teacher [0]" in log
    run(["selfteach-kl-study", "--report", out, "--out", tmp_path / "report"])
    contrasts = {c["name"]: c for c in json.load(open(tmp_path / "report" / "contrasts.json"))}
    assert set(contrasts) == {"kd_vs_ce_same_init", "kd_vs_ce_same_init_long", "gradual_vs_kd_equal_updates",
                              "kd_vs_truncated_equal_compute", "teacher_longer_vs_teacher", "teacher_vs_scratch_valid"}
    assert contrasts["kd_vs_ce_same_init"]["metric"] == "accuracy (dev, %)"
    assert contrasts["teacher_vs_scratch_valid"]["metric"] == "accuracy (heldout, %)"
    assert contrasts["kd_vs_ce_same_init"]["per_unit_test"] == "exact McNemar"
    results = json.load(open(tmp_path / "report" / "results.json"))
    arms = results["arms"]
    assert set(arms) == {"teacher", "teacher_longer", "kd", "ce_same_init", "ce_same_init_long", "gradual",
                         "truncated_equal_compute"}
    assert arms["truncated_equal_compute"]["updates"] == 16 and arms["kd"]["total_updates"] == 16
    assert arms["kd"]["layers"] == 1 and arms["teacher"]["layers"] == 3
    for arm in arms.values():  # accuracy on 40 dev examples: a multiple of 2.5
        assert 0 <= arm["score_min"] <= 100 and abs(arm["score_min"] / 2.5 - round(arm["score_min"] / 2.5)) < 1e-6
