"""Half precision at the criterion level, on CPU: float16 and bfloat16 logits, extreme values, extreme
temperatures, a fully padded row, and whole criterion steps with the student and the teacher in half
precision. fairseq-train's --fp16 runs are tests/core/test_fp16_train.py; its --bf16 cannot run on CPU
(fairseq takes bfloat16 on CPU for a TPU), which the criteria say in one line."""
import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fairseq_selfteach.core.kd import KD_DIRECTIONS, kd_loss
from fairseq_selfteach.core.teacher import FrozenModelTeacher
from tests.classification.test_criterion import batch, small_bert
from tests.classification.test_criterion import criterion as glue_criterion
from tests.helpers import SMALL, USER_DIR, run
from tests.translation.test_criterion import setup as criterion_setup

HALF = (torch.float16, torch.bfloat16)


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(HALF), temperature=st.sampled_from([0.1, 1.0, 20.0]),
       direction=st.sampled_from(KD_DIRECTIONS), scale=st.sampled_from([1.0, 1e2, 1e4]),
       rows=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_kd_of_half_logits_is_float32_finite_and_equals_the_upcast_logits(
        dtype, temperature, direction, scale, rows, seed):
    """The KL is computed in float32 from the half-precision values (so it equals the KL of the same
    values upcast, exactly); logits of ±1e4 at T = 0.1 and T = 20 give a finite loss and gradient."""
    g = torch.Generator().manual_seed(seed)
    student = (scale * torch.randn(rows, 32, generator=g)).clamp(-1e4, 1e4).to(dtype).requires_grad_()
    teacher = (scale * torch.randn(rows, 32, generator=g)).clamp(-1e4, 1e4).to(dtype)
    loss = kd_loss(student, teacher, temperature, direction)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss) and loss >= -1e-3 * temperature**2 * rows  # a KL, up to rounding
    upcast = kd_loss(student.detach().float(), teacher.float(), temperature, direction)
    assert torch.equal(kd_loss(student.detach(), teacher, temperature, direction), upcast)
    # the autograd path sums the KL apart (p·(log p − log q) rather than −H − p·log q): float32 rounding,
    # which T² magnifies where the two distributions are nearly uniform (T = 20)
    assert loss.item() == pytest.approx(upcast.item(), rel=1e-3, abs=1e-4)
    loss.backward()
    assert student.grad.dtype == dtype and torch.isfinite(student.grad.float()).all()


@pytest.mark.parametrize("dtype", HALF)
def test_saturated_logits_of_half_precision(dtype):
    """±1e4 one-hot logits: the student is sure of the wrong class, the teacher of the right one."""
    student = torch.full((2, 16), -1e4).to(dtype)
    teacher = student.clone()
    student[:, 0] = 1e4
    teacher[:, 1] = 1e4
    student.requires_grad_()
    for temperature in (0.1, 20.0):
        for direction in KD_DIRECTIONS:
            loss = kd_loss(student, teacher, temperature, direction)
            (grad,) = torch.autograd.grad(loss, student)
            assert torch.isfinite(loss) and loss > 0, (temperature, direction)
            assert torch.isfinite(grad.float()).all(), (temperature, direction)


def test_no_rows_at_all_is_a_zero_loss():
    """A batch whose targets are all padding leaves no rows: the term is 0, its gradient 0."""
    student = torch.zeros(0, 16, dtype=torch.bfloat16, requires_grad=True)
    loss = kd_loss(student, torch.zeros(0, 16, dtype=torch.bfloat16), 2.0, "symmetric")
    loss.backward()
    assert loss.item() == 0.0 and student.grad.shape == (0, 16)


@pytest.mark.parametrize("dtype", HALF)
def test_online_and_offline_steps_with_a_half_precision_student_and_teacher(toy_data, dtype):
    """One forward and backward of self_distill with the model in half precision: online (exit 2) and
    offline (a float32 teacher, which follows the student into its dtype), the terms finite, in float32,
    and close to the float32 model's; a row of the batch made all padding changes nothing finite."""
    task, model, criterion, sample = criterion_setup(
        toy_data, "--criterion", "self_distill", "--student-exits", "2", "--kd-alpha", "0.5",
        "--kd-temperature", "2")
    reference = {k: v.item() for k, v in criterion(model, sample)[2].items()
                 if k in ("loss", "kd_loss", "exit2_kd_loss")}
    half = copy.deepcopy(model).to(dtype)
    loss, _, log = criterion(half, sample)
    loss.backward()
    assert log["kd_loss"].dtype == torch.float32 and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad.float()).all() for p in half.parameters() if p.grad is not None)
    for key, value in reference.items():  # half precision moves the terms by rounding only
        assert log[key].item() == pytest.approx(value, rel=0.05), key

    # offline: the teacher is loaded in float32 and follows the half-precision student
    task, student, criterion, sample = criterion_setup(
        toy_data, "--criterion", "self_distill", "--kd-alpha", "0.5", "--kd-temperature", "20")
    teacher_model = copy.deepcopy(student)
    with torch.no_grad():
        for p in teacher_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    criterion.teacher = FrozenModelTeacher("t", teacher_model, "sha")
    student = student.to(dtype)
    pad = task.target_dictionary.pad()
    sample["target"][0] = pad  # one sentence with nothing to learn
    loss, _, log = criterion(student, sample)
    loss.backward()
    assert next(teacher_model.parameters()).dtype == dtype  # the teacher runs in the student's precision
    assert torch.isfinite(loss) and log["kd_loss"] > 0 and log["kd_loss"].dtype == torch.float32
    assert all(torch.isfinite(p.grad.float()).all() for p in student.parameters() if p.grad is not None)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("temperature", [0.1, 20.0])
def test_bert_criterion_online_and_offline_in_half_precision(dtype, temperature):
    """sentence_prediction_self_distill with a half-precision BERT: online exit 2 with a head of its own
    and offline against a float32 teacher that follows the student's dtype; terms finite and float32."""
    from fairseq_selfteach.core.teacher import FrozenModelTeacher

    model, d = small_bert(layers=4, exit_heads="2", exit_pooling="mean")
    s = batch(d)
    model = model.to(dtype).train()
    loss, _, log = glue_criterion(student_exits="2", kd_temperature=temperature)(model, s)
    loss.backward()
    assert torch.isfinite(loss) and log["exit2_kd_loss"].dtype == torch.float32
    assert all(torch.isfinite(p.grad.float()).all() for p in model.parameters() if p.grad is not None)

    teacher_model, _ = small_bert(layers=4, seed=3)
    student, _ = small_bert(layers=2, seed=4)
    student = student.to(dtype).train()
    crit = glue_criterion(teacher=FrozenModelTeacher("t", teacher_model, "sha"), kd_temperature=temperature)
    loss, _, log = crit(student, s)
    loss.backward()
    assert next(teacher_model.parameters()).dtype == dtype
    assert torch.isfinite(loss) and log["kd_loss"] > 0 and log["kd_loss"].dtype == torch.float32
    assert all(torch.isfinite(p.grad.float()).all() for p in student.parameters() if p.grad is not None)


def test_bf16_on_cpu_is_refused_in_one_line_by_both_criteria(toy_data, tmp_path):
    """fairseq-train --bf16 --cpu would end in fairseq's AttributeError (its TPU device): the criterion
    says why first; the classification criterion reads the same two options from fairseq's config."""
    from omegaconf import OmegaConf

    from selfteach_pipeline.errors import OptionError

    p = run(["fairseq-train", toy_data, "--user-dir", USER_DIR, "--arch", "transformer_iwslt_de_en", *SMALL,
             "--criterion", "self_distill", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", 1024,
             "--max-update", 1, "--cpu", "--bf16", "--save-dir", tmp_path], check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert p.stderr.strip().splitlines()[-1].startswith("error: --bf16 with --cpu: fairseq trains in bfloat16 on "
                                                         "CPU only on a TPU")
    cfg = OmegaConf.create({"common": {"bf16": True, "cpu": True}})
    from fairseq_selfteach.classification.criterion import SentencePredictionSelfDistillCriterion as Criterion
    from fairseq_selfteach.classification.criterion import SentencePredictionSelfDistillConfig as Config

    criterion_cfg = OmegaConf.merge(OmegaConf.structured(Config), {"classification_head_name": "sentence_classification_head"})
    cfg.criterion = criterion_cfg  # II("common.bf16") resolves against the whole config, as in fairseq-train
    with pytest.raises(OptionError, match="--bf16 with --cpu"):
        Criterion(cfg.criterion, type("Task", (), {"label_dictionary": None, "teacher": None})())
