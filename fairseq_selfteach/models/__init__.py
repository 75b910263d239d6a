from . import transformer_depths  # noqa: F401
from . import bert  # noqa: F401
