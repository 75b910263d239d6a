"""fairseq-selfteach: a --user-dir plugin that makes a Transformer teach a shallower copy of itself."""
from . import checkpoints  # noqa: F401  (first: allow-lists what fairseq checkpoints need, safe mode kept)
from . import criterions, models, tasks  # noqa: F401
