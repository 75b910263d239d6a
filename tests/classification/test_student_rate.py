"""BERT's fine-tuning rate stalls a shallow model on a small task, and a rate chosen on held-out data
does not. With SST-2's settings (scripts/glue_settings.tsv: [CLS] pooling, batch 32, 3 epochs, linear
decay) on 1,760 sentiment snippets in SST-2's layout, the MiniLM's first 3 layers with a fresh head (the
command the pipeline plans for its truncated baseline) answer the majority class at every validation at
2e-5; at 5e-4, the rate the pipeline's --sweep picks for that baseline on these data
(docs/results/student-rate/), they learn."""
import os
import re

import pytest

from selfteach_pipeline.glue_cli import make_pipeline
from selfteach_pipeline.runner import run_stage
from tests.classification.test_glue import SNIPPETS, vader_sdist  # noqa: F401 (fixture)
from tests.helpers import BIN, minilm_path, run

pytestmark = pytest.mark.slow
VALID = re.compile(r"valid on 'valid' subset .*?glue_score ([\d.]+) \| glue_collapsed (\d)")


def test_sst2_settings_stall_a_3_layer_model_at_2e5_and_the_held_out_rate_does_not(tmp_path, vader_sdist,  # noqa: F811
                                                                                    monkeypatch):
    monkeypatch.setenv("PATH", os.environ["PATH"] + os.pathsep + BIN)  # the stages' tools, after the fork server's
    run(["python", SNIPPETS, "--out", tmp_path / "snippets", "--sdist", vader_sdist, "--max-examples", 2200,
         "--dev-every", 5])
    out = tmp_path / "run"
    argv = ["SST-2", "--out", str(out), "--glue-dir", str(tmp_path / "snippets" / "SENT"), "--bert-dir", minilm_path(),
            "--cpu", "--student-depths", "3", "--gradual-schedule", "6,3", "--seeds", "1"]
    plan = make_pipeline(argv, gpus=0)[2].build()
    for stage in ("convert", "binarize"):
        run_stage(str(out), plan[stage])
    pipeline = make_pipeline(argv, gpus=0)[2]
    words = list(pipeline.build()["truncated_same_budget_enc3_s1"].argv)
    meta = pipeline.f.meta
    assert meta["splits"]["train"]["examples"] == 1760 and words[words.index("--pooling") + 1] == "cls"
    assert words[words.index("--max-update") + 1] == str(3 * 55)  # SST-2's 3 epochs of ⌈1760 / 32⌉ updates
    counts = meta["splits"]["valid"]["label_counts"]
    majority = 100.0 * max(counts) / sum(counts)

    validations = {}
    for lr in ("2e-5", "5e-4"):
        words[words.index("--lr") + 1] = lr
        words[words.index("--save-dir") + 1] = str(out / "models" / f"truncated_lr{lr}")
        p = run(words)
        validations[lr] = VALID.findall(p.stdout + p.stderr)
        assert len(validations[lr]) == 3, validations  # one per epoch
    assert all(collapsed == "1" for _, collapsed in validations["2e-5"]), validations  # one class, every time
    assert validations["5e-4"][-1][1] == "0", validations
    assert max(float(score) for score, _ in validations["5e-4"]) > majority + 10, (validations, majority)
