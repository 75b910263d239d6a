"""Translation: `--criterion self_distill`, decoder exits, `--task self_distill_translation`, depth archs."""
from . import archs, criterion, task  # noqa: F401
