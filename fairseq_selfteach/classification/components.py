"""The classification family's fairseq components: importing this module registers the model and its
architectures, the tasks and the criterion. The package's __init__ imports it."""
from .bert import model  # noqa: F401
from . import bert_encoder_task, criterion, glue_task, head_lr, self_distill_glue_task  # noqa: F401
