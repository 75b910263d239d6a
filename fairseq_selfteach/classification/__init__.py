"""Sentence classification with BERT: the model, the GLUE tasks and the classification criterion.
Registers nothing itself (components.py does), so the GLUE formats and metrics import without the model."""
