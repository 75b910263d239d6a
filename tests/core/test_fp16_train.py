"""Half precision through the real fairseq-train, on CPU: every self-teaching mode with --fp16 and with
--memory-efficient-fp16, each beside the float32 run of the same batches.

fairseq's fp16 training is a GPU feature, but with --fp16-no-flatten-grads its optimizers run on CPU
(the flattened master copy asks for a CUDA device). One path stays a GPU check: when the loss scale
overflows, fairseq's trainer calls torch.tensor(0.0).cuda(), so every run here starts from a loss scale
that does not overflow, and each test checks that none did.

All trainings run in one process (tests/cli_batch.py: each through fairseq's own cli_main), the
start-up paid once; each run has its log and exit status. Dropout is off, so a half-precision run and
its float32 twin see the same batches and differ by rounding alone.
"""
import json
import math
import os
import re

import pytest
import torch

from tests.helpers import OPTIM, REPO, SMALL, USER_DIR, run, train_metrics

pytestmark = pytest.mark.slow

# fairseq's default initial loss scale, 128, overflows on the first update of most modes here (the
# losses are sums over up to 1,024 tokens): on CPU the overflow branch's .cuda() call ends the run
HALF = {"fp16": ["--fp16", "--fp16-no-flatten-grads", "--fp16-init-scale", 4],
        "memfp16": ["--memory-efficient-fp16", "--fp16-no-flatten-grads", "--fp16-init-scale", 4]}
PRECISIONS = ("fp32", *HALF)
UPDATES = 4
# no warm-up, so that 4 updates move the weights by about the learning rate each
TRAIN = [*SMALL, *OPTIM, "--dropout", 0, "--lr", "1e-3", "--warmup-updates", 1, "--log-interval", 1,
         "--max-update", UPDATES, "--user-dir", USER_DIR]
ONLINE = ["--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en", "--encoder-layers", 3,
          "--decoder-layers", 4, "--criterion", "self_distill", "--kd-alpha", 0.5]
OFFLINE = ["--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en", "--encoder-layers", 3,
           "--criterion", "self_distill", "--kd-alpha", 0.5, "--kd-temperature", 2]


def translation_modes(teacher, root, vocabulary):
    """{mode: (data, options)}: every translation mode of the plugin, from the session's teacher."""
    gradual_teacher = root / "offline-fp16" / "checkpoint_last.pt"  # a half-precision checkpoint
    return {
        "online1": ("toy", [*ONLINE, "--student-exits", 1, "--finetune-from-model", teacher]),
        "online_all": ("toy", [*ONLINE, "--student-exits", "all", "--finetune-from-model", teacher]),
        "online_gradual": ("toy", [*ONLINE, "--teacher-exit", 3, "--student-exits", 2,
                                   "--finetune-from-model", teacher]),
        "offline": ("toy", [*OFFLINE, "--decoder-layers", 2, "--teacher-path", teacher]),
        "gradual": ("toy", [*OFFLINE, "--decoder-layers", 1, "--teacher-path", gradual_teacher]),
        "cached": ("toy", [*OFFLINE, "--decoder-layers", 2, "--teacher-path", teacher,
                           "--teacher-cache", root / "cache"]),
        "seqkd": ("seqkd", ["--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en",
                            "--encoder-layers", 3, "--decoder-layers", 2, "--teacher-path", teacher,
                            "--criterion", "label_smoothed_cross_entropy"]),
    }


def _glue_plan(converted, root):
    """The classification modes: SST-2 online with an exit head of its own, offline from a teacher
    fine-tuned from the converted MiniLM, and STS-B regression online; checkpoints only where read."""
    from tests.classification.test_glue import sst2_files, stsb_files, write_files

    bert = ["--user-dir", USER_DIR, "--arch", "bert_from_config", "--bert-config", converted / "config.json",
            "--optimizer", "adam", "--lr", "1e-4", "--batch-size", 4, "--cpu", "--no-epoch-checkpoints",
            "--log-format", "simple", "--log-interval", 1, "--seed", 1, "--num-workers", 0, "--dropout", 0,
            "--attention-dropout", 0, "--required-batch-size-multiple", 1, "--max-update", UPDATES]
    finetune = ["--finetune-from-model", converted / "model.pt"]
    distil = ["--criterion", "sentence_prediction_self_distill", "--kd-alpha", 0.5, "--kd-temperature", 2]
    runs = []
    for task, files in (("SST-2", sst2_files()), ("STS-B", stsb_files())):
        glue_dir = write_files(root / "glue" / task, files)
        runs.append(["python", "-m", "glue_binarize", "--task", task, "--glue-dir", glue_dir, "--bert-dir", converted,
                     "--out", root / "glue" / f"{task}-bin", "--max-len", 32])
    sst2, stsb = root / "glue" / "SST-2-bin", root / "glue" / "STS-B-bin"
    teacher = root / "glue-teacher"
    runs.append(["fairseq-train", sst2, "--task", "glue", *bert, *finetune, "--criterion", "sentence_prediction",
                 "--no-last-checkpoints", "--save-dir", teacher])
    modes = {
        "glue_online": [sst2, "--task", "glue", *finetune, "--encoder-layers", 3, *distil, "--student-exits", "1,2",
                        "--exit-heads", 1, "--no-save"],
        "glue_offline": [sst2, "--task", "self_distill_glue", "--teacher-path", teacher / "checkpoint_best.pt",
                         "--encoder-layers", 2, *distil, "--no-last-checkpoints"],
        "stsb_online": [stsb, "--task", "glue", *finetune, "--encoder-layers", 2, *distil, "--regression-target",
                        "--student-exits", 1, "--no-save"],
    }
    return runs, modes, bert


def _plan(toy_data, teacher, converted, root):
    raw = os.path.join(os.path.dirname(toy_data), "raw")
    with open(os.path.join(toy_data, "dict.tgt.txt"), encoding="utf-8") as f:
        vocabulary = 4 + sum(1 for _ in f)
    seqkd = root / "seqkd"
    plan = [
        # the teacher's cache (every logit: a half-precision student reads float32 values) and seq-KD data
        ["python", "-m", "fairseq_selfteach.cli.teacher_cache", toy_data, "--user-dir", USER_DIR,
         *SMALL, "--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en", "--encoder-layers", 3,
         "--decoder-layers", 2, "--criterion", "self_distill", "--teacher-path", teacher, "--cpu", "--max-tokens", 1024,
         "--cache-top-k", vocabulary, "--cache-out", root / "cache"],
        ["fairseq-generate", toy_data, "--path", teacher, "--gen-subset", "valid", "--beam", 1,
         "--batch-size", 256, "--cpu", "--required-batch-size-multiple", 1, "--results-path", seqkd],
        ["python", "-m", "fairseq_selfteach.cli.seqkd_corpus", "--generate-log", seqkd / "generate-valid.txt",
         "--source", os.path.join(raw, "valid.src"), "--out-prefix", seqkd / "train", "--src", "src", "--tgt", "tgt"],
        ["fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt", "--trainpref", seqkd / "train",
         "--validpref", os.path.join(raw, "valid"), "--srcdict", os.path.join(toy_data, "dict.src.txt"),
         "--tgtdict", os.path.join(toy_data, "dict.tgt.txt"), "--destdir", seqkd / "bin", "--workers", 1],
    ]
    data = {"toy": toy_data, "seqkd": seqkd / "bin"}
    trainings = []
    for mode, (where, options) in translation_modes(teacher, root, vocabulary).items():
        for precision in PRECISIONS:
            trainings.append((f"{mode}-{precision}", [data[where], *TRAIN, *options, *HALF.get(precision, [])]))
    glue_prep, glue_modes, bert = _glue_plan(converted, root)
    plan += glue_prep
    for mode, options in glue_modes.items():
        for precision in PRECISIONS:
            trainings.append((f"{mode}-{precision}", [*options, *bert, *HALF.get(precision, [])]))
    runs = [{"argv": argv, "log": root / f"prep{i}.log"} for i, argv in enumerate(plan)]
    runs += [{"argv": ["fairseq-train", *options, "--save-dir", root / name], "log": root / f"{name}.log"}
             for name, options in trainings]
    # what plain fairseq loads: the half-precision students exported, decoded without the plugin
    for name, extra in (("offline-fp16", []), ("gradual-memfp16", []), ("online1-fp16", ["--decoder-layers", 1])):
        runs.append({"argv": ["python", "-m", "fairseq_selfteach.cli.export_student", "--checkpoint",
                              root / name / "checkpoint_last.pt", "--out", root / f"{name}.export.pt", *extra],
                     "log": root / f"{name}.export.log"})
    return [{"argv": [str(a) for a in r["argv"]], "log": str(r["log"])} for r in runs]


@pytest.fixture(scope="module")
def trained(toy_data, teacher, converted_minilm, tmp_path_factory):
    root = tmp_path_factory.mktemp("fp16")
    with open(root / "plan.json", "w", encoding="utf-8") as f:
        json.dump(_plan(toy_data, teacher["path"], converted_minilm, root), f)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (os.path.join(REPO, "preprocess"), os.environ.get("PYTHONPATH"))
                                         if p)}
    run(["python", "-m", "tests.cli_batch", root / "plan.json"], env=env)
    return root


def _log(root, name):
    text = (root / f"{name}.log").read_text()
    assert int((root / f"{name}.log.rc").read_text()) == 0, text[-3000:]
    return text


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def check_half_precision_run(root, name, reference_name):
    """The run NAME in each half precision: every update logged, finite, with its loss scale and no
    overflow, and its terms within 1 % of the float32 run REFERENCE_NAME's (or 0.002, the log's
    rounding): fp16 keeps 11 significant bits (a relative rounding of 4.9e-4 per value); the worst seen
    over these modes was 0.1 %."""
    reference = train_metrics(_log(root, reference_name))
    for precision in HALF:
        log = _log(root, f"{name}-{precision}")
        rows = train_metrics(log)
        assert sorted(rows) == list(range(1, UPDATES + 1)), log[-2000:]
        assert "overflow" not in log and all(row["loss_scale"] == 4 for row in rows.values())
        for update, row in rows.items():
            terms = [key for key in row if key.endswith("_loss") or key == "loss"]
            assert "loss" in terms
            for key in terms:
                assert math.isfinite(row[key]), (precision, update, key)
                assert row[key] == pytest.approx(reference[update][key], rel=1e-2, abs=2e-3), (precision, update, key)


@pytest.mark.parametrize("mode", ["online1", "online_all", "online_gradual", "offline", "gradual", "cached", "seqkd",
                                  "glue_online", "glue_offline", "stsb_online"])
def test_every_mode_trains_in_half_precision_as_in_float32(trained, mode):
    check_half_precision_run(trained, mode, f"{mode}-fp32")


def test_a_half_precision_student_reads_the_teacher_cache_as_the_teacher(trained):
    """The cache holds the teacher's float32 logits (here all of them): the cached half-precision student
    logs what the float32 student running the teacher logs."""
    check_half_precision_run(trained, "cached", "offline-fp32")


@pytest.mark.parametrize("mode,precision", [("offline", "fp16"), ("cached", "memfp16"), ("glue_offline", "fp16"),
                                            ("offline", "fp32")])
def test_the_frozen_teacher_runs_in_the_students_precision(trained, mode, precision):
    dtype = "float32" if precision == "fp32" else "float16"
    assert re.search(rf"frozen teacher \S+ runs on cpu in {dtype}, the student's precision",
                     _log(trained, f"{mode}-{precision}"))


@pytest.mark.parametrize("mode", ["online1", "online_all", "online_gradual", "offline", "gradual", "cached", "seqkd"])
def test_half_precision_weights_move_as_the_float32_ones(trained, teacher, mode):
    """After 4 updates the first layers' weights have moved from where they started (the teacher's, or for
    the gradual stage its half-precision teacher's), in float16 as in float32: the two runs end less than
    a tenth of that distance apart (Frobenius norms; the worst seen was 5 %, seq-KD's). The checkpoint
    holds the float16 model's weights, which fairseq saves cast to float32."""
    initial = trained / "offline-fp16" / "checkpoint_last.pt" if mode == "gradual" else teacher["path"]
    start = _weights(initial)
    ref = _weights(trained / f"{mode}-fp32" / "checkpoint_last.pt")
    for precision in HALF:
        half = _weights(trained / f"{mode}-{precision}" / "checkpoint_last.pt")
        for key in ("encoder.layers.0.fc1.weight", "decoder.layers.0.fc1.weight"):
            assert torch.equal(half[key].half().float(), half[key].float())  # float16 values
            moved = (ref[key] - start[key].float()).norm().item()
            apart = (half[key].float() - ref[key]).norm().item()
            assert moved > 0.05 and apart < 0.1 * moved, (precision, key, moved, apart)


def test_half_precision_students_load_in_plain_fairseq(trained, toy_data):
    """Exported half-precision students (offline, a gradual stage, an online exit) decode with plain
    fairseq-generate, no plugin, every test sentence."""
    from tests.conftest import TEST_SENTENCES
    from tests.helpers import generate, hypotheses

    for name in ("offline-fp16", "gradual-memfp16", "online1-fp16"):
        assert int((trained / f"{name}.export.log.rc").read_text()) == 0, (trained / f"{name}.export.log").read_text()
    for name in ("offline-fp16", "gradual-memfp16", "online1-fp16"):
        out = generate(toy_data, trained / f"{name}.export.pt", user_dir=False, beam=1).stdout
        assert len(hypotheses(out)) == TEST_SENTENCES, out[-2000:]




# a self-teaching run killed (kill -9) at update 30 and run again: it resumes from the checkpoint at
# update 25 and must end as the run that was never killed; the loss scale doubles every 12 updates
KILLED = ["--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en", "--encoder-layers", 2,
          "--decoder-layers", 2, "--criterion", "self_distill", "--student-exits", 1, "--lr", "3e-3",
          "--warmup-updates", 20, "--max-update", 37, "--save-interval-updates", 25, "--log-interval", 1,
          *HALF["fp16"], "--fp16-scale-window", 12]


def test_a_killed_fp16_run_resumes_exactly_with_its_master_weights_and_loss_scaler(toy_data, tmp_path):
    """fairseq's checkpoint holds the float16 weights and the loss scale, not the float32 master weights
    nor the scaler's update count: the plugin's tasks save and restore both, so the re-run's every
    logged value and its final weights equal the uninterrupted run's."""
    from tests.helpers import kill_at, train, weight_difference

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    rows = train_metrics(_stdout(train(toy_data, whole, *KILLED)))
    assert [rows[u]["loss_scale"] for u in (11, 12, 24, 36)] == [4, 8, 16, 32]
    p = train(toy_data, killed, *KILLED, env=kill_at("fairseq.trainer:Trainer.train_step:30"), check=False)
    assert p.returncode == -9
    log = _stdout(train(toy_data, killed, *KILLED))
    assert "checkpoint_last.pt (epoch 2 @ 25 updates)" in log
    assert re.search(r"half precision: the float32 master weights \(\d+ tensors\) and the loss scaler \(scale 16.0?, "
                     r"update 25\) restored", log), log[-3000:]
    resumed = train_metrics(log)
    assert sorted(resumed) == list(range(26, 38))
    for update, row in resumed.items():
        assert {k: v for k, v in row.items() if k not in ("wps", "ups", "wall", "train_wall")} == \
            {k: v for k, v in rows[update].items() if k not in ("wps", "ups", "wall", "train_wall")}, update
    assert weight_difference(whole / "checkpoint_last.pt", killed / "checkpoint_last.pt") == 0.0


def _stdout(process):
    return process.stdout + process.stderr
