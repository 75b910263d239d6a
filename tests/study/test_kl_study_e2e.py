"""The KL study end to end on a tiny corpus, through the real tools (fairseq-train, selfteach-export-student,
plain fairseq-generate, selfteach-score-translation, selfteach-seqkd-corpus, fairseq-preprocess): one
command runs the teacher, the sweep, every arm for two seeds; the report writes the contrasts; running
the command again runs nothing."""
import json
import os
import re
import shutil

import pytest

from tests.helpers import REPO, run

pytestmark = pytest.mark.slow

TINY = ["--set", "teacher_updates=40", "--set", "student_updates=12", "--set", "student_seeds=1,2",
        "--set", "sweep_temperature=1", "--set", "embed_dim=32", "--set", "ffn_dim=64", "--set", "heads=2",
        "--set", "teacher_warmup=5", "--set", "student_warmup=2", "--set", "max_tokens=1024",
        "--set", "generate_batch_size=64", "--set", "update_cost_updates=8", "--set", "update_cost_pairs=1"]
CONTRASTS = {"kd_vs_ce_same_init", "kd_vs_ce_same_init_long", "gradual_vs_kd_equal_updates",
             "kd_vs_scratch_equal_compute", "teacher_longer_vs_teacher", "teacher_vs_scratch_valid",
             "seqkd_vs_ce_same_init", "seqkd_vs_kd"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared folder as preprocess/prepare_translation.py writes it (bin/, tok/, ref/, bpe/), es→en."""
    root = tmp_path_factory.mktemp("klprep")
    run(["python", os.path.join(REPO, "preprocess", "make_toy_corpus.py"), root / "toy", "--train", 200,
         "--valid", 10, "--test", 20])
    os.makedirs(root / "raw")
    for split in ("train", "test"):
        for old, new in (("src", "es"), ("tgt", "en")):
            shutil.copy(root / "toy" / f"{split}.{old}", root / "raw" / f"{split}.{new}")
    run(["python", os.path.join(REPO, "preprocess", "prepare_translation.py"), "--raw", root / "raw", "--src", "es",
         "--tgt", "en", "--out", root / "prep", "--bpe", "subword_nmt", "--bpe-merges", 50, "--max-len", 40,
         "--max-train-pairs", 0, "--valid-every", 12, "--workers", 1])
    return str(root / "prep")


def test_one_command_runs_every_arm_and_the_report_says_what_it_compares(prepared, tmp_path):
    out = str(tmp_path / "teacher1")
    first = run(["selfteach-kl-study", "--out", out, "--data", prepared, "--cores", 2] + TINY).stdout
    assert "sweep picked α = " in first and "ce_same_init_long: " in first
    # ce_same_init_long's updates: 12 × what a kd update costs against a cross-entropy one, measured A B B A
    cost = json.load(open(os.path.join(out, "update_cost.json")))
    assert cost["ratio"] > 0 and len(cost["a_intervals"]) == len(cost["b_intervals"]) == 2 * 3
    long_log = open(os.path.join(out, "logs", "train_ce_same_init_long_s1.log")).read()
    assert f"num_updates {round(12 * cost['ratio'])} " in long_log or f"num_updates={round(12 * cost['ratio'])}," in long_log
    sweep = json.load(open(os.path.join(out, "sweep.json")))
    assert {p["kd_alpha"] for p in sweep["points"]} == {0.5, 0.9} and "ce_same_init_valid_score" in sweep
    # the students start from the teacher's first layer (cross-entropy-only and seqkd arms too)
    for arm in ("ce_same_init_s2", "seqkd_s1", f"kd_a{sweep['picked']['kd_alpha']:g}_t1_s2"):
        log = open(os.path.join(out, "logs", f"train_{arm}.log")).read()
        assert re.search(r"student initialised from teacher .*teacher/checkpoint_best.pt: .*decoder.layers <- teacher \[0\]", log)
    # every decoding is plain fairseq: no --user-dir
    commands = open(os.path.join(out, "commands.sh")).read().splitlines()
    decodes = [c for c in commands if "fairseq-generate" in c]
    assert len(decodes) >= 16 and not any("--user-dir" in c for c in decodes)
    again = run(["selfteach-kl-study", "--out", out, "--data", prepared, "--cores", 2] + TINY).stdout
    assert "started" not in again  # every stage's marker is there: nothing runs twice
    run(["selfteach-kl-study", "--report", out, "--out", tmp_path / "report"])
    contrasts = json.load(open(tmp_path / "report" / "contrasts.json"))
    assert {c["name"] for c in contrasts} == CONTRASTS
    for c in contrasts:
        assert set(c) >= {"name", "a", "b", "delta", "ci_low", "ci_high", "p_value", "test", "units", "metric"}
        assert c["units"] == 2 and c["p_value"] in (0.5, 1.0)  # 2 units: the exact test's only values
        diffs = [u["a"] - u["b"] for u in c["per_unit"]]
        assert abs(c["delta"] - sum(diffs) / 2) < 0.011
    results = json.load(open(tmp_path / "report" / "results.json"))
    arms = results["arms"]
    teacher = arms["teacher"]
    assert arms["kd"]["total_updates"] == arms["kd"]["updates"] + teacher["updates"] == 12 + 40
    assert arms["gradual"]["updates"] == 6 and arms["gradual"]["total_updates"] == 12 + 40
    assert arms["scratch_equal_compute"]["updates"] == arms["scratch_equal_compute"]["total_updates"] == 52
    assert arms["ce_same_init_long"]["updates"] >= 1 and arms["teacher_longer"]["layers"] == 4
    # teacher_longer's checkpoint clock starts at the teacher's (--finetune-from-model): its own seconds are
    # its process's, less than what its checkpoint says
    longer = [r for r in results["rows"] if r["arm"] == "teacher_longer" and r["seed"] == 1][0]
    checkpoint_clock = json.load(open(os.path.join(out, "results", "teacher_longer_s1.json")))["train_seconds"]
    assert longer["seconds"] < checkpoint_clock
    assert arms["kd"]["layers"] == 1 and arms["kd"]["params"] < teacher["params"]
    table = open(tmp_path / "report" / "results.md").read()
    assert "| kd_vs_ce_same_init | test |" in table and "| teacher_vs_scratch_valid | valid |" in table
    # a run still going (one seqkd row not scored yet): the rest is reported, seqkd is listed as missing
    partial = tmp_path / "partial"
    shutil.copytree(out, partial)
    os.remove(partial / "results" / "seqkd_s2.json")
    run(["selfteach-kl-study", "--report", partial, "--out", tmp_path / "partial-report"])
    summary = json.load(open(tmp_path / "partial-report" / "results.json"))["summary"]
    assert summary["missing_arms"] == ["seqkd"]
    assert summary["missing_contrasts"] == ["seqkd_vs_ce_same_init", "seqkd_vs_kd"]
    partial_contrasts = json.load(open(tmp_path / "partial-report" / "contrasts.json"))
    assert {c["name"] for c in partial_contrasts} == CONTRASTS - {"seqkd_vs_ce_same_init", "seqkd_vs_kd"}
    assert "**Not finished yet**" in open(tmp_path / "partial-report" / "results.md").read()
