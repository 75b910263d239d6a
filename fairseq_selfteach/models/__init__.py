from . import transformer_depths  # noqa: F401
