from . import self_distill  # noqa: F401
