"""The project's pipelines as data (plan) and runners; imports neither torch nor fairseq."""
