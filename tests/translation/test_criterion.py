"""The self_distill criterion in-process, against fairseq's own label_smoothed_cross_entropy."""
import copy

import pytest
import torch
from fairseq import options, tasks, utils
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from fairseq_selfteach.translation.criterion import SelfDistillCriterion
from fairseq_selfteach.translation.exits import decoder_exit_logits
from fairseq_selfteach.core.teacher import FrozenModelTeacher
from tests.helpers import SMALL, USER_DIR


def setup(data, *extra):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(
        parser,
        [data, "--user-dir", USER_DIR, "--arch", "transformer_iwslt_de_en", "--encoder-layers", "2",
         "--decoder-layers", "4", "--cpu", "--max-tokens", "400", "--label-smoothing", "0.1",
         "--dropout", "0"] + SMALL + list(extra),
    )
    cfg = convert_namespace_to_omegaconf(args)
    utils.import_user_module(cfg.common)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("valid")
    torch.manual_seed(0)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    itr = task.get_batch_iterator(task.dataset("valid"), max_tokens=400).next_epoch_itr(shuffle=False)
    return task, model, criterion, next(iter(itr))


def test_alpha_zero_equals_fairseqs_label_smoothed_cross_entropy(toy_data):
    task, model, criterion, sample = setup(
        toy_data, "--criterion", "self_distill", "--kd-alpha", "0")
    assert isinstance(criterion, SelfDistillCriterion)
    reference = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)
    loss, size, log = criterion(model, sample)
    ref_loss, ref_size, ref_log = reference(model, sample)
    assert size == ref_size
    assert torch.equal(loss, ref_loss)
    assert torch.equal(log["nll_loss"], ref_log["nll_loss"])


def test_alpha_zero_offline_equals_label_smoothed_cross_entropy(toy_data):
    task, model, criterion, sample = setup(toy_data, "--criterion", "self_distill", "--kd-alpha", "0")
    teacher_model = copy.deepcopy(model)
    with torch.no_grad():
        for p in teacher_model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # a teacher that disagrees, so its KL is not 0
    criterion.teacher = FrozenModelTeacher("t", teacher_model, "sha")
    loss, _, log = criterion(model, sample)
    ref_loss, _, _ = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)(model, sample)
    assert log["kd_loss"] > 0
    assert torch.equal(loss, ref_loss)
    # and with alpha = 1 the loss is the distillation term alone
    criterion.kd_alpha = 1.0
    loss, _, log = criterion(model, sample)
    assert torch.allclose(loss, log["kd_loss"])


def test_pads_do_not_enter_the_distillation_term(toy_data):
    task, model, criterion, sample = setup(
        toy_data, "--criterion", "self_distill", "--student-exits", "2", "--kd-alpha", "0.5")
    model.eval()
    pad = task.target_dictionary.pad()
    assert sample["target"].eq(pad).any(), "the batch needs padding for this test"
    _, _, log = criterion(model, sample)
    # recompute the KD by hand on real tokens only
    net_output = model(**sample["net_input"])
    mask = sample["target"].ne(pad)
    exit_logits = decoder_exit_logits(model.decoder, net_output[1]["inner_states"], 2, mask)
    t = torch.log_softmax(net_output[0][mask].float(), -1)
    s = torch.log_softmax(exit_logits.float(), -1)
    expected = (t.exp() * (t - s)).sum()
    assert torch.allclose(log["exit2_kd_loss"], expected, rtol=1e-5)
    # the same number over all positions (pads included) would be larger
    all_t = torch.log_softmax(net_output[0].float(), -1)
    inner = net_output[1]["inner_states"][2].transpose(0, 1)
    all_s = torch.log_softmax(model.decoder.output_layer(inner).float(), -1)
    assert (all_t.exp() * (all_t - all_s)).sum() > expected


def test_exit_equals_a_truncated_decoder(toy_data):
    _, model, _, sample = setup(toy_data, "--criterion", "self_distill", "--student-exits", "2")
    model.eval()
    net_output = model(**sample["net_input"])
    mask = torch.ones_like(sample["target"], dtype=torch.bool)
    exit_logits = decoder_exit_logits(model.decoder, net_output[1]["inner_states"], 2, mask)
    truncated = copy.deepcopy(model)
    del truncated.decoder.layers[2:]
    truncated.decoder.num_layers = 2
    direct = truncated(**sample["net_input"])[0][mask]
    assert torch.allclose(exit_logits, direct, atol=1e-5)


@pytest.mark.parametrize("teacher_grad", [False, True])
def test_teacher_exit_gradient_option(toy_data, teacher_grad):
    extra = ["--kd-teacher-grad"] if teacher_grad else []
    task, model, criterion, sample = setup(
        toy_data, "--criterion", "self_distill", "--student-exits", "2", "--kd-alpha", "1", *extra)
    # Exit 2 does not use decoder layer 4, so that layer's gradient differs from the plain gold
    # cross-entropy gradient only if the distillation term flows into the teacher exit.
    top = model.decoder.layers[3].fc1.weight
    loss, _, _ = criterion(model, sample)
    (got,) = torch.autograd.grad(loss, top)
    ref_loss, _, _ = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)(model, sample)
    (ref,) = torch.autograd.grad(ref_loss, top)
    assert torch.allclose(got, ref, atol=1e-7) != teacher_grad


def test_exit_beyond_the_decoder_is_an_error(toy_data):
    _, model, criterion, sample = setup(toy_data, "--criterion", "self_distill", "--student-exits", "4")
    with pytest.raises(ValueError, match="decoder has 4 layers"):
        criterion(model, sample)


def test_the_classification_criterion_on_a_translation_task_names_self_distill(toy_data, tmp_path):
    from tests.helpers import run

    p = run(["fairseq-train", toy_data, "--user-dir", USER_DIR, "--arch", "transformer_iwslt_de_en",
             "--criterion", "sentence_prediction_self_distill", "--optimizer", "adam", "--lr", "1e-3",
             "--max-tokens", "400", "--max-update", "1", "--cpu", "--save-dir", tmp_path] + SMALL, check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "error: --criterion sentence_prediction_self_distill is for sentence classifiers" in p.stderr
    assert "use --criterion self_distill for translation models" in p.stderr


def test_all_exits_are_every_layer_below_the_top_and_weights_scale_each_exit(toy_data):
    _, model, every, sample = setup(toy_data, "--criterion", "self_distill", "--student-exits", "all",
                                    "--exit-weights", "0.5,1,2", "--kd-alpha", "0.3")
    model.eval()
    loss, _, log = every(model, sample)
    assert every.student_exits == [1, 2, 3]
    expected = log["gold_loss"] + sum(
        w * (0.7 * log[f"exit{k}_gold_loss"] + 0.3 * log[f"exit{k}_kd_loss"])
        for k, w in ((1, 0.5), (2, 1.0), (3, 2.0)))
    assert torch.allclose(loss, expected, rtol=1e-5)
    # the same terms as naming the exits one by one
    _, _, named, _ = setup(toy_data, "--criterion", "self_distill", "--student-exits", "1,2,3", "--kd-alpha", "0.3")
    _, _, named_log = named(model, sample)
    for k in (1, 2, 3):
        assert torch.allclose(log[f"exit{k}_kd_loss"], named_log[f"exit{k}_kd_loss"])


def test_teacher_exit_trains_the_first_layers_only(toy_data):
    """One stage of the online gradual schedule: exit 3 teaches exit 2, decoder layer 4 is left alone."""
    _, model, criterion, sample = setup(toy_data, "--criterion", "self_distill", "--teacher-exit", "3",
                                        "--student-exits", "all", "--kd-alpha", "0.5")
    model.eval()
    loss, _, log = criterion(model, sample)
    assert criterion.student_exits == [1, 2]
    net_output = model(**sample["net_input"])
    target = sample["target"]
    mask = target.ne(criterion.padding_idx)
    exit3 = decoder_exit_logits(model.decoder, net_output[1]["inner_states"], 3, mask)
    lprobs = torch.log_softmax(exit3.float(), -1)
    from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
    gold, _ = label_smoothed_nll_loss(lprobs, target[mask], 0.1)
    assert torch.allclose(log["gold_loss"], gold, rtol=1e-5)
    exit2 = decoder_exit_logits(model.decoder, net_output[1]["inner_states"], 2, mask)
    s = torch.log_softmax(exit2.float(), -1)
    assert torch.allclose(log["exit2_kd_loss"], (lprobs.exp() * (lprobs - s)).sum(), rtol=1e-5)
    top = model.decoder.layers[3].fc1.weight
    (grad,) = torch.autograd.grad(loss, top, allow_unused=True)
    assert grad is None or not grad.any()


@pytest.mark.parametrize("extra, message", [
    (["--student-exits", "1,2", "--exit-weights", "1"], "1 weight.s. for 2 student exit"),
    (["--student-exits", "1", "--exit-weights", "-1"], "weights must be >= 0"),
    (["--teacher-exit", "5", "--student-exits", "1"], "the teacher exit must be between 2 and 4"),
    (["--teacher-exit", "2", "--student-exits", "2"], "between 1 and 1 .layer 2 is the teacher exit"),
])
def test_bad_exit_options_name_the_option(toy_data, extra, message):
    _, model, criterion, sample = setup(toy_data, "--criterion", "self_distill", *extra)
    with pytest.raises(ValueError, match=message):
        criterion(model, sample)


def test_teacher_exit_is_refused_offline(toy_data):
    from types import SimpleNamespace
    task = SimpleNamespace(teacher=object(), target_dictionary=None)
    with pytest.raises(ValueError, match="--teacher-exit is for online"):
        SelfDistillCriterion(task, False, 0.1, teacher_exit=3)


def test_rotational_curriculum_trains_the_exits_of_the_update_and_validates_them_all(toy_data):
    """--exit-curriculum rotational: at update u only exits k with (k + u) mod R = 0 enter the loss (the
    task hands the update over); validation scores every exit."""
    task, model, criterion, sample = setup(
        toy_data, "--task", "self_distill_translation", "--criterion", "self_distill", "--student-exits", "all",
        "--exit-curriculum", "rotational", "--exit-curriculum-period", "2", "--kd-alpha", "0.3",
        "--max-update", "100")
    _, _, reference, _ = setup(toy_data, "--criterion", "self_distill", "--student-exits", "all", "--kd-alpha", "0.3")
    reference.check_once(model)  # (which resolves "all" and the weights, so that they can be set below)
    model.train()
    for update, on in ((0, [2]), (1, [1, 3])):
        criterion.set_num_updates(update)
        torch.manual_seed(1)  # the same dropout masks for both criteria
        loss, _, log = criterion(model, sample)
        assert sorted(int(k[4]) for k in log if k.endswith("_kd_loss") and k.startswith("exit")) == on
        # the loss is the full criterion's with the other exits weighted 0
        reference.exit_weights = [1.0 if k in on else 0.0 for k in (1, 2, 3)]
        torch.manual_seed(1)
        ref_loss, _, _ = reference(model, sample)
        assert torch.allclose(loss, ref_loss, rtol=1e-6)
    model.eval()
    _, _, log = criterion(model, sample)
    assert {k for k in log if k.endswith("_kd_loss") and k.startswith("exit")} == {f"exit{k}_kd_loss" for k in (1, 2, 3)}


def test_a_curriculum_without_the_update_number_is_refused(toy_data):
    # plain fairseq's translation task never hands the criterion the update number
    _, model, criterion, sample = setup(toy_data, "--criterion", "self_distill", "--student-exits", "all",
                                        "--exit-curriculum", "rotational")
    model.train()
    with pytest.raises(ValueError, match="needs the update number.*--task self_distill_translation"):
        criterion(model, sample)
    with pytest.raises(ValueError, match="gradual spreads the exits over training: it needs --max-update"):
        setup(toy_data, "--criterion", "self_distill", "--student-exits", "all", "--exit-curriculum", "gradual")
