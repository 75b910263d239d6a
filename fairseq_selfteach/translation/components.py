"""The translation family's fairseq components: importing this module registers the depth architectures,
the task and the criterion. The package's __init__ imports it."""
from . import archs, criterion, task  # noqa: F401
