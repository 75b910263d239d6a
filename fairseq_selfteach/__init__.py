"""fairseq-selfteach: a --user-dir plugin that makes a Transformer teach a shallower copy of itself.

Importing the package registers its fairseq components and, in fairseq's command-line tools only,
installs the one-line error report (core/error_report.py). core/ (shared, registers nothing),
translation/, classification/; cli/ holds the tools."""
from .core import checkpoint_io  # noqa: F401  (first: the safe-loading allow-list)
from . import classification, translation  # noqa: F401
from .core import error_report

# fairseq's tools import the plugin through --user-dir and catch nothing: their processes get the
# one-line error report; any other importer (a notebook, a test) keeps its own excepthook and logging
error_report.install_in_fairseq_cli()
