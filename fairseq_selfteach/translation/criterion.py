"""`--criterion self_distill` for translation: gold cross-entropy plus KL to a teacher.

Online (``--student-exits 3``): one model, one forward pass. The top decoder layer is the teacher
exit, trained on the gold labels only; each student exit k (the first k decoder layers + what follows
them, translation/exits.py) is trained on (1 − α)·gold + α·T²·KL(teacher ‖ student).

Offline (``--task self_distill_translation --teacher-path T.pt``): the model is a shallower student
initialised from a frozen teacher; its output (and any extra exits) learn from the teacher.

The gold term is fairseq's own label_smoothed_nll_loss, so α = 0 with no student exits gives exactly
label_smoothed_cross_entropy's loss. Sentence classifiers have their own criterion,
`sentence_prediction_self_distill` (classification/criterion.py), with the same loss code (core/distill.py).
"""
from dataclasses import dataclass

from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
    label_smoothed_nll_loss,
)

from fairseq_selfteach.core.distill import KDConfig, SelfDistillMixin, reduce_distill_terms
from fairseq_selfteach.core.kd import log_probs, top_k_target
from fairseq_selfteach.translation.exits import EXIT_NORMS, check_decoder_output, decoder_exit_logits
from selfteach_pipeline.errors import OptionError


@dataclass
class SelfDistillCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig, KDConfig):
    pass


@register_criterion("self_distill", dataclass=SelfDistillCriterionConfig)
class SelfDistillCriterion(SelfDistillMixin, LabelSmoothedCrossEntropyCriterion):
    criterion_name = "self_distill"
    family = "translation models (an encoder-decoder with a decoder to exit from)"
    other_criterion = "sentence_prediction_self_distill for sentence classifiers"

    def __init__(self, task, sentence_avg, label_smoothing, ignore_prefix_size=0, report_accuracy=False,
                 kd_alpha=0.5, kd_temperature=1.0, kd_direction="forward", student_exits="",
                 kd_teacher_grad=False, exit_weights="", teacher_exit=0, exit_curriculum="none",
                 exit_curriculum_period=2, exit_curriculum_fraction=0.5, max_update=0, layer_dropout_max=0.0,
                 bf16=False, cpu=False):
        if getattr(task, "label_dictionary", None) is not None or hasattr(task, "glue_task"):
            self.refuse_other_family(f"--task {type(task).__name__} classifies sentences")
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        self.init_distill(task, kd_alpha, kd_temperature, kd_direction, student_exits, kd_teacher_grad,
                          exit_weights, teacher_exit, exit_curriculum, exit_curriculum_period,
                          exit_curriculum_fraction, max_update, layer_dropout_max, bf16, cpu)
        if getattr(self.teacher, "cached", False) and ignore_prefix_size > 0:
            raise OptionError("--ignore-prefix-size with --teacher-cache: the cache holds a row for every "
                              "target token, the criterion would read the wrong ones")

    # --- the family: one distribution per real target token -----------------------------------

    def is_our_model(self, model) -> bool:
        return hasattr(model, "decoder")

    stack_side = "decoder"
    layer_batch_dim = 1  # fairseq's decoder states are T x B x C

    def exit_stack(self, model):
        return model.decoder

    def check_model(self, model) -> None:
        if self.student_exits or self.teacher_exit:
            check_decoder_output(model.decoder)

    def exit_part_layers(self, model):
        own = getattr(model.decoder, EXIT_NORMS, None)
        return [int(k) for k in own] if own is not None else []

    def gold_and_soft(self, logits, target):
        """(gold, nll, soft output) of N positions; at T = 1 the gold term's log-softmax is reused."""
        lprobs = log_probs(logits)
        gold, nll = label_smoothed_nll_loss(lprobs, target, self.eps)
        soft = lprobs if self.kd_temperature == 1.0 else log_probs(logits, self.kd_temperature)
        return gold, nll, soft

    def teacher_soft(self, logits):
        return log_probs(logits, self.kd_temperature)

    def exit_logits(self, model, net_output, layer, mask):
        return decoder_exit_logits(model.decoder, net_output[1]["inner_states"], layer, mask)

    def teacher_logits(self, sample, mask):
        return self.teacher.logits(sample)[mask]

    def cached_target(self, sample, mask):
        # the cache's rows are every target token of each sample in order: target[mask], row by row
        values, indices = self.teacher.cached_rows(sample, mask.device, counts_expected=mask.sum(1))
        return top_k_target(indices, values, self.kd_temperature)

    def teacher_rows(self, sample):
        """What a teacher cache stores for a batch (cli/teacher_cache.py): the teacher's logits at every
        target token, row by row, and the number of tokens of each sample."""
        mask = sample["target"].ne(self.padding_idx)
        return self.teacher_logits(sample, mask), mask.sum(1)

    # --- fairseq's criterion interface ----------------------------------------------------------

    def forward(self, model, sample, reduce=True):
        if not reduce:
            raise OptionError("self_distill only computes reduced (summed) losses")
        self.check_once(model)
        net_output = model(**sample["net_input"])
        loss, log = self.compute_distill_loss(model, net_output, sample)
        sample_size = sample["target"].size(0) if self.sentence_avg else sample["ntokens"]
        log.update(loss=loss.data, ntokens=sample["ntokens"], nsentences=sample["target"].size(0),
                   sample_size=sample_size)
        if self.report_accuracy:
            n_correct, total = self.compute_accuracy(model, net_output, sample)
            log["n_correct"] = utils.item(n_correct.data)
            log["total"] = utils.item(total.data)
        return loss, sample_size, log

    def compute_loss(self, model, net_output, sample, reduce=True):
        """(loss, nll_loss) as the parent's, for tasks that call compute_loss themselves."""
        loss, log = self.compute_distill_loss(model, net_output, sample)
        return loss, log["nll_loss"]

    def compute_distill_loss(self, model, net_output, sample):
        target = model.get_targets(sample, net_output)
        mask = target.ne(self.padding_idx)
        if self.ignore_prefix_size > 0:
            mask[:, : self.ignore_prefix_size] = False
        return self.distill(model, sample, net_output, net_output[0][mask], target[mask], mask)

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """label_smoothed_cross_entropy's loss, nll_loss, ppl (and accuracy), plus each term
        (core/distill.py reduce_distill_terms)."""
        super().reduce_metrics(logging_outputs)
        reduce_distill_terms(
            logging_outputs,
            nll_count=sum(log.get("ntokens", 0) for log in logging_outputs),
            sample_size=sum(log.get("sample_size", 0) for log in logging_outputs),
        )

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
