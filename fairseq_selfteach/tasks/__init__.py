from . import self_distill_translation  # noqa: F401
