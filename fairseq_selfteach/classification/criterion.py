"""`--criterion sentence_prediction_self_distill`: fairseq's sentence_prediction plus self-teaching.

The same loss as `self_distill` for translation (core/distill.py), read from one distribution per
sentence: the classification head on a layer's output. The head pools inside itself (the [CLS]
position, or with --pooling mean the mean of the real tokens) through BERT's pooler, so exit k is
simply the head applied to layer k's output: exactly the model made of the first k layers, which is
what export keeps.

    fairseq-train BIN --user-dir fairseq_selfteach --task glue --criterion sentence_prediction_self_distill \
        --student-exits 2,4 --kd-alpha 0.5 --kd-temperature 2 ...          (online)
    ... --task self_distill_glue --teacher-path FINETUNED.pt --encoder-layers 4 ...   (offline)

With α = 0 and no exits the loss is exactly sentence_prediction's (cross-entropy; with
--regression-target, as for STS-B, the summed squared error). A regression head distils the teacher's
score: the squared difference to it (core/kd.py regression_kd; no temperature). In validation the
GLUE counts of each batch go into the logging outputs (classification/metrics.py), which the glue
task turns into GLUE's metrics.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from fairseq.criterions import register_criterion
from fairseq.criterions.sentence_prediction import SentencePredictionConfig, SentencePredictionCriterion
from fairseq.logging import metrics
from omegaconf.errors import InterpolationResolutionError

from fairseq_selfteach.classification import metrics as glue_metrics
from fairseq_selfteach.classification.exit_heads import exit_head_name
from fairseq_selfteach.core.distill import (
    KDConfig,
    SelfDistillMixin,
    exits_accuracy,
    reduce_distill_terms,
)
from fairseq_selfteach.core.kd import log_probs, regression_kd
from selfteach_pipeline.errors import OptionError


def _from_training(cfg, name):
    """A training option the config reads by II() interpolation (--max-update, --bf16, --cpu); 0 where the
    config stands alone (built in a test or a tool, without fairseq's other groups)."""
    try:
        return getattr(cfg, name) or 0
    except InterpolationResolutionError:
        return 0


def _gathers_on_cpu() -> bool:
    """Distributed training with gloo (fairseq's CPU backend), where all_gather_list cannot run."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1 \
        and dist.get_backend() == "gloo"


@dataclass
class SentencePredictionSelfDistillConfig(SentencePredictionConfig, KDConfig):
    pass


@register_criterion("sentence_prediction_self_distill", dataclass=SentencePredictionSelfDistillConfig)
class SentencePredictionSelfDistillCriterion(SelfDistillMixin, SentencePredictionCriterion):
    criterion_name = "sentence_prediction_self_distill"
    family = "sentence classifiers (a model with classification heads)"
    other_criterion = "self_distill for translation models"

    def __init__(self, cfg: SentencePredictionSelfDistillConfig, task):
        if getattr(task, "tgt_dict", None) is not None:
            self.refuse_other_family(f"--task {type(task).__name__} translates")
        super().__init__(cfg, task)
        if cfg.regression_target and _gathers_on_cpu():
            raise OptionError(
                "--regression-target in several CPU processes: fairseq gathers the validation predictions "
                "for Pearson and Spearman with all_gather_list, which needs CUDA; train a regression task "
                "(STS-B) in one process on CPU, or on GPUs")
        self.init_distill(task, cfg.kd_alpha, cfg.kd_temperature, cfg.kd_direction, cfg.student_exits,
                          cfg.kd_teacher_grad, cfg.exit_weights, cfg.teacher_exit, cfg.exit_curriculum,
                          cfg.exit_curriculum_period, cfg.exit_curriculum_fraction, _from_training(cfg, "max_update"),
                          cfg.layer_dropout_max, _from_training(cfg, "bf16"), _from_training(cfg, "cpu"))

    # --- the family: one distribution (or score) per sentence ---------------------------------

    def is_our_model(self, model) -> bool:
        return hasattr(model, "classification_heads") and not hasattr(model, "decoder")

    stack_side = "encoder"
    layer_batch_dim = 0  # BERT's states are B x T x C

    def exit_stack(self, model):
        return model.encoder

    def check_model(self, model) -> None:
        heads = model.classification_heads
        if self.classification_head_name not in heads:
            raise OptionError(f"the model has no classification head {self.classification_head_name!r} "
                              f"(--classification-head-name)")
        outputs = heads[self.classification_head_name].out_proj.out_features
        if (outputs == 1) != bool(self.regression_target):
            raise OptionError(
                f"head {self.classification_head_name!r} has {outputs} outputs but --regression-target is "
                f"{'on' if self.regression_target else 'off'}: a regression task (STS-B) needs both"
            )

    def exit_part_layers(self, model):
        heads, layers = model.classification_heads, len(model.encoder.layers)
        return [k for k in range(1, layers) if exit_head_name(self.classification_head_name, k) in heads]

    def gold_and_soft(self, logits, target):
        if self.regression_target:  # as sentence_prediction: summed squared error in float32
            pred = logits.float().view(-1)
            mse = F.mse_loss(pred, target.float().view(-1), reduction="sum")
            return mse, mse.detach(), pred
        lprobs = log_probs(logits)
        nll = F.nll_loss(lprobs, target, reduction="sum")
        soft = lprobs if self.kd_temperature == 1.0 else log_probs(logits, self.kd_temperature)
        return nll, nll.detach(), soft

    def teacher_soft(self, logits):
        return logits.float().view(-1) if self.regression_target else log_probs(logits, self.kd_temperature)

    def kd(self, student_soft, teacher_soft):
        if self.regression_target:
            return regression_kd(student_soft, teacher_soft)
        return super().kd(student_soft, teacher_soft)

    def exit_logits(self, model, extra, layer, positions):
        # inner_states[0] is the embeddings' output, [k] layer k's; an exit with a head of its own
        # (--exit-heads, classification/exit_heads.py) predicts through it
        heads, name = model.classification_heads, self.classification_head_name
        head = heads[exit_head_name(name, layer)] if exit_head_name(name, layer) in heads else heads[name]
        return head(extra["inner_states"][layer], padding_mask=extra["padding_mask"])

    def teacher_logits(self, sample, positions):
        return self.teacher.logits(sample, classification_head_name=self.classification_head_name)

    def cached_target(self, sample, positions):
        values, _ = self.teacher.cached_rows(sample, sample["target"].device)
        return self.teacher_soft(values)

    def teacher_rows(self, sample):
        """What a teacher cache stores for a batch (cli/teacher_cache.py): every logit of each sentence."""
        logits = self.teacher_logits(sample, None)
        return logits, torch.ones(logits.size(0), dtype=torch.long)

    def exit_counts(self, k, logits, target):
        if self.regression_target:
            return {}
        return {f"exit{k}_ncorrect": logits.argmax(-1).eq(target).sum().item()}

    # --- fairseq's criterion interface ----------------------------------------------------------

    def forward(self, model, sample, reduce=True):
        self.check_once(model)
        logits, extra = model(**sample["net_input"], features_only=True,
                              classification_head_name=self.classification_head_name)
        target = model.get_targets(sample, [logits]).view(-1)
        loss, log = self.distill(model, sample, extra, logits, target, None)
        n = target.numel()
        log.update(loss=loss.data, ntokens=sample["ntokens"], nsentences=n, sample_size=n)
        if not self.regression_target:
            log["ncorrect"] = logits.argmax(-1).eq(target).sum().item()
        if not model.training:  # GLUE's metrics, from this batch's predictions
            log.update(glue_metrics.score_batch(logits, target, logits.size(-1), self.regression_target))
        return loss, n, log

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """sentence_prediction's loss and accuracy, nll_loss per sentence, and each term."""
        sentences = sum(log.get("sample_size", 0) for log in logging_outputs)
        # per sentence: with ntokens = sample_size the parent logs no per-token nll of its own
        SentencePredictionCriterion.reduce_metrics(
            [dict(log, ntokens=log.get("sample_size", 0)) for log in logging_outputs])
        nll = sum(float(log.get("nll_loss", 0)) for log in logging_outputs)
        metrics.log_scalar("nll_loss", nll / max(sentences, 1) / math.log(2), sentences, round=3)
        reduce_distill_terms(logging_outputs, nll_count=sentences, sample_size=sentences)
        exits_accuracy(logging_outputs, sentences)

    def logging_outputs_can_be_summed(self) -> bool:
        # a regression validation batch logs its scores (for Pearson/Spearman): lists, gathered rather
        # than summed; training logs only sums (fairseq puts the criterion in train or eval mode first)
        return not (self.regression_target and not self.training)
