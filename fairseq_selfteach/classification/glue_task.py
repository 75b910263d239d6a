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

Metrics (fairseq_selfteach/glue_metrics.py): each valid batch's predictions are scored into summable
confusion counts (classification) or (prediction, target) lists (STS-B), and the validation log
shows glue_accuracy / glue_f1 / glue_mcc / glue_pearson / glue_spearman as the task defines and
`glue_score`, the task's own number (MCC for CoLA, F1 for MRPC/QQP, mean of Pearson and Spearman for
STS-B, accuracy otherwise), in percent. With this task, `--best-checkpoint-metric` defaults to
glue_score and `--maximize-best-checkpoint-metric` is on; giving `--best-checkpoint-metric`
yourself restores fairseq's rule (maximise only with --maximize-best-checkpoint-metric).
STS-B validation needs a single process (see glue_metrics).
"""
import argparse
import contextlib
import json
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
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import MISSING, OmegaConf, open_dict

from fairseq_selfteach.classification import metrics as glue_metrics
from fairseq_selfteach.classification.bert.dictionary import BertDictionary

logger = logging.getLogger(__name__)

DEFAULT_HEAD = "sentence_classification_head"
# what the bert_from_config arch reads from --bert-config (models/bert.py HF_CONFIG_FIELDS)
_SIZES_FROM_CONFIG = (
    "encoder_layers", "encoder_embed_dim", "encoder_attention_heads", "encoder_ffn_embed_dim",
    "vocab_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
)
LABEL_ENCODINGS = ("class_index_int64", "float64_bits_in_int64")


class GlueDataError(ValueError):
    """Binarised GLUE data that cannot be used, with a message naming the file."""


@dataclass
class GlueConfig(FairseqDataclass):
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
class GlueTask(FairseqTask):
    def __init__(self, cfg: GlueConfig, dictionary: BertDictionary, meta: dict):
        super().__init__(cfg)
        self.dictionary = dictionary
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
    def add_args(cls, parser):
        super().add_args(parser)
        _default_best_checkpoint_metric(parser)

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
        # the arch has written every size into cfg: the checkpoints need not find config.json again
        # (bert_from_config re-reads --bert-config whenever a checkpoint naming it is loaded)
        if getattr(cfg, "bert_config", None) and all(
            getattr(cfg, name, None) is not None for name in _SIZES_FROM_CONFIG
        ):
            with open_dict(cfg) if OmegaConf.is_config(cfg) else contextlib.nullcontext():
                cfg.bert_config = None
        return model

    def build_criterion(self, cfg, from_checkpoint=False):
        # fairseq's sentence_prediction (and self_distill) read these; keep them in line with the data
        from fairseq.criterions import CRITERION_DATACLASS_REGISTRY

        dc = CRITERION_DATACLASS_REGISTRY.get(cfg.get("_name", None))
        known = set(getattr(dc, "__dataclass_fields__", {})) | set(cfg.keys())
        with open_dict(cfg):
            if "regression_target" in known and bool(cfg.get("regression_target", False)) != self.regression:
                logger.info(f"criterion regression_target set to {self.regression} ({self.glue_task})")
                cfg.regression_target = self.regression
            name = cfg.get("classification_head_name", None)
            if name is not None and name != self.cfg.classification_head_name:
                raise GlueDataError(
                    f"the criterion uses head {name!r} but the task registers "
                    f"{self.cfg.classification_head_name!r}"
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

    def get_batch_iterator(self, dataset, *args, **kwargs):
        # every example in some batch: fairseq drops a last partial batch that is not a multiple of
        # --required-batch-size-multiple, which would leave dev examples unscored
        if len(args) >= 5:
            args = list(args)
            requested, args[4] = args[4], 1
        else:
            requested = kwargs.get("required_batch_size_multiple", 1)
            kwargs["required_batch_size_multiple"] = 1
        if requested != 1 and not self._warned_multiple:
            logger.info(f"--required-batch-size-multiple {requested} ignored by --task glue: no example is dropped")
            self._warned_multiple = True
        return super().get_batch_iterator(dataset, *args, **kwargs)

    def max_positions(self):
        return self.cfg.max_positions

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary

    @property
    def label_dictionary(self):
        return self._label_dictionary

    # --- validation and metrics --------------------------------------------------------------------

    def valid_step(self, sample, model, criterion):
        """The criterion's loss, plus this batch's predictions scored for the GLUE metrics.

        The logits are those of the criterion's own call model(..., classification_head_name=HEAD)
        (caught with a forward hook, so no second forward pass); a criterion that makes no such call,
        or several, gets one extra evaluation forward of the full model instead."""
        head = self.cfg.classification_head_name
        captured = []

        def hook(module, args, kwargs, output):
            if kwargs.get("classification_head_name") == head:
                captured.append(output[0] if isinstance(output, tuple) else output)

        handle = model.register_forward_hook(hook, with_kwargs=True)
        try:
            loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        finally:
            handle.remove()
        if "target" not in sample:
            return loss, sample_size, logging_output
        target = sample["target"]
        if len(captured) == 1 and captured[0].size(0) == target.size(0):
            logits = captured[0]
        else:
            with torch.no_grad():
                logits = model(**sample["net_input"], features_only=True, classification_head_name=head)[0]
        logging_output.update(self.score_batch(logits, target))
        return loss, sample_size, logging_output

    def score_batch(self, logits: torch.Tensor, target: torch.Tensor) -> dict:
        """Logging-output entries for one batch: glue_n, and confusion counts glue_cm_T_P
        (classification) or the glue_pred/glue_target lists (regression)."""
        out = {"glue_n": int(target.numel())}
        if self.regression:
            _single_process_only(self.glue_task)
            out["glue_pred"] = logits.detach().float().view(-1).cpu().tolist()
            out["glue_target"] = target.detach().float().view(-1).cpu().tolist()
        else:
            counts = glue_metrics.confusion_counts(logits.argmax(dim=-1), target, self.num_classes)
            for i, count in enumerate(counts):
                out[glue_metrics.cm_key(i // self.num_classes, i % self.num_classes)] = count
        return out

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        glue_metrics.log_glue_metrics(logging_outputs, self.glue_task, self.num_classes, self.regression)


def read_meta(data: str) -> dict:
    path = os.path.join(data, "meta.json")
    if not os.path.isfile(path):
        raise GlueDataError(f"{path} not found: binarise the task with preprocess/glue_binarize.py")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise GlueDataError(f"{path} is not valid JSON: {e}") from e
    for key in ("task", "regression", "num_classes", "max_len", "splits", "vocab_size", "label_encoding"):
        if key not in meta:
            raise GlueDataError(f"{path}: missing {key!r}")
    glue_metrics.metrics_of(meta["task"])  # a known task
    expected = LABEL_ENCODINGS[1] if meta["regression"] else LABEL_ENCODINGS[0]
    if meta["label_encoding"] != expected:
        raise GlueDataError(f"{path}: label_encoding {meta['label_encoding']!r}, expected {expected!r}")
    return meta


def _load_indexed(prefix: str):
    if not MMapIndexedDataset.exists(prefix):
        raise FileNotFoundError(f"{prefix}.bin/.idx not found")
    return MMapIndexedDataset(prefix)


def _single_process_only(task: str) -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if torch.distributed.get_world_size() > 1:
            raise RuntimeError(
                f"{task} validation (Pearson/Spearman over every example) runs in a single process for "
                f"now: validate with --distributed-world-size 1 or score with "
                f"python -m fairseq_selfteach.cli.evaluate_glue"
            )


class _ExplicitMetric(argparse.Action):
    """--best-checkpoint-metric given by the user: fairseq's own rule for the direction again
    (minimise unless --maximize-best-checkpoint-metric is given, before or after it)."""

    def __init__(self, inner: argparse.Action):
        self.__dict__.update(inner.__dict__)
        self._inner = inner

    def __call__(self, parser, namespace, values, option_string=None):
        self._inner(parser, namespace, values, option_string)
        if not getattr(namespace, _MAXIMIZE_GIVEN, False):
            namespace.maximize_best_checkpoint_metric = False


class _ExplicitMaximize(argparse.Action):
    def __init__(self, inner: argparse.Action):
        self.__dict__.update(inner.__dict__)
        self._inner = inner

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, _MAXIMIZE_GIVEN, True)
        self._inner(parser, namespace, values, option_string)


_MAXIMIZE_GIVEN = "glue_maximize_best_checkpoint_metric_given"


def _default_best_checkpoint_metric(parser) -> None:
    """Defaults --best-checkpoint-metric glue_score and --maximize-best-checkpoint-metric; a metric
    the user names is minimised unless they also give --maximize-best-checkpoint-metric, as in
    plain fairseq."""
    actions = parser._option_string_actions
    metric = actions.get("--best-checkpoint-metric")
    maximize = actions.get("--maximize-best-checkpoint-metric")
    if metric is None or maximize is None or isinstance(metric, _ExplicitMetric):
        return
    metric.default = glue_metrics.SCORE_NAME
    maximize.default = True
    for inner, wrapped in ((metric, _ExplicitMetric(metric)), (maximize, _ExplicitMaximize(maximize))):
        for opt in inner.option_strings:
            actions[opt] = wrapped
        for group in parser._action_groups:
            group._group_actions[:] = [wrapped if a is inner else a for a in group._group_actions]
        parser._actions[:] = [wrapped if a is inner else a for a in parser._actions]
