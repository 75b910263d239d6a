"""The shared self-teaching core: used by the `self_distill` criterion for translation and
classification alike. Nothing here registers anything with fairseq."""
