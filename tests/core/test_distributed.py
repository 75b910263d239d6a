"""Self-teaching on fairseq's own distributed engine: 2 CPU processes (gloo, launched by torchrun as
docs/distributed.md#fairseqs-distributed-training-on-cpu-what-works describes) against one process with --update-freq 2, and a resumed 2-process
run against an uninterrupted one.

fairseq's sharding gives rank r the batches r, r+2, ..., so 2 processes see in one update exactly the
two batches --update-freq 2 accumulates; with dropout off the two runs compute the same sums in a
different order, and agree to float tolerance. Resuming in 2 processes loads the checkpoint on rank 0
and broadcasts it, which the other rank unpickles in torch's safe mode (core/checkpoint_io.py
allow-lists what that state holds)."""
import os
import re

import pytest
import torch

import fairseq_selfteach  # noqa: F401  (the safe-loading allow-list, for torch.load of the checkpoints)
from tests.helpers import BIN, OPTIM, REPO, SMALL, USER_DIR, run, train_metrics, valid_metrics

pytestmark = pytest.mark.slow

# the torchrun line that works on CPU (legacy_ddp: pytorch_ddp asks for CUDA device ids); each rank
# gets its world size and rank from torchrun's environment
TORCHRUN = ["torchrun", "--standalone", "--nproc_per_node", "2", "--no-python", "bash", "-c",
            'exec "$@" --ddp-backend legacy_ddp --distributed-backend gloo --distributed-init-method env:// '
            '--distributed-world-size "$WORLD_SIZE" --distributed-rank "$RANK" --distributed-no-spawn', "_"]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # 2 processes on 2 cores
# dropout off: each rank re-seeds per update, so its dropout masks differ from the second micro-batch's
# of --update-freq 2; everything else is the same arithmetic
EXACT = ["--dropout", "0", "--log-interval", "1"]


def fairseq_train(args, processes):
    cmd = [os.path.join(BIN, "fairseq-train")] + [str(a) for a in args]
    if processes == 2:
        return run(TORCHRUN + cmd, env=ONE_THREAD)
    return run(cmd, env=ONE_THREAD)


def model_state(path):
    return torch.load(path, map_location="cpu")["model"]


def assert_same_weights(a, b, atol):
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= atol, worst


LOSS_TERMS = ("loss", "nll_loss", "exit2_gold_loss", "exit2_kd_loss", "exit2_nll_loss")


# ------------------------------------------------------------------------------- translation
@pytest.fixture(scope="module")
def online_runs(toy_data, tmp_path_factory):
    """An online self_distill model (exit 2 of 4 decoder layers) trained 4 updates in 2 processes and in
    one with --update-freq 2, then the 2-process run stopped after update 2 and resumed to 4."""
    root = tmp_path_factory.mktemp("ddp")
    common = [toy_data, "--user-dir", USER_DIR, "--arch", "transformer_iwslt_de_en", "--encoder-layers", 2,
              "--decoder-layers", 4, "--criterion", "self_distill", "--student-exits", 2, "--kd-alpha", 0.5,
              "--lr", "1e-3", "--warmup-updates", 10] + SMALL + OPTIM + EXACT
    out = {}
    # an online-gradual stage: exit 3 teaches exit 2, layer 4 rests (legacy_ddp all-reduces zeros for its
    # missing gradients; pytorch_ddp needs --find-unused-parameters for it, tests/core/test_gradient_sync.py)
    stage = ["--teacher-exit", 3]
    for name, processes, extra in (("two", 2, []), ("one", 1, ["--update-freq", 2]),
                                   ("gradual_two", 2, stage), ("gradual_one", 1, stage + ["--update-freq", 2])):
        p = fairseq_train(common + ["--save-dir", root / name, "--max-update", 4] + extra, processes)
        out[name] = {"dir": root / name, "log": p.stdout + p.stderr}
    first = fairseq_train(common + ["--save-dir", root / "resumed", "--max-update", 2], 2)
    again = fairseq_train(common + ["--save-dir", root / "resumed", "--max-update", 4], 2)
    out["resumed"] = {"dir": root / "resumed", "log": first.stdout + first.stderr + again.stdout + again.stderr,
                      "second": again.stdout + again.stderr}
    # offline: a 2-layer student of the one-process model, frozen in the task (every rank loads it)
    offline = [toy_data, "--user-dir", USER_DIR, "--task", "self_distill_translation", "--teacher-path",
               root / "one" / "checkpoint_last.pt", "--arch", "transformer_iwslt_de_en", "--encoder-layers", 2,
               "--decoder-layers", 2, "--criterion", "self_distill", "--kd-alpha", 0.5, "--kd-temperature", 2,
               "--lr", "1e-3", "--warmup-updates", 10, "--max-update", 3] + SMALL + OPTIM + EXACT
    # cached: the same teacher's every logit in a cache (k = the vocabulary: exact), read in 2 processes
    with open(os.path.join(toy_data, "dict.tgt.txt"), encoding="utf-8") as f:
        vocabulary = 4 + sum(1 for _ in f)
    run(["python", "-m", "fairseq_selfteach.cli.teacher_cache", "--cache-out", root / "cache",
         "--cache-top-k", vocabulary] + offline, env=ONE_THREAD)
    for name, processes, extra in (("offline_two", 2, []), ("offline_one", 1, ["--update-freq", 2]),
                                   ("cached_two", 2, ["--teacher-cache", root / "cache"])):
        p = fairseq_train(offline + ["--save-dir", root / name] + extra, processes)
        out[name] = {"dir": root / name, "log": p.stdout + p.stderr}
    return out


def test_two_processes_log_the_terms_of_one_with_update_freq_2(online_runs):
    two, one = train_metrics(online_runs["two"]["log"]), train_metrics(online_runs["one"]["log"])
    assert "distributed init (rank 1)" in online_runs["two"]["log"]
    assert sorted(two) == sorted(one) == [1, 2, 3, 4]
    for update in two:
        for term in LOSS_TERMS:
            assert two[update][term] == pytest.approx(one[update][term], abs=2e-3), (update, term)
        # the same tokens per update: every sample counted once across the 2 processes
        assert two[update]["wpb"] == one[update]["wpb"] and two[update]["bsz"] == one[update]["bsz"]
    assert two[4]["loss"] < two[1]["loss"]


def test_two_processes_update_the_weights_as_one(online_runs):
    assert_same_weights(model_state(online_runs["two"]["dir"] / "checkpoint_last.pt"),
                        model_state(online_runs["one"]["dir"] / "checkpoint_last.pt"), atol=1e-4)


def test_an_online_gradual_stage_in_two_processes_trains_as_in_one(online_runs):
    two = train_metrics(online_runs["gradual_two"]["log"])
    one = train_metrics(online_runs["gradual_one"]["log"])
    assert sorted(two) == sorted(one) == [1, 2, 3, 4]
    for update in two:
        for term in LOSS_TERMS:
            assert two[update][term] == pytest.approx(one[update][term], abs=2e-3), (update, term)
    after = model_state(online_runs["gradual_two"]["dir"] / "checkpoint_last.pt")
    assert_same_weights(after, model_state(online_runs["gradual_one"]["dir"] / "checkpoint_last.pt"), atol=1e-4)
    assert two[4]["loss"] < two[1]["loss"]
    # the stage trains exits 3 and 2 only: its terms differ from the full model's
    assert two[1]["loss"] != pytest.approx(train_metrics(online_runs["two"]["log"])[1]["loss"], abs=2e-3)


def test_two_processes_validate_as_one(online_runs):
    (two,), (one,) = valid_metrics(online_runs["two"]["log"]), valid_metrics(online_runs["one"]["log"])
    for term in LOSS_TERMS:  # means over the whole valid set: a batch lost or counted twice shows
        assert two[term] == pytest.approx(one[term], abs=2e-3), term


@pytest.mark.parametrize("run_name", ["offline_two", "cached_two"])
def test_an_offline_student_in_two_processes_learns_as_in_one(online_runs, run_name):
    """A frozen teacher, run in every process or read from its cache by sample id in every process."""
    two, one = train_metrics(online_runs[run_name]["log"]), train_metrics(online_runs["offline_one"]["log"])
    assert ("teacher cache" in online_runs[run_name]["log"]) == (run_name == "cached_two")
    assert sorted(two) == sorted(one) == [1, 2, 3]
    for update in two:
        for term in ("loss", "gold_loss", "kd_loss", "nll_loss"):
            assert two[update][term] == pytest.approx(one[update][term], abs=2e-3), (update, term)
    student = model_state(online_runs[run_name]["dir"] / "checkpoint_last.pt")
    assert not any(k.startswith("teacher") for k in student)  # the frozen teacher is not part of the model
    assert_same_weights(student, model_state(online_runs["offline_one"]["dir"] / "checkpoint_last.pt"), atol=1e-4)


def test_a_resumed_two_process_run_continues_the_uninterrupted_one(online_runs):
    second = online_runs["resumed"]["second"]
    assert re.search(r"Loaded checkpoint \S*resumed/checkpoint_last\.pt \(epoch 1 @ 2 updates\)", second), second[-3000:]
    assert "Unsupported global" not in second
    resumed, straight = train_metrics(second), train_metrics(online_runs["two"]["log"])
    assert sorted(resumed) == [3, 4]
    speed = ("wall", "ups", "wps", "train_wall")
    for update in resumed:  # the same processes, the same batches in the same order: bit-exact
        same = {k: v for k, v in resumed[update].items() if k not in speed}
        assert same == {k: v for k, v in straight[update].items() if k not in speed}, update
        assert "loss" in same and "gnorm" in same and "lr" in same
    assert_same_weights(model_state(online_runs["resumed"]["dir"] / "checkpoint_last.pt"),
                        model_state(online_runs["two"]["dir"] / "checkpoint_last.pt"), atol=0.0)


# ---------------------------------------------------------------------------- classification
WORDS = ["film", "plot", "cast", "story", "music", "ending", "script", "scene"]
STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"


def _glue_folder(folder, task, n_train, n_dev):
    """A small folder in the task's real layout (SST-2: 'good' and 'bad' sentences; STS-B: pairs that
    share more words the higher their score), with a dev size that 2 processes cannot split evenly."""
    os.makedirs(folder)
    for split, n, offset in (("train", n_train, 0), ("dev", n_dev, 3)):
        with open(os.path.join(folder, f"{split}.tsv"), "w") as f:
            f.write("sentence\tlabel\n" if task == "SST-2" else STSB_HEADER + "\n")
            for i in range(n):
                a, b = WORDS[i % 8], WORDS[(i * 3 + 1) % 8]
                if task == "SST-2":
                    label = (i + offset) % 2
                    f.write(f"{['a dull and bad', 'a fine and good'][label]} {a} , {b} {i}\t{label}\n")
                else:
                    shared = (i + offset) % 6
                    first = " ".join(WORDS[(i + j) % 8] for j in range(5))
                    second = " ".join(WORDS[(i + j) % 8] for j in range(shared)) + f" {a} {b}"
                    f.write(f"{i}\tmain\tx\t2012\t{i}\tnone\tnone\t{first}\t{second}\t{shared:.3f}\n")


def _glue_args(conv, tmp_path, task):
    _glue_folder(tmp_path / task, task, 64, 37)
    run(["python", os.path.join(REPO, "preprocess", "glue_binarize.py"), "--task", task,
         "--glue-dir", tmp_path / task, "--bert-dir", conv, "--out", tmp_path / "bin", "--max-len", 24])
    regression = ["--regression-target"] if task == "STS-B" else []
    return [tmp_path / "bin", "--user-dir", USER_DIR, "--task", "glue", "--arch", "bert_from_config",
              "--bert-config", conv / "config.json", "--finetune-from-model", conv / "model.pt",
              "--criterion", "sentence_prediction_self_distill", "--student-exits", 3, "--kd-alpha", 0.5,
              "--optimizer", "adam", "--lr", "5e-5", "--lr-scheduler", "fixed", "--batch-size", 8,
              "--max-update", 3, "--cpu", "--no-epoch-checkpoints", "--seed", 1, "--num-workers", 0,
              "--log-format", "simple", "--dropout", "0", "--attention-dropout", "0", "--log-interval", 1,
              "--best-checkpoint-metric", "glue_score", "--maximize-best-checkpoint-metric"] + regression


def test_glue_fine_tuning_from_a_converted_bert_in_two_processes(converted_minilm, tmp_path):
    """--finetune-from-model in 2 processes (rank 0 loads, rank 1 receives the broadcast state) with the
    online classification criterion: the same per-update terms and weights as one process with
    --update-freq 2, and every dev example counted once in the summed confusion counts."""
    common = _glue_args(converted_minilm, tmp_path, "SST-2")
    logs = {}
    for name, processes, extra in (("two", 2, []), ("one", 1, ["--update-freq", 2])):
        p = fairseq_train(common + ["--save-dir", tmp_path / name] + extra, processes)
        logs[name] = p.stdout + p.stderr
    assert "Unsupported global" not in logs["two"] and "distributed init (rank 1)" in logs["two"]
    two, one = train_metrics(logs["two"]), train_metrics(logs["one"])
    assert sorted(two) == sorted(one) == [1, 2, 3]
    for update in two:
        for term in ("loss", "exit3_gold_loss", "exit3_kd_loss"):
            assert two[update][term] == pytest.approx(one[update][term], abs=2e-3), (update, term)
    (v2,), (v1,) = valid_metrics(logs["two"]), valid_metrics(logs["one"])
    assert v2["glue_n"] == v1["glue_n"] == 37
    assert v2["glue_accuracy"] == pytest.approx(v1["glue_accuracy"], abs=1e-6)
    assert_same_weights(model_state(tmp_path / "two" / "checkpoint_last.pt"),
                        model_state(tmp_path / "one" / "checkpoint_last.pt"), atol=1e-4)


def test_a_regression_task_in_two_cpu_processes_is_refused_in_one_line(converted_minilm, tmp_path):
    """STS-B's validation gathers predictions (Pearson, Spearman) with fairseq's all_gather_list, which
    only runs on CUDA: on CPU the criterion says so before training, on every rank, with no traceback
    of its own."""
    common = _glue_args(converted_minilm, tmp_path, "STS-B")
    p = run(TORCHRUN + [os.path.join(BIN, "fairseq-train")] + [str(a) for a in common]
            + ["--save-dir", str(tmp_path / "two")], env=ONE_THREAD, check=False)
    assert p.returncode != 0
    assert p.stderr.count("error: --regression-target in several CPU processes") == 2, p.stderr[-3000:]
    assert "all_gather_list" in p.stderr and "ByteTensor" not in p.stderr
    assert not (tmp_path / "two" / "checkpoint_last.pt").exists()
