"""`--criterion self_distill`: gold cross-entropy plus KL to a teacher, for self-teaching.

Online (``--student-exits 3``): one model, one forward pass. The top decoder layer is the teacher
exit, trained on the gold labels only; each student exit k (the first k decoder layers + the shared
output projection) is trained on (1 − α)·gold + α·T²·KL(teacher ‖ student). The teacher's
distribution is detached unless --kd-teacher-grad.

Offline (``--task self_distill_translation --teacher-path T.pt``): the model is a shallower student
initialised from a frozen teacher; its output (and any extra exits) are trained on
(1 − α)·gold + α·T²·KL(teacher ‖ student).

The gold term is exactly fairseq's label_smoothed_cross_entropy (the same function), so α = 0 with no
student exits gives the same loss as that criterion on the same batch.

Classifiers (BERT, --task glue / self_distill_glue) use the same code through their exit adapter
(distillation/exits.py): one distribution per sentence. A regression head (STS-B) has a score, not
a distribution: its gold term is the summed squared error, as in fairseq's sentence_prediction, and
its distillation term the squared difference to the teacher's score (kd.regression_kd).
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
    label_smoothed_nll_loss,
)
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics

from fairseq_selfteach.core.exits import exits_for, parse_exits
from fairseq_selfteach.core.kd import (
    KD_DIRECTIONS,
    check_kd_options,
    kd_from_log_probs,
    log_probs,
    mix_gold_and_kd,
    regression_kd,
)


@dataclass
class SelfDistillCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig):
    kd_alpha: float = field(
        default=0.5,
        metadata={"help": "weight α of the distillation term: (1-α)·gold + α·T²·KL; in [0, 1]"},
    )
    kd_temperature: float = field(
        default=1.0,
        metadata={"help": "softmax temperature T of teacher and student (> 0); regression heads "
                  "(STS-B) distil the teacher's score, which has no temperature"},
    )
    kd_direction: ChoiceEnum(KD_DIRECTIONS) = field(
        default="forward",
        metadata={
            "help": "forward: KL(teacher||student); reverse: KL(student||teacher); "
            "symmetric: their mean (what the seed research used)"
        },
    )
    student_exits: str = field(
        default="",
        metadata={
            "help": "online self-teaching: comma list of decoder layers k (1-based, below the top) "
            "whose outputs are student exits, e.g. 3 or 2,4"
        },
    )
    kd_teacher_grad: bool = field(
        default=False,
        metadata={
            "help": "online mode: let the distillation gradient flow into the teacher (top) exit "
            "instead of treating its distribution as a constant target"
        },
    )


@register_criterion("self_distill", dataclass=SelfDistillCriterionConfig)
class SelfDistillCriterion(LabelSmoothedCrossEntropyCriterion):
    def __init__(
        self,
        task,
        sentence_avg,
        label_smoothing,
        ignore_prefix_size=0,
        report_accuracy=False,
        kd_alpha=0.5,
        kd_temperature=1.0,
        kd_direction="forward",
        student_exits="",
        kd_teacher_grad=False,
    ):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        kd_direction = str(kd_direction)
        check_kd_options(kd_alpha, kd_temperature, kd_direction)
        self.kd_alpha = kd_alpha
        self.kd_temperature = kd_temperature
        self.kd_direction = kd_direction
        self.student_exits = parse_exits(student_exits)
        self.kd_teacher_grad = kd_teacher_grad
        # the frozen teacher (offline mode) belongs to the task; see tasks/self_distill_translation
        self.teacher = getattr(task, "teacher", None)
        self.exits = None  # the model family's exit adapter, chosen on the first batch

    def kd(self, student_soft, teacher_soft):
        if self.exits.regression:
            return regression_kd(student_soft, teacher_soft)
        return kd_from_log_probs(student_soft, teacher_soft, self.kd_temperature, self.kd_direction)

    def gold_and_soft(self, logits, target):
        """(gold loss, nll, soft output) of N scored positions. The soft output is what the
        distillation term compares: log-probs at temperature T (at T = 1 the gold term's
        log-softmax is reused), or a regression head's scores."""
        if self.exits.regression:
            pred = logits.float().view(-1)
            mse = F.mse_loss(pred, target.float().view(-1), reduction="sum")
            return mse, mse.detach(), pred
        lprobs = log_probs(logits)
        gold, nll = label_smoothed_nll_loss(lprobs, target, self.eps)
        soft = lprobs if self.kd_temperature == 1.0 else log_probs(logits, self.kd_temperature)
        return gold, nll, soft

    def teacher_soft(self, logits):
        if self.exits.regression:
            return logits.float().view(-1)
        return log_probs(logits, self.kd_temperature)

    def forward(self, model, sample, reduce=True):
        if not reduce:
            raise ValueError("self_distill only computes reduced (summed) losses")
        if self.exits is None:
            # where this model family's distributions are (decoder tokens, or sentence classes)
            self.exits = exits_for(model, self)
            self.exits.check(model, self.student_exits)

        # N scored positions: real target tokens (translation) or sentences (classification).
        # Pads never enter a loss: only these positions are selected, once.
        net_output, top_logits, target, positions = self.exits.forward(model, sample)
        gold, nll, top_lp = self.gold_and_soft(top_logits, target)

        log = {}
        if self.teacher is not None:
            self.teacher.follow(model)
            teacher_lp = self.teacher_soft(self.exits.teacher_logits(self.teacher, sample, positions))
            top_kd = self.kd(top_lp, teacher_lp)
            loss = mix_gold_and_kd(gold, top_kd, self.kd_alpha)
            kd_total = top_kd.detach()
        else:
            # online: the top exit is the teacher and learns from the gold labels only
            teacher_lp = top_lp if self.kd_teacher_grad else top_lp.detach()
            loss = gold
            kd_total = gold.new_zeros(())

        for k in self.student_exits:
            logits = self.exits.exit_logits(model, net_output, k, positions)
            exit_gold, exit_nll, exit_soft = self.gold_and_soft(logits, target)
            exit_kd = self.kd(exit_soft, teacher_lp)
            loss = loss + mix_gold_and_kd(exit_gold, exit_kd, self.kd_alpha)
            kd_total = kd_total + exit_kd.detach()
            log[f"exit{k}_gold_loss"] = exit_gold.data
            log[f"exit{k}_nll_loss"] = exit_nll.data
            log[f"exit{k}_kd_loss"] = exit_kd.data
            if self.exits.per_sentence and not self.exits.regression:
                log[f"exit{k}_n_correct"] = utils.item(logits.argmax(-1).eq(target).sum())

        nsentences = sample["target"].size(0)
        if self.exits.per_sentence:  # as fairseq's sentence_prediction: losses per sentence
            sample_size = nll_count = nsentences
        else:
            sample_size = nsentences if self.sentence_avg else sample["ntokens"]
            nll_count = sample["ntokens"]
        log.update(
            {
                "loss": loss.data,
                "gold_loss": gold.data,
                "nll_loss": nll.data,
                "kd_loss": kd_total.data,
                "ntokens": sample["ntokens"],
                "nll_count": nll_count,
                "nsentences": nsentences,
                "sample_size": sample_size,
            }
        )
        if self.exits.per_sentence and not self.exits.regression:
            log["n_correct"] = utils.item(top_logits.argmax(-1).eq(target).sum())
            log["total"] = nsentences
        elif self.report_accuracy:
            n_correct, total = self.compute_accuracy(model, net_output, sample)
            log["n_correct"] = utils.item(n_correct.data)
            log["total"] = utils.item(total.data)
        return loss, sample_size, log

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """loss, nll_loss, ppl (and accuracy) as label_smoothed_cross_entropy logs them, plus each
        term separately: gold_loss and kd_loss per sample_size, and per exit k its
        exit{k}_gold_loss, exit{k}_kd_loss (per sample_size) and exit{k}_nll_loss / exit{k}_ppl
        (per token; per sentence for classification, like every nll here), and for classification
        exit{k}_accuracy. All losses in base 2, like fairseq."""
        # nll figures are per target token (translation) or per sentence (classification)
        super().reduce_metrics([dict(log, ntokens=log.get("nll_count", log.get("ntokens", 0)))
                                for log in logging_outputs])
        nll_count = sum(log.get("nll_count", log.get("ntokens", 0)) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        keys = sorted({k for log in logging_outputs for k in log if k.endswith("_loss")})
        for key in keys:
            if key in ("loss", "nll_loss"):
                continue
            total = sum(log.get(key, 0) for log in logging_outputs)
            per_token = key.endswith("nll_loss")
            denom = nll_count if per_token else sample_size
            metrics.log_scalar(key, total / max(denom, 1) / math.log(2), denom, round=3)
            if per_token:
                exit_name = key[: -len("_nll_loss")]
                metrics.log_derived(
                    f"{exit_name}_ppl",
                    lambda meters, key=key: utils.get_perplexity(meters[key].avg),
                )
        total = sum(log.get("total", 0) for log in logging_outputs)
        for key in sorted({k for log in logging_outputs for k in log if k.endswith("_n_correct")}):
            correct = sum(log.get(key, 0) for log in logging_outputs)
            metrics.log_scalar(key.replace("_n_correct", "_accuracy"),
                               100.0 * correct / max(total, 1), total, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
