"""End to end through fairseq-preprocess / fairseq-train / fairseq-generate on the toy corpus."""
import json
import os
import re
import shutil
import struct

import pytest
import torch
from fairseq import checkpoint_utils, options, tasks, utils
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

import fairseq_selfteach  # noqa: F401
from fairseq_selfteach.translation.exits import decoder_exit_logits
from selfteach_pipeline.files import sha256_of_file
from tests.conftest import TEST_SENTENCES
from tests.helpers import (SMALL, USER_DIR, generate, hypotheses, kill_at, run, train, train_metrics, valid_metrics,
                           weight_difference)

pytestmark = pytest.mark.slow

OFFLINE = ["--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en",
           "--encoder-layers", 2, "--decoder-layers", 2, "--criterion", "self_distill",
           "--kd-alpha", 0.5, "--kd-temperature", 2, "--lr", "1e-3", "--warmup-updates", 30]


def bleu(stdout_and_err):
    m = re.search(r"BLEU = ([\d.]+)", stdout_and_err)
    assert m, stdout_and_err[-2000:]
    return float(m.group(1))


def translated(stdout_and_err):
    return int(re.search(r"Translated ([\d,]+) sentences", stdout_and_err).group(1).replace(",", ""))


# ---------------------------------------------------------------------------------------- teacher
def test_teacher_learns_and_every_test_sentence_is_scored(teacher, toy_data):
    losses = [row["loss"] for row in valid_metrics(teacher["log"])]
    assert losses[-1] < 0.5 * losses[0]
    p = generate(toy_data, teacher["path"], "--remove-bpe")
    assert translated(p.stdout + p.stderr) == TEST_SENTENCES
    assert len(hypotheses(p.stdout)) == TEST_SENTENCES
    assert bleu(p.stdout + p.stderr) > 50  # sacreBLEU (--scoring sacrebleu)


# --------------------------------------------------------------------------- offline: initialisation
def build_like_fairseq_train(data, *args):
    """Parse fairseq-train's own arguments and build the model the way fairseq-train does."""
    parser = options.get_training_parser()
    a = options.parse_args_and_arch(parser, [data, "--user-dir", USER_DIR, "--cpu"] + SMALL
                                    + [str(x) for x in args])
    cfg = convert_namespace_to_omegaconf(a)
    utils.import_user_module(cfg.common)
    task = tasks.setup_task(cfg.task)
    return task, task.build_model(cfg.model)


@pytest.mark.parametrize("layer_map,expected", [("first", [0, 1]), ("last", [2, 3]),
                                                ("every_other", [0, 2]), ("3,1", [3, 1])])
def test_student_starts_as_the_chosen_teacher_layers(teacher, toy_data, layer_map, expected):
    task, student = build_like_fairseq_train(
        toy_data, "--task", "self_distill_translation", "--teacher-path", teacher["path"],
        "--arch", "transformer_iwslt_de_en", "--encoder-layers", 2, "--decoder-layers", 2,
        "--student-decoder-layer-map", layer_map)
    t = torch.load(teacher["path"])["model"]
    s = student.state_dict()
    for key, value in s.items():
        m = re.match(r"decoder\.layers\.(\d+)\.(.*)", key)
        source = f"decoder.layers.{expected[int(m.group(1))]}.{m.group(2)}" if m else key
        assert torch.equal(value, t[source]), key
    # embeddings and the (tied) output projection are the teacher's too
    assert torch.equal(s["decoder.embed_tokens.weight"], t["decoder.embed_tokens.weight"])
    assert torch.equal(s["decoder.output_projection.weight"], t["decoder.output_projection.weight"])
    assert task.state.teacher_sha256 == sha256_of_file(teacher["path"])


# -------------------------------------------------------------------------- offline: train + resume
@pytest.fixture(scope="module")
def offline(teacher, toy_data, tmp_path_factory):
    save = tmp_path_factory.mktemp("offline")
    tb = tmp_path_factory.mktemp("tb")
    p = train(toy_data, save, "--teacher-path", teacher["path"], *OFFLINE, "--max-epoch", 3,
              "--tensorboard-logdir", tb)
    return {"dir": save, "log": p.stdout + p.stderr, "tb": tb}


def test_offline_student_learns_and_logs_each_term(offline):
    rows = valid_metrics(offline["log"])
    assert len(rows) == 3
    for term in ("loss", "gold_loss", "kd_loss", "nll_loss"):
        assert rows[-1][term] < rows[0][term], term


def tensorboard_tags(folder):
    from tensorboardX.proto import event_pb2

    tags = set()
    for root, _, files in os.walk(folder):
        for name in files:
            data = open(os.path.join(root, name), "rb").read()
            i = 0
            while i < len(data):
                (n,) = struct.unpack("<Q", data[i:i + 8])
                event = event_pb2.Event()
                event.ParseFromString(data[i + 12:i + 12 + n])
                tags.update(v.tag for v in event.summary.value)
                i += 12 + n + 4
    return tags


def test_tensorboard_shows_each_term(offline):
    tags = tensorboard_tags(offline["tb"])
    assert {"loss", "gold_loss", "kd_loss", "nll_loss"} <= tags, tags


def test_teacher_is_not_saved_in_the_student_checkpoint(offline, teacher):
    state = torch.load(offline["dir"] / "checkpoint_last.pt")
    teacher_state = torch.load(teacher["path"])["model"]
    assert not any("decoder.layers.2." in k or "decoder.layers.3." in k for k in state["model"])
    assert state["criterion"] is None
    assert len(state["model"]) < len(teacher_state)
    assert state["task_state"]["teacher_path"] == teacher["path"]
    assert state["task_state"]["teacher_sha256"] == sha256_of_file(teacher["path"])


# ------------------------------------------------------------------------ killed and run again
# a training killed (kill -9) at a point the test chooses (tests/fault), then the same command again;
# an epoch of the toy corpus is 23 updates
def test_an_offline_student_killed_mid_epoch_and_rerun_ends_with_the_uninterrupted_weights(
        offline, teacher, toy_data, tmp_path):
    """The offline student (3 epochs, 69 updates) trained on to epoch 5 (115 updates), with a checkpoint
    every 10 updates: killed at update 104, the re-run resumes from the mid-epoch checkpoint at 100 and
    ends with the weights of the run that was never killed."""
    args = ["--teacher-path", teacher["path"], *OFFLINE, "--max-epoch", 5, "--save-interval-updates", 10]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for folder in (whole, killed):
        folder.mkdir()
        shutil.copy(offline["dir"] / "checkpoint_last.pt", folder / "checkpoint_last.pt")
    train(toy_data, whole, *args)
    p = train(toy_data, killed, *args, env=kill_at("fairseq.trainer:Trainer.train_step:35"), check=False)
    assert p.returncode == -9 and "num_updates=104" not in p.stdout + p.stderr  # nothing ran after the kill
    resumed = train(toy_data, killed, *args)
    log = resumed.stdout + resumed.stderr
    assert "checkpoint_last.pt (epoch 5 @ 100 updates)" in log
    assert len(valid_metrics(log)) == 2  # the validation at update 110 and at the end: epoch 4 is not redone
    assert weight_difference(whole / "checkpoint_last.pt", killed / "checkpoint_last.pt") == 0.0
    assert weight_difference(whole / "checkpoint_best.pt", killed / "checkpoint_best.pt") == 0.0


KILLED = ["--arch", "transformer_iwslt_de_en", "--encoder-layers", 2, "--decoder-layers", 2,
          "--criterion", "label_smoothed_cross_entropy", "--lr", "3e-3", "--warmup-updates", 20,
          "--max-update", 37, "--save-interval-updates", 25, "--patience", 3]


@pytest.fixture(scope="module")
def uninterrupted(toy_data, tmp_path_factory):
    save = tmp_path_factory.mktemp("uninterrupted")
    train(toy_data, save, *KILLED, "--task", "self_distill_translation")
    return save


def test_fairseqs_own_translation_task_killed_mid_epoch_does_not_end_as_the_uninterrupted_run(
        uninterrupted, toy_data, tmp_path):
    """What the plugin's tasks fix (core/exact_resume.py): killed at update 30 and re-run from the
    checkpoint at 25, --task translation draws other batches than a run from the start (which is
    bit-identical to --task self_distill_translation's), so its weights end elsewhere."""
    args = [*KILLED, "--task", "translation"]
    p = train(toy_data, tmp_path, *args, env=kill_at("fairseq.trainer:Trainer.train_step:30"), check=False)
    assert p.returncode == -9
    resumed = train(toy_data, tmp_path, *args)
    assert "checkpoint_last.pt (epoch 2 @ 25 updates)" in resumed.stdout + resumed.stderr
    assert weight_difference(uninterrupted / "checkpoint_last.pt", tmp_path / "checkpoint_last.pt") > 1e-3


def test_killed_while_fairseq_copies_checkpoint_last_and_rerun_ends_with_the_uninterrupted_weights(
        uninterrupted, toy_data, tmp_path):
    """fairseq saves checkpoint_best.pt and then copies it to checkpoint_last.pt in place: killed halfway
    through that copy (end of epoch 1), checkpoint_last.pt is cut short. The re-run says so, restores it
    from checkpoint_best.pt, counts --patience on from where it was, and ends as the uninterrupted run."""
    args = [*KILLED, "--task", "self_distill_translation"]
    p = train(toy_data, tmp_path, *args, env=kill_at("fairseq.file_io:PathManager.copy:1", "halfway"), check=False)
    assert p.returncode == -9
    last = tmp_path / "checkpoint_last.pt"
    assert 0 < last.stat().st_size < (tmp_path / "checkpoint_best.pt").stat().st_size
    resumed = train(toy_data, tmp_path, *args)
    log = resumed.stdout + resumed.stderr
    assert f"{last} was cut short" in log and "checkpoint_last.pt (epoch 2 @ 23 updates)" in log
    assert re.search(r"--patience: 0 validations without improvement on the best [\d.]+ so far", log)
    assert weight_difference(uninterrupted / "checkpoint_last.pt", last) == 0.0
    assert weight_difference(uninterrupted / "checkpoint_best.pt", tmp_path / "checkpoint_best.pt") == 0.0


def test_a_new_training_from_a_checkpoints_weights_does_not_take_its_patience_count(uninterrupted, toy_data, tmp_path):
    """--restore-file of another run with --reset-optimizer --reset-meters starts afresh: as fairseq does
    not restore that checkpoint's best score, the patience count is not restored either."""
    p = train(toy_data, tmp_path, *KILLED, "--task", "self_distill_translation", "--restore-file",
              uninterrupted / "checkpoint_best.pt", "--reset-optimizer", "--reset-meters", "--max-update", 2)
    log = p.stdout + p.stderr
    assert "checkpoint_best.pt" in log and "--patience:" not in log
    whole = train(toy_data, tmp_path / "resumed", *KILLED, "--task", "self_distill_translation", "--restore-file",
                  uninterrupted / "checkpoint_best.pt", "--max-update", 38)
    assert "--patience: " in whole.stdout + whole.stderr  # without the resets it is restored


# -------------------------------------------------------------------------------------- online
# the online fixture (exit 2 of a 4-layer decoder) is in tests/conftest.py: test_decoding.py decodes it too
def test_online_exits_learn_and_are_logged(online):
    rows = valid_metrics(online["log"])
    for term in ("loss", "nll_loss", "exit2_nll_loss", "exit2_gold_loss", "exit2_kd_loss"):
        assert term in rows[-1], term
    assert rows[-1]["exit2_nll_loss"] < 0.5 * rows[0]["exit2_nll_loss"]
    assert rows[-1]["nll_loss"] < 0.5 * rows[0]["nll_loss"]


MAX_LEN = 30  # tokens a hypothesis may have: a weak exit's repetitions stop there (and the O(T²) loop below)
GREEDY_LIMIT = ("--max-len-a", 0, "--max-len-b", MAX_LEN)


def greedy_with_exit(checkpoint, data, exit_layer, *task_args):
    """Greedy decoding of the test set with exit `exit_layer` of the *training* model (full depth),
    re-running the whole forward pass at each step: no incremental state, no export involved.
    Same rules as fairseq-generate --beam 1 GREEDY_LIMIT: no EOS at step 0 (min_len 1), at most MAX_LEN
    tokens, pad never chosen."""
    parser = options.get_generation_parser()
    a = options.parse_args_and_arch(parser, [data, "--user-dir", USER_DIR, "--cpu", "--path", checkpoint,
                                             *task_args])
    cfg = convert_namespace_to_omegaconf(a)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("test")
    (model,), _ = checkpoint_utils.load_model_ensemble([checkpoint], task=task)
    model.eval()
    d = task.target_dictionary
    out = {}
    itr = task.get_batch_iterator(task.dataset("test"), max_sentences=64).next_epoch_itr(shuffle=False)
    with torch.no_grad():
        for sample in itr:
            net = sample["net_input"]
            prev = torch.full((len(sample["id"]), 1), d.eos(), dtype=torch.long)
            done = torch.zeros(len(sample["id"]), dtype=torch.bool)
            for step in range(MAX_LEN):
                _, extra = model(net["src_tokens"], net["src_lengths"], prev)
                last = torch.zeros_like(prev, dtype=torch.bool)
                last[:, -1] = True
                logits = decoder_exit_logits(model.decoder, extra["inner_states"], exit_layer, last)
                logits[:, d.pad()] = -float("inf")
                if step == 0:
                    logits[:, d.eos()] = -float("inf")
                nxt = logits.argmax(-1).masked_fill(done, d.pad())
                prev = torch.cat([prev, nxt[:, None]], 1)
                done |= nxt.eq(d.eos())
                if done.all():
                    break
            for sid, row in zip(sample["id"].tolist(), prev[:, 1:]):
                out[sid] = d.string(row[row.ne(d.pad()) & row.ne(d.eos())])
    return out


def test_exported_exit_translates_exactly_as_the_exit_did(online, toy_data, tmp_path):
    student = tmp_path / "student_dec2.pt"
    run(["python", "-m", "fairseq_selfteach.cli.export_student", "--checkpoint",
         online["dir"] / "checkpoint_last.pt", "--out", student, "--decoder-layers", 2])
    # plain fairseq: no --user-dir, run from / so the plugin cannot be imported
    p = generate(toy_data, student, *GREEDY_LIMIT, user_dir=False, beam=1)
    exported = hypotheses(p.stdout)
    assert len(exported) == TEST_SENTENCES
    inside = greedy_with_exit(str(online["dir"] / "checkpoint_last.pt"), toy_data, 2)
    assert exported == inside
    # a 2-layer exit after 8 short epochs is weak on this toy task; the point here is identity
    assert bleu(p.stdout + p.stderr) > 1


def test_exit_layer_norms_are_trained_apart_and_exported_with_their_exit(toy_data, tmp_path):
    """--exit-layer-norms all on a pre-norm 4-layer decoder: each exit's final layer norm starts as the
    shared one and trains apart from it; exit 2 exported translates exactly as it did inside the model."""
    save = tmp_path / "online_norms"
    train(toy_data, save, "--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en",
          "--encoder-layers", 2, "--decoder-layers", 4, "--encoder-normalize-before", "--decoder-normalize-before",
          "--criterion", "self_distill", "--student-exits", "all", "--exit-layer-norms", "all",
          "--kd-alpha", 0.5, "--lr", "3e-3", "--warmup-updates", 50, "--max-epoch", 2)
    state = torch.load(save / "checkpoint_last.pt", weights_only=True)["model"]
    for k in (1, 2, 3):
        assert not torch.allclose(state[f"decoder.exit_layer_norms.{k}.weight"], state["decoder.layer_norm.weight"])
    student = tmp_path / "student_dec2.pt"
    run(["python", "-m", "fairseq_selfteach.cli.export_student", "--checkpoint", save / "checkpoint_last.pt",
         "--out", student, "--decoder-layers", 2])
    exported = torch.load(student, weights_only=True)
    assert "exit_layer_norms" not in exported["cfg"]["model"]
    exported = exported["model"]
    assert not any("exit_layer_norms" in key for key in exported)
    assert torch.equal(exported["decoder.layer_norm.weight"], state["decoder.exit_layer_norms.2.weight"])
    p = generate(toy_data, student, *GREEDY_LIMIT, user_dir=False, beam=1)  # plain fairseq
    inside = greedy_with_exit(str(save / "checkpoint_last.pt"), toy_data, 2, "--task", "self_distill_translation")
    assert hypotheses(p.stdout) == inside and len(inside) == TEST_SENTENCES


def test_exported_offline_student_matches_its_training_checkpoint(offline, toy_data, tmp_path):
    student = tmp_path / "student.pt"
    run(["python", "-m", "fairseq_selfteach.cli.export_student", "--checkpoint",
         offline["dir"] / "checkpoint_best.pt", "--out", student])
    plain = generate(toy_data, student, user_dir=False)
    training = generate(toy_data, offline["dir"] / "checkpoint_best.pt")
    assert hypotheses(plain.stdout) == hypotheses(training.stdout)
    assert len(hypotheses(plain.stdout)) == TEST_SENTENCES
    # and the hub interface of plain fairseq loads it too (a fresh process without the plugin)
    code = (
        "import torch; from fairseq.models.transformer import TransformerModel as T\n"
        f"m = T.from_pretrained('{tmp_path}', checkpoint_file='student.pt', data_name_or_path='{toy_data}')\n"
        "import sys; assert 'fairseq_selfteach' not in sys.modules\n"
        "print(sum(p.numel() for p in m.models[0].parameters()), len(m.models[0].decoder.layers))"
    )
    out = run(["python", "-c", code], cwd="/").stdout.split()
    n_params, n_layers = int(out[-2]), int(out[-1])
    assert n_layers == 2
    counts = json.loads(run(["python", "-m", "fairseq_selfteach.cli.param_count", student, "--json"]).stdout)
    assert counts["total"] == n_params
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_param_count_of_a_truncated_depth_equals_the_export(online, tmp_path):
    ckpt = online["dir"] / "checkpoint_last.pt"
    student = tmp_path / "s.pt"
    run(["python", "-m", "fairseq_selfteach.cli.export_student", "--checkpoint", ckpt, "--out", student,
         "--decoder-layers", 1])
    as_depth = json.loads(run(["python", "-m", "fairseq_selfteach.cli.param_count", ckpt,
                               "--decoder-layers", 1, "--json"]).stdout)
    exported = json.loads(run(["python", "-m", "fairseq_selfteach.cli.param_count", student, "--json"]).stdout)
    full = json.loads(run(["python", "-m", "fairseq_selfteach.cli.param_count", ckpt, "--json"]).stdout)
    assert as_depth == exported
    assert full["decoder"] == 4 * exported["decoder"]  # 4 identical-size layers vs 1
    assert full["embeddings"] == exported["embeddings"]


# -------------------------------------------------------------------------------------- errors
@pytest.fixture(scope="module")
def other_vocab_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("other")
    run(["python", "preprocess/make_toy_corpus.py", root / "raw", "--train", 200, "--valid", 20,
         "--test", 20, "--vocab-size", 30])
    run(["fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt", "--trainpref",
         root / "raw/train", "--validpref", root / "raw/valid", "--destdir", root / "bin",
         "--joined-dictionary", "--workers", 1])
    return str(root / "bin")


@pytest.mark.parametrize(
    "case,args,message",
    [
        ("missing teacher", ["--teacher-path", "/nonexistent/teacher.pt"],
         "checkpoint not found: /nonexistent/teacher.pt"),
        ("student deeper", ["--decoder-layers", 6], "student decoder depth 6 is greater than the teacher's 4"),
        ("alpha", ["--kd-alpha", 1.5], "--kd-alpha must be in [0, 1], got 1.5"),
        ("temperature", ["--kd-temperature", 0], "--kd-temperature must be > 0, got 0.0"),
        ("layer map", ["--student-encoder-layer-map", "middle"],
         "unknown --student-encoder-layer-map 'middle'"),
        ("exit norms, post-norm", ["--exit-layer-norms", "all"],
         "--exit-layer-norms needs a pre-norm decoder (--decoder-normalize-before)"),
        ("a decoding option in training", ["--exit-layer", 2],
         "--exit-layer and --speculative-exit are decoding options (fairseq-generate)"),
        # the issue's own case: 5 random bytes as the teacher ended in `IndexError: pop from empty list`
        ("garbage teacher", ["--teacher-path", "RANDOM_BYTES"], "it is not a PyTorch checkpoint"),
        ("truncated teacher", ["--teacher-path", "TRUNCATED"], "it ends early"),
    ],
)
def test_bad_input_fails_clearly(case, args, message, teacher, toy_data, tmp_path):
    """One line `error: …` naming the option or file, a non-zero exit, no traceback, no checkpoint."""
    made = {"RANDOM_BYTES": bytes([0x8a, 0x3f, 0x00, 0xc1, 0x7e]),
            "TRUNCATED": open(teacher["path"], "rb").read()[:100_000]}
    for i, arg in enumerate(args):
        if arg in made:
            (tmp_path / arg).write_bytes(made[arg])
            args = args[:i] + [tmp_path / arg] + args[i + 1:]
    base = ["--teacher-path", teacher["path"]] if "--teacher-path" not in args else []
    p = train(toy_data, tmp_path / "s", *base, *OFFLINE, *args, "--max-update", 1, check=False)
    assert p.returncode != 0, case
    errors = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in p.stderr, p.stderr[-2000:]
    if "--teacher-path" in args:
        assert str(args[args.index("--teacher-path") + 1]) in errors[0]
    assert not os.path.exists(tmp_path / "s" / "checkpoint_last.pt")


def test_teacher_with_another_dictionary_is_refused(teacher, other_vocab_data, tmp_path):
    p = train(other_vocab_data, tmp_path / "s", "--teacher-path", teacher["path"], *OFFLINE,
              "--max-update", 1, check=False)
    assert p.returncode != 0
    assert "teacher dictionary" in p.stderr and "differs from the data dictionary" in p.stderr


def test_a_bert_checkpoint_as_a_translation_teacher_is_refused_in_one_line(converted_minilm, toy_data, tmp_path):
    """A checkpoint of the other model family (a converted BERT) as --teacher-path of a translation
    student: one line naming the file, no traceback, nothing saved."""
    bert = converted_minilm
    p = train(toy_data, tmp_path / "s", "--teacher-path", bert / "model.pt", *OFFLINE, "--max-update", 1,
              check=False)
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and str(bert / "model.pt") in lines[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr and not os.path.exists(tmp_path / "s" / "checkpoint_last.pt")


def test_resuming_with_another_teacher_file_is_refused_unless_forced(teacher, toy_data, tmp_path):
    """A student's checkpoints record its teacher's sha256; resuming it with a different teacher file
    stops in one line naming both (a byte-identical copy elsewhere is the same teacher), and
    --resume-with-another-teacher goes on, saying so in the log."""

    save = tmp_path / "s"
    train(toy_data, save, "--teacher-path", teacher["path"], *OFFLINE, "--max-update", 2)
    copy, other = tmp_path / "copy.pt", tmp_path / "other.pt"
    shutil.copy(teacher["path"], copy)
    state = torch.load(teacher["path"], map_location="cpu", weights_only=True)
    state["model"]["decoder.layers.0.fc1.bias"] += 0.01  # same shape, another teacher
    torch.save(state, other)
    same = train(toy_data, save, "--teacher-path", copy, *OFFLINE, "--max-update", 3)
    assert "(epoch 1 @ 2 updates)" in same.stdout + same.stderr
    before = sha256_of_file(save / "checkpoint_last.pt")
    p = train(toy_data, save, "--teacher-path", other, *OFFLINE, "--max-update", 4, check=False)
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if "resuming would switch teachers" in line]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert sha256_of_file(teacher["path"]) in lines[0] and sha256_of_file(other) in lines[0]
    assert str(save / "checkpoint_last.pt") in lines[0]
    assert sha256_of_file(save / "checkpoint_last.pt") == before  # nothing was trained or saved
    forced = train(toy_data, save, "--teacher-path", other, *OFFLINE, "--max-update", 4,
                   "--resume-with-another-teacher")
    log = forced.stdout + forced.stderr
    assert "--resume-with-another-teacher: resuming" in log and "(epoch 1 @ 3 updates)" in log
    assert torch.load(save / "checkpoint_last.pt", map_location="cpu",
                      weights_only=True)["task_state"]["teacher_sha256"] == sha256_of_file(other)


def test_rotational_exit_curriculum_through_fairseq_train(toy_data, tmp_path):
    """--exit-curriculum rotational --exit-curriculum-period 3 on a 4-layer decoder, online, through
    fairseq-train: each update's log line has exactly the exits (k + update) mod 3 = 0 of its update
    (fairseq counts updates from 0 when it hands them to the task), and validation has every exit.
    With --layer-dropout-max 0.3 the log names LayerSkip's rates of the 4 layers."""
    p = train(toy_data, tmp_path / "cur", "--task", "self_distill_translation", "--arch", "transformer_iwslt_de_en",
              "--encoder-layers", 2, "--decoder-layers", 4, "--criterion", "self_distill", "--student-exits", "all",
              "--exit-curriculum", "rotational", "--exit-curriculum-period", 3, "--lr", "1e-3",
              "--warmup-updates", 10, "--max-update", 6, "--log-interval", 1, "--layer-dropout-max", 0.3)
    log = p.stdout + p.stderr
    # 0.3·(2^(l/3) - 1) for l = 0..3
    assert "layer dropout of decoder layers 1-4 in training: 0.000, 0.078, 0.176, 0.300" in log, log[-3000:]
    rows = train_metrics(log)
    assert len(rows) == 6, log[-3000:]
    for logged_at, row in rows.items():
        update = logged_at - 1  # logged after the update
        # (fairseq's meters keep a key once seen: an exit left out of an update shows as None)
        exits = sorted(int(k[4]) for k in row if re.fullmatch(r"exit\d_kd_loss", k))
        assert exits == [k for k in (1, 2, 3) if (k + update) % 3 == 0], row
    assert all(f"exit{k}_kd_loss" in valid_metrics(log)[-1] for k in (1, 2, 3))
