"""`--task glue`: fine-tune a BERT (selfteach_bert) on a GLUE task binarised by
preprocess/glue_binarize.py, with fairseq's own `--criterion sentence_prediction` (or self_distill).

    fairseq-train BIN --user-dir fairseq_selfteach --task glue \
        --arch bert_from_config --bert-config CONVERTED/config.json \
        --finetune-from-model CONVERTED/model.pt --criterion sentence_prediction \
        --batch-size 32 --lr 2e-5 ...

DATA (BIN) holds dict.txt (the BertDictionary: index = WordPiece id), meta.json (task, labels,
regression, max_len) and SPLIT.{tokens,segments,labels}.{bin,idx}. Everything the task needs comes
from meta.json: the GLUE task, the number of classes (1 output for STS-B) and whether it is a
regression; options that contradict it are refused. Valid subsets: `valid`, and for MNLI also
`valid_mismatched` (`--valid-subset valid,valid_mismatched`).

A sample (a batch) is exactly:
    {"id": LongTensor B, "nsentences": B, "ntokens": non-pad tokens,
     "net_input": {"src_tokens": LongTensor B x T ([CLS] first, right-padded with the dict's pad),
                   "segment_labels": LongTensor B x T (0 for [CLS] a [SEP], 1 for b [SEP]; 0 on
                   padding), "src_lengths": LongTensor B},
     "target": LongTensor B (class index) or FloatTensor B (STS-B score)}

Model: build_model builds the arch and registers the classification head `--classification-head-name`
(default sentence_classification_head) with num_classes outputs. A converted BERT
(convert_hf_bert's model.pt, task bert_encoder, no head) loads with `--finetune-from-model` (or
`--restore-file`): its encoder weights load and the head keeps its fresh initialisation; a checkpoint
fine-tuned by this task brings its head along.

Every example of a valid subset is scored: batches are never dropped (the task builds batches with
required_batch_size_multiple 1 whatever --required-batch-size-multiple says, since fairseq drops a
last partial batch that is not a multiple of it), and the log shows the count (`glue_n`).

Metrics (classification/metrics.py; the metrics themselves are selfteach_pipeline/glue_metrics.py's):
each valid batch's predictions are scored into summable confusion counts (classification) or
(prediction, target) lists (STS-B), and the validation log shows glue_accuracy / glue_f1 / glue_mcc /
glue_pearson / glue_spearman as the task defines and
`glue_score`, the task's own number (MCC for CoLA, F1 for MRPC/QQP, mean of Pearson and Spearman for
STS-B, accuracy otherwise), in percent. To keep the best checkpoint by it, pass
`--best-checkpoint-metric glue_score --maximize-best-checkpoint-metric`, as fairseq's --eval-bleu
asks; a glue_* metric that would be minimised is refused.
Regression validation logs every score, so fairseq gathers (rather than sums) the logging outputs.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from fairseq.data import (
    BaseWrapperDataset,
    Dictionary,
    IdDataset,
    NestedDictionaryDataset,
    NumelDataset,
    NumSamplesDataset,
    RightPadDataset,
)
from fairseq.data.indexed_dataset import MMapIndexedDataset
from fairseq.tasks import register_task
from omegaconf import II, MISSING, open_dict

from fairseq_selfteach.classification import metrics as glue_metrics
from fairseq_selfteach.classification.bert.dictionary import BertDictionary
from fairseq_selfteach.classification.bert_encoder_task import BertEncoderTask
from fairseq_selfteach.classification.head_lr import mark_head_parameters
from fairseq_selfteach.core.distill import CurriculumTaskMixin
from fairseq_selfteach.core.exact_resume import ExactResumeTaskMixin, ResumeConfig
from selfteach_pipeline.glue_format import GlueDataError, read_meta

logger = logging.getLogger(__name__)

DEFAULT_HEAD = "sentence_classification_head"
@dataclass
class GlueConfig(ResumeConfig):
    data: str = field(
        default=MISSING,
        metadata={"help": "folder written by preprocess/glue_binarize.py (dict.txt, meta.json, SPLIT.*)"},
    )
    glue_task: Optional[str] = field(
        default=None,
        metadata={
            "help": "GLUE task (CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE, WNLI, AX); default: "
            "meta.json's; a different value is refused"
        },
    )
    num_classes: int = field(
        default=-1,
        metadata={"help": "outputs of the classification head; default (-1): from meta.json (1 for STS-B)"},
    )
    regression_target: bool = field(
        default=False,
        metadata={
            "help": "the target is a float score (STS-B): MSE loss, one output; set automatically "
            "from meta.json (shared with the sentence_prediction criterion's option)"
        },
    )
    max_positions: int = field(
        default=512,
        metadata={"help": "longest input the task accepts, in tokens; must cover meta.json's max_len"},
    )
    classification_head_name: str = field(
        default=DEFAULT_HEAD,
        metadata={"help": "name of the classification head the task registers (and the criterion uses)"},
    )
    # read, never set, from the checkpoint options: a GLUE metric must be maximised
    best_checkpoint_metric: Optional[str] = II("checkpoint.best_checkpoint_metric")
    maximize_best_checkpoint_metric: bool = II("checkpoint.maximize_best_checkpoint_metric")


class _GlueLabelDataset(BaseWrapperDataset):
    """One label per example from SPLIT.labels: a class index (LongTensor) or, for regression, the
    float64 stored as its bit pattern, returned as float32; collated to a B-vector."""

    def __init__(self, dataset, regression: bool):
        super().__init__(dataset)
        self.regression = regression

    def __getitem__(self, index):
        item = self.dataset[index]
        if self.regression:
            return item.view(torch.float64)[0].float()
        return item[0]

    def collater(self, samples):
        return torch.stack(samples) if samples else torch.empty(0)


class _OrderedDataset(BaseWrapperDataset):
    """Batching order, by length (batches of similar lengths need little padding). For training, equal lengths are shuffled anew every
    epoch (fairseq calls ordered_indices under numpy_seed(seed + epoch)), so batches differ from
    epoch to epoch; fairseq then shuffles the order of the batches. Nothing is filtered."""

    def __init__(self, dataset, sizes: np.ndarray, shuffle: bool):
        super().__init__(dataset)
        self._sizes = sizes
        self.shuffle = shuffle

    def ordered_indices(self):
        if self.shuffle:
            return np.lexsort((np.random.permutation(len(self.dataset)), self._sizes))
        return np.argsort(self._sizes, kind="mergesort")

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return not self.shuffle


@register_task("glue", dataclass=GlueConfig)
class GlueTask(ExactResumeTaskMixin, CurriculumTaskMixin, BertEncoderTask):
    def __init__(self, cfg: GlueConfig, dictionary: BertDictionary, meta: dict):
        super().__init__(cfg, dictionary)
        self.meta = meta
        self.glue_task = meta["task"]
        self.regression = bool(meta["regression"])
        self.num_classes = int(cfg.num_classes)
        if self.regression:
            self._label_dictionary = None
        else:
            # for sentence_prediction's --report-* options: label i is symbol "i" after the specials
            self._label_dictionary = Dictionary()
            for i in range(self.num_classes):
                self._label_dictionary.add_symbol(str(i))
        self._warned_multiple = False

    # --- set-up ----------------------------------------------------------------------------------

    @classmethod
    def setup_task(cls, cfg: GlueConfig, **kwargs):
        meta = read_meta(cfg.data)
        task = meta["task"]
        if cfg.glue_task is not None and cfg.glue_task != task:
            raise GlueDataError(f"--glue-task {cfg.glue_task} but {cfg.data}/meta.json is {task}")
        if cfg.num_classes not in (-1, meta["num_classes"]):
            raise GlueDataError(
                f"--num-classes {cfg.num_classes} but {cfg.data}/meta.json has {meta['num_classes']} "
                f"({'regression' if meta['regression'] else ', '.join(meta['labels'])})"
            )
        if cfg.regression_target and not meta["regression"]:
            raise GlueDataError(f"--regression-target, but {task} in {cfg.data} is a classification task")
        if meta["max_len"] > cfg.max_positions:
            raise GlueDataError(
                f"{cfg.data} was binarised with max_len {meta['max_len']}, more than --max-positions "
                f"{cfg.max_positions}"
            )
        metric = _resolved(cfg, "best_checkpoint_metric")
        if str(metric).startswith(glue_metrics.PREFIX) and not _resolved(cfg, "maximize_best_checkpoint_metric"):
            raise GlueDataError(
                f"--best-checkpoint-metric {metric} is better when higher: add "
                f"--maximize-best-checkpoint-metric"
            )
        with open_dict(cfg):
            cfg.glue_task = task
            cfg.num_classes = meta["num_classes"]
            cfg.regression_target = bool(meta["regression"])
        dictionary = BertDictionary.load(os.path.join(cfg.data, "dict.txt"))
        if len(dictionary) != meta["vocab_size"]:
            raise GlueDataError(
                f"{cfg.data}/dict.txt has {len(dictionary)} symbols, meta.json says {meta['vocab_size']}"
            )
        logger.info(
            f"GLUE {task}: {'regression' if meta['regression'] else str(meta['num_classes']) + ' classes'}, "
            f"max_len {meta['max_len']}, splits {', '.join(meta['splits'])}"
        )
        return cls(cfg, dictionary, meta)

    def build_model(self, cfg, from_checkpoint=False):
        self._check_vocabulary(cfg)
        model = super().build_model(cfg, from_checkpoint)
        if not hasattr(model, "register_classification_head"):
            raise GlueDataError(f"--task glue needs a model with classification heads, not {cfg._name}")
        model.register_classification_head(self.cfg.classification_head_name, num_classes=self.num_classes)
        mark_head_parameters(model)  # for --optimizer adam_head_lr (classification/head_lr.py)
        return model

    def build_criterion(self, cfg, from_checkpoint=False):
        # fairseq's sentence_prediction (and its self-distilling subclass) read these: they must
        # agree with the data, and are checked rather than changed
        regression = bool(cfg.get("regression_target", self.regression))
        if regression != self.regression:
            raise GlueDataError(
                f"{self.glue_task} in {self.cfg.data} is "
                + ("a regression task: pass --regression-target" if self.regression
                   else "a classification task: drop --regression-target")
            )
        name = cfg.get("classification_head_name", None)
        if name is not None and name != self.cfg.classification_head_name:
            raise GlueDataError(
                f"the criterion uses head {name!r} but the task registers "
                f"{self.cfg.classification_head_name!r} (--classification-head-name)"
            )
        return super().build_criterion(cfg, from_checkpoint)

    def _check_vocabulary(self, model_cfg) -> None:
        """A converted checkpoint's dict.txt sits next to its config.json: it must be this data's."""
        path = getattr(model_cfg, "bert_config", None)
        other = os.path.join(os.path.dirname(path), "dict.txt") if path else None
        if not other or not os.path.isfile(other):
            return
        theirs = BertDictionary.load(other).symbols
        ours = self.dictionary.symbols
        if theirs != ours:
            first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            raise GlueDataError(
                f"{self.cfg.data}/dict.txt and {other} differ (first at index {first}): binarise with "
                f"the checkpoint's own vocab.txt"
            )

    # --- data ------------------------------------------------------------------------------------

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        if split not in self.meta["splits"]:
            raise FileNotFoundError(
                f"split {split!r} is not in {self.cfg.data} (has: {', '.join(self.meta['splits'])})"
            )
        info = self.meta["splits"][split]
        prefix = os.path.join(self.cfg.data, split)
        tokens = _load_indexed(prefix + ".tokens")
        segments = _load_indexed(prefix + ".segments")
        n = info["examples"]
        if len(tokens) != n or len(segments) != n or not np.array_equal(tokens.sizes, segments.sizes):
            raise GlueDataError(f"{prefix}.tokens/.segments do not match meta.json ({n} examples)")
        dataset = {
            "id": IdDataset(),
            "net_input": {
                "src_tokens": RightPadDataset(tokens, pad_idx=self.dictionary.pad()),
                "segment_labels": RightPadDataset(segments, pad_idx=0),
                "src_lengths": NumelDataset(tokens, reduce=False),
            },
            "nsentences": NumSamplesDataset(),
            "ntokens": NumelDataset(tokens, reduce=True),
        }
        if info.get("labelled", True):
            labels = _load_indexed(prefix + ".labels")
            if len(labels) != n:
                raise GlueDataError(f"{prefix}.labels has {len(labels)} entries, meta.json says {n}")
            dataset["target"] = _GlueLabelDataset(labels, self.regression)
        nested = NestedDictionaryDataset(dataset, sizes=[tokens.sizes])
        self.datasets[split] = _OrderedDataset(nested, tokens.sizes, shuffle=split.startswith("train"))
        logger.info(f"loaded {split}: {n} examples ({info.get('truncated', 0)} truncated when binarised)")
        return self.datasets[split]

    def get_batch_iterator(self, dataset, max_tokens=None, max_sentences=None, max_positions=None,
                           ignore_invalid_inputs=False, required_batch_size_multiple=1, **kwargs):
        # every example in some batch: fairseq drops a last partial batch that is not a multiple of
        # --required-batch-size-multiple, which would leave dev examples unscored
        if required_batch_size_multiple != 1 and not self._warned_multiple:
            logger.info(f"--required-batch-size-multiple {required_batch_size_multiple} ignored by "
                        f"--task glue: no example is dropped")
            self._warned_multiple = True
        return super().get_batch_iterator(
            dataset, max_tokens=max_tokens, max_sentences=max_sentences, max_positions=max_positions,
            ignore_invalid_inputs=ignore_invalid_inputs, required_batch_size_multiple=1, **kwargs)

    def max_positions(self):
        return self.cfg.max_positions

    @property
    def label_dictionary(self):
        return self._label_dictionary

    # --- validation and metrics --------------------------------------------------------------------

    def valid_step(self, sample, model, criterion):
        """The criterion's loss, plus this batch's GLUE counts. sentence_prediction_self_distill puts
        them in its logging output itself; for another criterion (fairseq's sentence_prediction) the
        task scores one extra evaluation forward of the full model."""
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if "target" in sample and "glue_n" not in logging_output:
            head = self.cfg.classification_head_name
            with torch.no_grad():
                logits = model(**sample["net_input"], features_only=True, classification_head_name=head)[0]
            logging_output.update(
                glue_metrics.score_batch(logits, sample["target"], self.num_classes, self.regression))
        return loss, sample_size, logging_output

    @staticmethod
    def logging_outputs_can_be_summed(criterion) -> bool:
        # a regression task's validation logs every score (for Pearson/Spearman): gathered, not summed
        return criterion.logging_outputs_can_be_summed() and not criterion.task.regression

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        glue_metrics.log_glue_metrics(logging_outputs, self.glue_task, self.num_classes, self.regression)


def _load_indexed(prefix: str):
    if not MMapIndexedDataset.exists(prefix):
        raise FileNotFoundError(f"{prefix}.bin/.idx not found")
    return MMapIndexedDataset(prefix)


def _resolved(cfg, name: str):
    """An interpolated option's value, or None where it cannot be resolved (a task rebuilt from a
    checkpoint's config for evaluation has no checkpoint options to point at)."""
    try:
        return getattr(cfg, name, None)
    except Exception:  # omegaconf's InterpolationResolutionError and kin
        return None
