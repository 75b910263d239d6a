"""Write a small synthetic parallel corpus for tests and the quick example.

The "language pair" is a fixed word-for-word lexicon plus a reordering (the target is the source
reversed), so a small Transformer learns it in a few hundred CPU updates and BLEU is meaningful:
a model that has not learned the lexicon or the reordering scores low.

Usage: python preprocess/make_toy_corpus.py OUT_DIR [--train N] [--valid N] [--test N] [--seed S]
Writes OUT_DIR/{train,valid,test}.{src,tgt}.
"""
import argparse
import os
import random

from selfteach_pipeline.files import atomic_write_text


def make_pairs(n, rng, vocab_size, min_len, max_len):
    lexicon = list(range(vocab_size))
    random.Random(1234).shuffle(lexicon)  # the same lexicon whatever the seed
    pairs = []
    for _ in range(n):
        words = [rng.randrange(vocab_size) for _ in range(rng.randint(min_len, max_len))]
        src = " ".join(f"s{w}" for w in words)
        tgt = " ".join(f"t{lexicon[w]}" for w in reversed(words))
        pairs.append((src, tgt))
    return pairs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--valid", type=int, default=200)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--vocab-size", type=int, default=40)
    p.add_argument("--min-len", type=int, default=3)
    p.add_argument("--max-len", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    rng = random.Random(a.seed)
    for split, n in (("train", a.train), ("valid", a.valid), ("test", a.test)):
        pairs = make_pairs(n, rng, a.vocab_size, a.min_len, a.max_len)
        for side, idx in (("src", 0), ("tgt", 1)):
            atomic_write_text(
                os.path.join(a.out_dir, f"{split}.{side}"), "".join(x[idx] + "\n" for x in pairs)
            )


if __name__ == "__main__":
    main()
