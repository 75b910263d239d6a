"""fairseq-selfteach: a --user-dir plugin that makes a Transformer teach a shallower copy of itself.

Importing the package registers its fairseq components (each family's components.py; the subpackages'
own __init__ files register nothing) and, in fairseq's command-line tools only, installs the one-line
error report (core/error_report.py). core/ (shared), translation/, classification/; cli/ holds the
tools. What needs neither torch nor fairseq (the file helpers, the errors, the GLUE formats and metrics,
the report) is the package selfteach_pipeline, so importing it does not import this one."""
from .core import checkpoint_io  # noqa: F401  (first: the safe-loading allow-list)
from .classification import components as classification_components  # noqa: F401
from .translation import components as translation_components  # noqa: F401
from .core import error_report

# fairseq's tools import the plugin through --user-dir and catch nothing: their processes get the
# one-line error report; any other importer (a notebook, a test) keeps its own excepthook and logging
error_report.install_in_fairseq_cli()
