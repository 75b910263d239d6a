"""Translation: `--criterion self_distill`, decoder exits, `--task self_distill_translation`, depth archs.
Registers nothing itself: components.py does."""
