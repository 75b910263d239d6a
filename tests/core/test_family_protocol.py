"""What a family's criterion must supply to the self-distillation mixin (core/distill.py) is declared as
abstract methods and attributes: both families supply all of it, and a family missing a piece cannot be
instantiated (the error names the piece), with fairseq's criterion base classes mixed in as the real
criteria mix them."""
import inspect

import pytest
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

from fairseq_selfteach.classification.criterion import SentencePredictionSelfDistillCriterion
from fairseq_selfteach.core.distill import SelfDistillMixin
from fairseq_selfteach.translation.criterion import SelfDistillCriterion

PROTOCOL = {"criterion_name", "family", "other_criterion", "stack_side", "layer_batch_dim", "is_our_model",
            "exit_stack", "check_model", "gold_and_soft", "teacher_soft", "exit_logits", "teacher_logits",
            "cached_target"}


def test_the_protocol_is_what_the_mixin_calls():
    assert SelfDistillMixin.__abstractmethods__ == PROTOCOL


@pytest.mark.parametrize("criterion", [SelfDistillCriterion, SentencePredictionSelfDistillCriterion])
def test_both_families_supply_all_of_it(criterion):
    assert not inspect.isabstract(criterion), criterion.__abstractmethods__


def test_a_family_missing_a_piece_cannot_be_instantiated():
    supplied = {name: getattr(SelfDistillCriterion, name) for name in PROTOCOL - {"cached_target"}}
    incomplete = type("NoCacheCriterion", (SelfDistillMixin, LabelSmoothedCrossEntropyCriterion), supplied)
    with pytest.raises(TypeError, match="abstract.*cached_target"):
        incomplete(task=None, sentence_avg=False, label_smoothing=0.1)
