"""`--task bert_encoder`: the task a converted BERT checkpoint names, so that fairseq's own loader
(checkpoint_utils.load_model_ensemble_and_task) can rebuild it.

It holds nothing but the BERT dictionary (DATA/dict.txt, a BertDictionary: index i is WordPiece id
i), which fairseq's built-in tasks cannot load: they use Dictionary.load, which adds 4 symbols in
front and shifts every id. It has no data sets; the GLUE tasks extend it (classification/glue_task.py).
"""
import os
from dataclasses import dataclass, field

from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import MISSING

from fairseq_selfteach.classification.bert.dictionary import BertDictionary


@dataclass
class BertEncoderConfig(FairseqDataclass):
    data: str = field(
        default=MISSING,
        metadata={"help": "folder holding dict.txt, the BERT dictionary written by convert_hf_bert"},
    )


@register_task("bert_encoder", dataclass=BertEncoderConfig)
class BertEncoderTask(FairseqTask):
    def __init__(self, cfg: BertEncoderConfig, dictionary: BertDictionary):
        super().__init__(cfg)
        self.dictionary = dictionary

    @classmethod
    def setup_task(cls, cfg: BertEncoderConfig, **kwargs):
        return cls(cfg, BertDictionary.load(os.path.join(cfg.data, "dict.txt")))

    def load_dataset(self, split, **kwargs):
        raise NotImplementedError(
            "--task bert_encoder only rebuilds a converted BERT (features, exports); it has no "
            "data sets to train on"
        )

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
