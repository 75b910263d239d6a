"""`--optimizer adam_head_lr`: fairseq's Adam, with the classification heads at a learning rate of their own.

A head that is new, or meets a layer it was not trained on, starts far from where it should be: the
task's head when fine-tuning BERT, each exit's own head (--exit-heads), an offline student's head
reading layer k instead of layer L. At BERT's 2e-5 such a head barely moves in a short run (the
seed research's shallow `[CLS]` exits stayed at the majority class). With `--head-lr-scale S` every
parameter under `classification_heads.` (each head with its pooler, exit heads included) learns at S
times the scheduled learning rate; the encoder keeps the schedule's.

The glue tasks' build_model marks the heads' parameters with fairseq's own group attribute,
`param_group = "classification_heads"` (mark_head_parameters; fairseq's fp16 optimizer carries it over
to its fp32 copies, and `--optimizer composite` reads it: there the group needs a configuration of its
own), and this optimizer puts them in a parameter group with the scaled rate. fairseq's --fp16/--bf16
optimizer flattens every parameter into one tensor by default, which leaves no heads to tell apart:
with a scale there, pass --fp16-no-flatten-grads (or --memory-efficient-fp16); the optimizer says so
rather than ignoring the scale.
"""
import logging
from dataclasses import dataclass, field

from fairseq.optim import register_optimizer
from fairseq.optim.adam import FairseqAdam, FairseqAdamConfig
from omegaconf import II

from selfteach_pipeline.errors import OptionError

logger = logging.getLogger(__name__)

HEAD_GROUP = "classification_heads"
HEAD_PREFIX = "classification_heads."


def mark_head_parameters(model) -> int:
    """Mark the parameters of the model's classification heads (the optimizer's head group)."""
    n = 0
    for name, p in model.named_parameters():
        if name.startswith(HEAD_PREFIX):
            p.param_group = HEAD_GROUP
            n += 1
    return n


@dataclass
class AdamHeadLrConfig(FairseqAdamConfig):
    head_lr_scale: float = field(
        default=1.0,
        metadata={"help": "the classification heads (every head under classification_heads., exit heads "
                  "and their poolers included) learn at this many times the scheduled learning rate; "
                  "the encoder at the schedule's"},
    )
    fp16: bool = II("common.fp16")
    bf16: bool = II("common.bf16")
    memory_efficient_fp16: bool = II("common.memory_efficient_fp16")
    memory_efficient_bf16: bool = II("common.memory_efficient_bf16")
    fp16_no_flatten_grads: bool = II("common.fp16_no_flatten_grads")


@register_optimizer("adam_head_lr", dataclass=AdamHeadLrConfig)
class AdamHeadLr(FairseqAdam):
    def __init__(self, cfg: AdamHeadLrConfig, params):
        scale = float(cfg.head_lr_scale)
        if not scale > 0:
            raise OptionError(f"--head-lr-scale must be > 0; got {cfg.head_lr_scale}")
        params = list(params)
        heads = [p for p in params if getattr(p, "param_group", None) == HEAD_GROUP]
        rest = [p for p in params if getattr(p, "param_group", None) != HEAD_GROUP]
        if scale != 1.0 and not heads:
            flattened = (getattr(cfg, "fp16", False) or getattr(cfg, "bf16", False)) and not (
                getattr(cfg, "fp16_no_flatten_grads", False) or getattr(cfg, "memory_efficient_fp16", False)
                or getattr(cfg, "memory_efficient_bf16", False))
            if flattened:
                raise OptionError("--head-lr-scale with --fp16/--bf16 needs --fp16-no-flatten-grads (or "
                                  "--memory-efficient-fp16): flattened gradients leave no heads to tell apart")
            raise OptionError("--head-lr-scale: the model has no classification heads (it is for the glue "
                              "tasks' sentence classifiers)")
        groups = [{"params": rest, "lr_scale": 1.0}]  # the base group first: get_lr reads group 0
        if heads:
            groups.append({"params": heads, "lr_scale": scale})
        super().__init__(cfg, groups)
        self.scale = scale
        self.set_lr(self.get_lr())
        logger.info(f"adam_head_lr: {sum(p.numel() for p in heads):,} classification-head parameters at "
                    f"{scale:g} × the learning rate, {sum(p.numel() for p in rest):,} others at 1 ×")

    def set_lr(self, lr):
        for group in self.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    def load_state_dict(self, state_dict, optimizer_overrides=None):
        # fairseq's overrides set every group's lr to the base one, and the checkpoint brings its own
        # scale: this run's --head-lr-scale applies from the first update after resuming
        super().load_state_dict(state_dict, optimizer_overrides)
        for group in self.param_groups[1:]:
            group["lr_scale"] = self.scale
        self.set_lr(self.get_lr())
