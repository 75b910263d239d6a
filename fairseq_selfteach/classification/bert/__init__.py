"""BERT in fairseq: HF config reading, modules, the `selfteach_bert` model, the WordPiece dictionary."""
