"""scripts/glue.sh on a GLUE column (MNLI) in GLUE's own folder layout: sentence pairs, two dev sets,
--sweep-grid on a held-out part of train, and the GLUE columns' online exits with heads of their own.
A file of its own so that it runs beside the sentiment pipeline's tests (pytest-xdist, --dist loadfile)."""
import json
import os
import re

import pytest
import torch

from tests.helpers import minilm_path, run
from tests.pipelines.test_glue_pipeline import ENV, GLUE_SH

pytestmark = pytest.mark.slow


def test_glue_layout_with_two_dev_sets(tmp_path):
    """A GLUE column (MNLI) on a folder in GLUE's real layout (--glue-dir), the MiniLM's first 2 layers
    as the teacher: sentence pairs, 3 classes, both dev sets scored and reported as two datasets. With
    --sweep on a held-out part of train (--heldout-every 2): the trainings validate on it, the sweep is
    scored on it, and the dev sets choose nothing."""
    from tests.classification.test_glue import mnli_files, write_files

    glue = tmp_path / "glue_data"
    write_files(glue / "MNLI", mnli_files())
    out = tmp_path / "run"
    run(["bash", GLUE_SH, "MNLI", "--out", out, "--glue-dir", glue, "--bert-dir", minilm_path(), "--cpu",
         "--teacher-layers", 3, "--student-depths", 1, "--gradual-schedule", "3,2,1", "--sweep-grid", "kd_alpha=0.5,0.9",
         "--heldout-every", 2], env=ENV)
    with open(out / "data" / "bin" / "meta.json") as f:
        splits = json.load(f)["splits"]
    assert splits["train"]["examples"] == 2 and splits["heldout"]["examples"] == 1  # the 2nd of 3 held out
    for name in ("teacher", "offline_enc1_s1", "online_s1", "truncated_same_budget_enc1_s1"):
        log = (out / "logs" / f"{name}.train.log").read_text()
        assert "valid on 'heldout' subset" in log and "valid on 'valid' subset" not in log, name
    points = json.loads((out / "sweep.json").read_text())
    assert len(points) == 2 and sum(p["picked"] for p in points) == 1  # --sweep-grid's, not the table's 4
    pick = next(p for p in points if p["picked"])
    assert pick["value"] == max(p["value"] for p in points)
    for p in points:  # each point scored on the held-out example, not on a dev set
        row = json.loads((out / "sweep" / f"sweep_{p['point']}.json").read_text())
        assert row["subset"] == "heldout" and row["scored"] == 1 and row["glue_score"] == p["value"]
    cfg = torch.load(out / "models" / "offline_enc1_s1" / "checkpoint_last.pt", weights_only=False)["cfg"]
    assert cfg["criterion"]["kd_alpha"] == float(pick["options"]["kd_alpha"])
    assert "Distillation options chosen on validation" in (out / "results.md").read_text()
    rows = {}
    for name in os.listdir(out / "results"):
        if name.endswith(".json"):
            with open(out / "results" / name) as f:
                r = json.load(f)
            rows[(r["name"], r["dataset"])] = r
    names = {"teacher_enc3", "offline_enc1", "online_enc1", "truncated_same_budget_enc1",
             "truncated_equal_compute_enc1", "ce_same_init_enc1", "pruned_enc1", "gradual_enc2", "gradual_enc1",
             "online_gradual_enc2", "online_gradual_enc1",
             "online_gradual_from_teacher_enc2", "online_gradual_from_teacher_enc1"}
    assert set(rows) == {(n, d) for n in names for d in ("MNLI-m", "MNLI-mm")}
    assert all(r["scored"] == (1 if r["dataset"] == "MNLI-m" else 2) for r in rows.values())
    assert all(r["head_params"] == 384 * 3 + 3 for r in rows.values())  # a 3-class head
    # the GLUE columns' online exits have a head of their own that mean-pools (exit_heads, exit_pooling);
    # the export keeps it, and its pooling, as the 1-layer model's head
    online = torch.load(out / "models" / "online_s1" / "checkpoint_best.pt", weights_only=False)
    assert online["cfg"]["model"]["exit_heads"] == "all" and online["cfg"]["model"]["exit_pooling"] == "mean"
    own = "classification_heads.sentence_classification_head_exit1."
    exported = torch.load(out / "models" / "online_enc1_s1.pt", weights_only=True)
    assert exported["cfg"]["model"]["pooling"] == "mean" and not any("_exit" in k for k in exported["model"])
    assert torch.equal(exported["model"]["encoder.pooler.dense.weight"], online["model"][own + "pooler.dense.weight"])
    assert torch.equal(exported["model"]["classification_heads.sentence_classification_head.out_proj.weight"],
                       online["model"][own + "out_proj.weight"])
    table = (out / "results.md").read_text()
    assert "| MNLI-m: accuracy | MNLI-mm: accuracy |" in table and "## MNLI-mm: every model" in table
    assert re.search(rf"\| teacher_enc3 \| teacher \| 3 \| {rows[('teacher_enc3', 'MNLI-m')]['glue_score']:.2f} \| "
                     rf"{rows[('teacher_enc3', 'MNLI-mm')]['glue_score']:.2f} \|", table)
    # the depth pick's validation score is the held-out example's (the dev sets choose nothing): the
    # candidates score 0 or 100 on it; a teacher at 0 leaves no fraction to reach, and the report says so
    for (name, dataset), r in rows.items():
        if r["method"] in ("teacher", "offline", "online", "gradual", "online-gradual"):
            assert r["valid_subset"] == "heldout" and r["valid_glue_score"] in (0.0, 100.0), name
        else:
            assert "valid_glue_score" not in r, name
    picks = {p["dataset"]: p for p in json.loads((out / "depth_pick.json").read_text())}
    for dataset in ("MNLI-m", "MNLI-mm"):
        if rows[("teacher_enc3", dataset)]["valid_glue_score"] > 0:
            assert picks[dataset]["validated_on"] == "heldout" and not picks[dataset]["same_split_as_reported"]
        else:
            assert dataset not in picks and f"No pick for {dataset}: the teacher has no positive validation" in table
    online_gradual_chains_in_one_model(out, [3, 2, 1], seeds=[1])
    online_gradual_from_teacher_starts_at_the_teacher(out, [3, 2, 1], seed=1)


def online_gradual_from_teacher_starts_at_the_teacher(out, schedule, seed):
    """online_gradual_from_teacher: the fine-tuned teacher itself is walked through the schedule, on the
    students' budget; its first student exit starts where the offline student does, with the teacher's
    pooler and head: after the stage's 3 Adam updates at the students' 1e-4 (each moves a weight by about
    the rate at most) they are still within 5e-4 of the teacher's (a freshly initialised head would be
    ~0.02 away)."""
    teacher = out / "models" / "teacher" / "checkpoint_best.pt"
    prev = teacher
    for i, k in enumerate(schedule[1:], start=1):
        folder = out / "models" / f"online_gradual_from_teacher_enc{k}_s{seed}"
        last = torch.load(folder / "checkpoint_last.pt", weights_only=False)
        assert last["cfg"]["checkpoint"]["finetune_from_model"] == str(prev)
        crit = last["cfg"]["criterion"]
        assert (crit["teacher_exit"], crit["student_exits"]) == (schedule[i - 1], str(k))
        prev = folder / "checkpoint_best.pt"
    first = torch.load(out / "models" / f"online_gradual_from_teacher_enc{schedule[1]}_s{seed}" / "checkpoint_last.pt",
                       weights_only=False)["model"]
    start = torch.load(teacher, weights_only=False)["model"]
    head = "classification_heads.sentence_classification_head"
    own = f"{head}_exit{schedule[1]}."
    for mine, teachers in (("out_proj.weight", head + ".out_proj.weight"), ("pooler.dense.weight", "encoder.pooler.dense.weight")):
        assert (first[own + mine] - start[teachers]).abs().max() < 5e-4, mine
    exported = torch.load(out / "models" / f"online_gradual_from_teacher_enc{schedule[-1]}_s{seed}.pt", weights_only=True)
    assert exported["cfg"]["model"]["encoder_layers"] == schedule[-1]


def online_gradual_chains_in_one_model(out, schedule, seeds):
    """online-gradual: stage i trains exit k_i taught by exit k_{i-1}; each later stage continues the
    one before (--finetune-from-model), the layers above its teacher exit bit for bit unchanged."""
    for seed in seeds:
        prev = None
        for i, k in enumerate(schedule[1:], start=1):
            folder = out / "models" / f"online_gradual_enc{k}_s{seed}"
            last = torch.load(folder / "checkpoint_last.pt", weights_only=False)
            crit = last["cfg"]["criterion"]
            assert (crit["teacher_exit"], crit["student_exits"]) == (schedule[i - 1], str(k))
            if prev is not None:
                assert last["cfg"]["checkpoint"]["finetune_from_model"] == str(prev)
                before = torch.load(prev, weights_only=False)["model"]
                rest = [n for n in before if n.startswith("encoder.layers.") and int(n.split(".")[2]) >= schedule[i - 1]]
                assert rest and all(torch.equal(before[n], last["model"][n]) for n in rest)
                # (whether layer 1 moved is checked in the translation pipeline's test: here a stage has 1
                # update, which fairseq's warm-up takes at learning rate 0)
                assert last["optimizer_history"][-1]["num_updates"] >= 1
            exported = torch.load(out / "models" / f"online_gradual_enc{k}_s{seed}.pt", weights_only=True)
            assert exported["cfg"]["model"]["encoder_layers"] == k
            prev = folder / "checkpoint_best.pt"
