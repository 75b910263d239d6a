"""Self-distillation as both families' criteria share it: the options, the loss over the exits, and
the logged terms. Each family's criterion subclasses fairseq's criterion it extends and mixes this in
(translation/criterion.py, classification/criterion.py), supplying where its distributions are.

For the teacher exit and each student exit k (weight w_k, --exit-weights):
    (1 − α)·gold + α·T²·KL        (offline: the teacher is a frozen model)
    gold + Σ_k w_k·[(1 − α)·gold_k + α·T²·KL_k]   (online: the teacher is an exit of the same model)
The online teacher exit is the top layer, or layer --teacher-exit (one stage of the online gradual
schedule: layers above it are left alone); it learns from the gold labels only, and its distribution
is a constant target unless --kd-teacher-grad.
"""
import abc
import logging
import math
from dataclasses import dataclass, field

from fairseq import utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from selfteach_pipeline.errors import OptionError
from fairseq_selfteach.core.exits import (
    EXIT_CURRICULA,
    check_curriculum,
    check_exit_layers,
    curriculum_exits,
    parse_exit_weights,
    parse_exits,
    resolve_exits,
)
from fairseq_selfteach.core.gradient_sync import check_gradient_sync
from fairseq_selfteach.core.kd import KD_DIRECTIONS, check_kd_options, kd_from_log_probs, mix_gold_and_kd
from fairseq_selfteach.core.layer_dropout import check_layer_dropout, install_layer_dropout

logger = logging.getLogger(__name__)


@dataclass
class KDConfig(FairseqDataclass):
    """The distillation options every self-teaching criterion adds to its parent's config."""

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
        metadata={"help": "forward: KL(teacher||student); reverse: KL(student||teacher); "
                  "symmetric: their mean (what the seed research used)"},
    )
    student_exits: str = field(
        default="",
        metadata={"help": "online self-teaching: comma list of layers k (1-based, below the teacher exit) "
                  "whose outputs are student exits, e.g. 3 or 2,4 (decoder layers; encoder layers for "
                  "BERT), or 'all': every layer below the teacher exit"},
    )
    exit_weights: str = field(
        default="",
        metadata={"help": "comma list of loss weights, one per student exit, shallowest first (default: "
                  "1 each); the teacher exit's gold term always has weight 1"},
    )
    teacher_exit: int = field(
        default=0,
        metadata={"help": "online mode: the layer (1-based) whose output is the teacher exit; 0: the top "
                  "layer. With a lower layer the model trains as its first teacher-exit layers, one "
                  "stage of the online gradual schedule (e.g. --teacher-exit 4 --student-exits 3)"},
    )
    kd_teacher_grad: bool = field(
        default=False,
        metadata={"help": "online mode: let the distillation gradient flow into the teacher (top) exit "
                  "instead of treating its distribution as a constant target"},
    )
    exit_curriculum: ChoiceEnum(EXIT_CURRICULA) = field(
        default="none",
        metadata={"help": "online mode: which student exits train at each update (LayerSkip's curricula; "
                  "validation always scores every exit). none: all; rotational: exit k where (k + update) "
                  "mod --exit-curriculum-period = 0; gradual: exits switched on from the top down, all on "
                  "by --exit-curriculum-fraction of --max-update. Needs a task of this plugin (e.g. "
                  "--task self_distill_translation, or glue), which hands the criterion the update number"},
    )
    exit_curriculum_period: int = field(
        default=2, metadata={"help": "rotational curriculum: every R-th layer's exit trains at each update"},
    )
    exit_curriculum_fraction: float = field(
        default=0.5, metadata={"help": "gradual curriculum: the fraction of --max-update by which every exit is on"},
    )
    layer_dropout_max: float = field(
        default=0.0,
        metadata={"help": "LayerSkip's layer dropout rising with depth: in training each sequence skips layer l "
                  "(0-based, of the L layers up to the teacher exit) with probability p·(2^(l/(L-1)) - 1), "
                  "where p is this value: never the first layer, p the top one; never in evaluation; 0: off"},
    )
    max_update: int = II("optimization.max_update")
    # read, never set: fairseq-train's precision and device, for the one refusal fairseq gives as a traceback
    bf16: bool = II("common.bf16")
    cpu: bool = II("common.cpu")


def _family_attribute(doc: str):
    """An abstract attribute: a family's criterion sets it as a class attribute."""
    def attribute(self):
        raise NotImplementedError(doc)
    attribute.__doc__ = doc
    return property(abc.abstractmethod(attribute))


class SelfDistillMixin(abc.ABC):
    """Mixed in front of a family's fairseq criterion: `class X(SelfDistillMixin, FairseqCriterion subclass)`.
    What the family supplies is declared below as abstract (a class missing one cannot be instantiated;
    nn.Module's metaclass is plain `type`, so ABCMeta is the class's); exit_part_layers and exit_counts have
    defaults."""

    # names, for the options' messages (class attributes in the criterion)
    criterion_name = _family_attribute("the name it is registered under (--criterion)")
    family = _family_attribute("what models it is for, for the wrong-family message")
    other_criterion = _family_attribute("the criterion to use instead, for the wrong-family message")
    stack_side = _family_attribute('the name of the layer stack exits are taken from ("decoder", "encoder")')
    layer_batch_dim = _family_attribute("where a layer's hidden states hold the sequences (layer dropout)")

    @abc.abstractmethod
    def is_our_model(self, model) -> bool:
        """Whether the model is of this family."""

    @abc.abstractmethod
    def exit_stack(self, model):
        """The layer stack exits are taken from (it has .layers)."""

    @abc.abstractmethod
    def check_model(self, model) -> None:
        """Raise OptionError unless the heads and output layers fit the model."""

    @abc.abstractmethod
    def gold_and_soft(self, logits, target):
        """(gold loss, nll, soft output) of the N scored positions' logits."""

    @abc.abstractmethod
    def teacher_soft(self, logits):
        """The soft output (the KL's target) of teacher logits."""

    @abc.abstractmethod
    def exit_logits(self, model, extra, layer, positions):
        """The logits of the exit at `layer` (1-based) at the positions that count."""

    @abc.abstractmethod
    def teacher_logits(self, sample, positions):
        """The frozen teacher's logits at the positions that count (offline mode)."""

    @abc.abstractmethod
    def cached_target(self, sample, positions):
        """The teacher's soft output read from its cache (--teacher-cache) at the positions that count."""

    def init_distill(self, task, kd_alpha, kd_temperature, kd_direction, student_exits, kd_teacher_grad,
                     exit_weights="", teacher_exit=0, exit_curriculum="none", exit_curriculum_period=2,
                     exit_curriculum_fraction=0.5, max_update=0, layer_dropout_max=0.0, bf16=False, cpu=False):
        if bf16 and cpu:
            raise OptionError("--bf16 with --cpu: fairseq trains in bfloat16 on CPU only on a TPU (it asks torch_xla "
                              "for the device); train in float32 on CPU, or with --bf16 or --fp16 on a GPU")
        kd_direction = str(kd_direction)
        try:
            check_kd_options(kd_alpha, kd_temperature, kd_direction)
        except ValueError as e:
            raise OptionError(str(e)) from e
        self.kd_alpha = kd_alpha
        self.kd_temperature = kd_temperature
        self.kd_direction = kd_direction
        # "all" and the weights are resolved against the model's depth (check_once)
        self.exits_spec = parse_exits(student_exits)
        self.student_exits = [] if self.exits_spec == "all" else self.exits_spec
        self.exit_weights_spec = exit_weights
        self.kd_teacher_grad = kd_teacher_grad
        # the frozen teacher (offline mode) belongs to the task (core/teacher_task.py)
        self.teacher = getattr(task, "teacher", None)
        if teacher_exit < 0:
            raise OptionError(f"--teacher-exit must be a layer number (or 0 for the top); got {teacher_exit}")
        if teacher_exit and self.teacher is not None:
            raise OptionError("--teacher-exit is for online self-teaching: with --teacher-path the teacher "
                              "is that frozen model")
        self.teacher_exit = teacher_exit
        if getattr(self.teacher, "cached", False) and self.teacher.cache.kind == "top_k" and kd_direction != "forward":
            raise OptionError(f"--kd-direction {kd_direction} needs the teacher's whole distribution, and "
                              f"--teacher-cache {self.teacher.cache.path} holds its top {self.teacher.cache.k}: "
                              f"use --kd-direction forward, or train without the cache")
        self.exit_curriculum = str(exit_curriculum)
        check_curriculum(self.exit_curriculum, max_update, exit_curriculum_period, exit_curriculum_fraction)
        if self.exit_curriculum != "none" and self.teacher is not None:
            raise OptionError("--exit-curriculum is for online self-teaching (exits of one model), not with "
                              "--teacher-path")
        self.curriculum = dict(period=exit_curriculum_period, fraction=exit_curriculum_fraction,
                               max_update=max_update)
        check_layer_dropout(layer_dropout_max)
        self.layer_dropout_max = layer_dropout_max
        self.num_updates = None  # handed over by the task (CurriculumTaskMixin) before each training step
        self._model_checked = False

    def set_num_updates(self, num_updates: int) -> None:
        self.num_updates = num_updates

    def trained_exits(self, model):
        """The student exits (and their weights) this step trains: all of them in validation and without a
        curriculum; otherwise those the curriculum enables at this update."""
        pairs = list(zip(self.student_exits, self.exit_weights))
        if self.exit_curriculum == "none" or not model.training:
            return pairs
        if self.num_updates is None:
            raise OptionError(
                f"--exit-curriculum {self.exit_curriculum} needs the update number, which fairseq hands only "
                f"to the task: use a task of this plugin (--task self_distill_translation for translation, "
                f"glue or self_distill_glue for classifiers)")
        top = self.teacher_exit or len(self.exit_stack(model).layers)
        on = set(curriculum_exits(self.exit_curriculum, self.student_exits, top, self.num_updates,
                                  **self.curriculum))
        return [(k, w) for k, w in pairs if k in on]

    def refuse_other_family(self, what: str) -> None:
        raise OptionError(
            f"--criterion {self.criterion_name} is for {self.family}, but {what}: use "
            f"--criterion {self.other_criterion}"
        )

    def check_once(self, model) -> None:
        if self._model_checked:
            return
        if not self.is_our_model(model):
            self.refuse_other_family(f"the model is a {type(model).__name__}")
        stack = self.exit_stack(model)
        self.student_exits = resolve_exits(self.exits_spec, self.teacher_exit or len(stack.layers))
        check_exit_layers(stack, self.stack_side, self.student_exits, teacher_layer=self.teacher_exit)
        self.exit_weights = parse_exit_weights(self.exit_weights_spec, self.student_exits)
        self.check_model(model)
        if self.layer_dropout_max > 0:
            top = self.teacher_exit or len(stack.layers)
            rates = install_layer_dropout(stack.layers, self.layer_dropout_max, top, self.layer_batch_dim)
            logger.info(f"layer dropout of {self.stack_side} layers 1-{top} in training: "
                        + ", ".join(f"{p:.3f}" for p in rates))
        parts = self.exit_part_layers(model)
        outside = "" if not parts else (f"the exits at {self.stack_side} layers {','.join(map(str, parts))} have "
                                        f"parameters of their own (heads or norms), applied after the model's forward")
        check_gradient_sync(model, self.parameters_without_gradient(model), outside)
        self._model_checked = True

    def exit_part_layers(self, model):
        return []

    def parameters_without_gradient(self, model):
        """Why a training step may leave some of the model's parameters without a gradient (one phrase
        per cause; empty where every step reaches every parameter). Layer dropout is not one: a skipped
        layer still runs, and torch.where gives its parameters a zero gradient (core/layer_dropout.py)."""
        n = len(self.exit_stack(model).layers)
        top = self.teacher_exit or n
        why = []
        if top < n:
            why.append(f"--teacher-exit {top} trains {self.stack_side} layers 1-{top} of {n}")
        parts = set(self.exit_part_layers(model))
        if self.exit_curriculum != "none" and parts & set(self.student_exits):
            why.append(f"--exit-curriculum {self.exit_curriculum} turns off exits with parameters of their own")
        idle = sorted(parts - set(self.student_exits))
        if idle:
            why.append(f"the exits at layers {','.join(map(str, idle))} have parameters of their own but are "
                       f"not among --student-exits")
        return why

    def kd(self, student_soft, teacher_soft):
        return kd_from_log_probs(student_soft, teacher_soft, self.kd_temperature, self.kd_direction)

    def distill(self, model, sample, extra, top_logits, target, positions):
        """(loss, logging entries) over the teacher exit and every student exit. Only the N positions
        that count (real target tokens, or sentences) are ever selected, so pads never enter a loss."""
        if self.teacher_exit and self.teacher_exit < len(self.exit_stack(model).layers):
            top_logits = self.exit_logits(model, extra, self.teacher_exit, positions)
        gold, nll, top_soft = self.gold_and_soft(top_logits, target)
        if self.teacher is not None:
            self.teacher.follow(model)
            teacher_soft = self.teacher_target(model, sample, positions)
            top_kd = self.kd(top_soft, teacher_soft)
            loss = mix_gold_and_kd(gold, top_kd, self.kd_alpha)
            kd_total = top_kd.detach()
        else:  # online: the top exit is the teacher and learns from the gold labels only
            teacher_soft = top_soft if self.kd_teacher_grad else top_soft.detach()
            loss = gold
            kd_total = gold.new_zeros(())
        log = {}
        for k, weight in self.trained_exits(model):
            logits = self.exit_logits(model, extra, k, positions)
            exit_gold, exit_nll, exit_soft = self.gold_and_soft(logits, target)
            exit_kd = self.kd(exit_soft, teacher_soft)
            loss = loss + weight * mix_gold_and_kd(exit_gold, exit_kd, self.kd_alpha)
            kd_total = kd_total + exit_kd.detach()
            log[f"exit{k}_gold_loss"] = exit_gold.data
            log[f"exit{k}_nll_loss"] = exit_nll.data
            log[f"exit{k}_kd_loss"] = exit_kd.data
            log.update(self.exit_counts(k, logits, target))
        log.update(gold_loss=gold.data, nll_loss=nll.data, kd_loss=kd_total.data)
        return loss, log

    def teacher_target(self, model, sample, positions):
        """The frozen teacher's soft output at the positions that count: read from its cache in training
        (--teacher-cache; the family's cached_target), computed by the model otherwise."""
        if model.training and getattr(self.teacher, "cached", False):
            return self.cached_target(sample, positions)
        return self.teacher_soft(self.teacher_logits(sample, positions))

    def exit_counts(self, k, logits, target) -> dict:
        """Extra summable counts for exit k (classification: its correct predictions)."""
        return {}


class CurriculumTaskMixin:
    """Mixed in front of a fairseq task: hands the criterion the update number before each training
    step (fairseq gives it only to task.train_step), for the exit curriculum."""

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if hasattr(criterion, "set_num_updates"):
            criterion.set_num_updates(update_num)
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)


def reduce_distill_terms(logging_outputs, nll_count: int, sample_size: int) -> None:
    """Each term separately, in base 2 like fairseq: gold_loss, kd_loss and per exit k its
    exit{k}_gold_loss, exit{k}_kd_loss (per sample_size) and exit{k}_nll_loss / exit{k}_ppl (per
    nll_count: target tokens, or sentences for classification)."""
    keys = sorted({k for log in logging_outputs for k in log if k.endswith("_loss")})
    for key in keys:
        if key in ("loss", "nll_loss"):
            continue
        total = sum(log.get(key, 0) for log in logging_outputs)
        per_count = key.endswith("nll_loss")
        denom = nll_count if per_count else sample_size
        metrics.log_scalar(key, total / max(denom, 1) / math.log(2), denom, round=3)
        if per_count:
            metrics.log_derived(
                f"{key[: -len('_nll_loss')]}_ppl",
                lambda meters, key=key: utils.get_perplexity(meters[key].avg),
            )


def exits_accuracy(logging_outputs, total: int, suffix: str = "_ncorrect") -> None:
    """exit{k}_accuracy (percent) from each exit's summed correct predictions."""
    for key in sorted({k for log in logging_outputs for k in log if k.endswith(suffix)}):
        correct = sum(log.get(key, 0) for log in logging_outputs)
        metrics.log_scalar(key.replace(suffix, "_accuracy"), 100.0 * correct / max(total, 1), total, round=3)
