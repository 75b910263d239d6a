"""fairseq-selfteach: a --user-dir plugin that makes a Transformer teach a shallower copy of itself.

Importing the package registers its fairseq components and nothing else:
core/ (shared, registers nothing), translation/, classification/; cli/ holds the tools."""
from .core import checkpoint_io  # noqa: F401  (first: the safe-loading allow-list)
from . import classification, translation  # noqa: F401
