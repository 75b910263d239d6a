from . import self_distill_translation  # noqa: F401
from . import bert_encoder  # noqa: F401
