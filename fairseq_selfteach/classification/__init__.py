"""Sentence classification with BERT: the model, the GLUE tasks and the classification criterion."""
from .bert import model  # noqa: F401
from . import bert_encoder_task, criterion, glue_task, head_lr, self_distill_glue_task  # noqa: F401
