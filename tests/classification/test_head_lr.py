"""`--optimizer adam_head_lr` (classification/head_lr.py): the classification heads at --head-lr-scale × the
scheduled learning rate, the encoder at the schedule's; in-process and through fairseq-train."""
import pytest
import torch
from omegaconf import OmegaConf

from fairseq_selfteach.classification.head_lr import AdamHeadLr, mark_head_parameters
from selfteach_pipeline.errors import OptionError
from tests.classification.test_criterion import HEAD, batch, criterion, small_bert


def adam_cfg(**kw):
    cfg = dict(adam_betas="(0.9, 0.999)", adam_eps=1e-8, weight_decay=0.0, use_old_adam=False,
               fp16_adam_stats=False, tpu=False, lr=[1e-3], head_lr_scale=10.0, fp16=False, bf16=False,
               memory_efficient_fp16=False, memory_efficient_bf16=False, fp16_no_flatten_grads=False)
    cfg.update(kw)
    return OmegaConf.create(cfg)


def test_first_step_moves_heads_by_the_scaled_rate_and_the_encoder_by_the_rate():
    """Adam's first step moves every parameter with a gradient by lr·g/(|g| + eps), about lr: so a head
    weight moves by about 10·lr and an encoder weight by about lr."""
    model, d = small_bert(layers=2, exit_heads="1")
    model.train()
    assert mark_head_parameters(model) == sum(1 for n, _ in model.named_parameters()
                                              if n.startswith("classification_heads."))
    opt = AdamHeadLr(adam_cfg(), [p for p in model.parameters()])
    assert [g["lr"] for g in opt.param_groups] == [1e-3, pytest.approx(1e-2)]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss, _, _ = criterion(student_exits="1")(model, batch(d))
    loss.backward()
    opt.step()
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in model.named_parameters()}
    for name, step in moved.items():
        if name.startswith(f"classification_heads.{HEAD}.out_proj") or name.startswith(f"classification_heads.{HEAD}_exit1."):
            assert step == pytest.approx(1e-2, rel=1e-2), name
        elif name.startswith("encoder.layers.0.") and name.endswith(".weight"):  # (k_proj's bias gets ~0 gradient)
            assert step == pytest.approx(1e-3, rel=1e-2), name
    opt.set_lr(5e-4)  # the scheduler's rate: the heads keep their scale
    assert [g["lr"] for g in opt.param_groups] == [5e-4, pytest.approx(5e-3)] and opt.get_lr() == 5e-4
    # resuming: fairseq's overrides reset every group's lr; this run's scale applies again
    state = opt.state_dict()
    resumed = AdamHeadLr(adam_cfg(head_lr_scale=4.0), [p for p in model.parameters()])
    resumed.load_state_dict(state, {"lr": 1e-3})
    assert [g["lr"] for g in resumed.param_groups] == [1e-3, pytest.approx(4e-3)]


def test_a_scale_without_heads_or_with_flattened_fp16_is_refused():
    weights = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.raises(OptionError, match="the model has no classification heads"):
        AdamHeadLr(adam_cfg(), weights)
    with pytest.raises(OptionError, match="needs --fp16-no-flatten-grads"):
        AdamHeadLr(adam_cfg(fp16=True), weights)
    with pytest.raises(OptionError, match="--head-lr-scale must be > 0"):
        AdamHeadLr(adam_cfg(head_lr_scale=0.0), weights)
    AdamHeadLr(adam_cfg(head_lr_scale=1.0), weights)  # scale 1: plain Adam, heads or not
