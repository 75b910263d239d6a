from . import self_distill_translation  # noqa: F401
from . import bert_encoder  # noqa: F401
from . import glue  # noqa: F401
from . import self_distill_glue  # noqa: F401
