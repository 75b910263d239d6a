"""Raw parallel text → tokenised, cleaned, BPE'd, binarised data (fairseq's IWSLT14 recipe, any pair).

Input: RAW/train.{src,tgt} and RAW/test.{src,tgt}, untokenised, as written by preprocess/iwslt14.py or
preprocess/bible.py. Output folder OUT (written as OUT.tmp, renamed when complete):
  tok/      Moses-tokenised (sacremoses) and lowercased text, after cleaning (train) — what the
            "tokenised BLEU" of fairseq papers is computed on
  bpe/      the same with joint BPE applied; bpe/codes (subword-nmt) or bpe/spm.model (sentencepiece)
  bin/      fairseq-preprocess --joined-dictionary output (train, valid, test)
  ref/test.TGT  the raw (untokenised, original case) test references, for detokenised sacreBLEU
  ref/valid.TGT the raw valid references (the same lines before tokenisation), for sacreBLEU on valid
  SPLITS.txt    what each split holds and how many pairs

Splits, as in fairseq's prepare-iwslt14.sh:
  train  cleaned train pairs (1..--max-len tokens per side, length ratio ≤ --ratio) except every
         --valid-every-th one
  valid  every --valid-every-th cleaned train pair (default 23, as fairseq)
  test   every pair of RAW/test, never cleaned or dropped: every test sentence is scored

    python preprocess/prepare_translation.py --raw RAW --src de --tgt en --out OUT
"""
import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("TQDM_DISABLE", "1")  # learn_bpe's per-merge progress bar floods the logs
from sacremoses import MosesTokenizer  # noqa: E402 (tqdm reads TQDM_DISABLE when first imported)

from download import PrepareError, cli_main  # noqa: E402  (preprocess/download.py, beside this script)


def read_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except FileNotFoundError:
        raise PrepareError(f"missing input file {path}")
    except UnicodeDecodeError as e:
        raise PrepareError(f"{path}: not UTF-8 ({e})")


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def _tokenize_chunk(args):
    lang, lines = args
    mt = MosesTokenizer(lang=lang)
    # escape=True like Moses' tokenizer.perl in fairseq's recipe (&apos; &quot; …), so tokenised BLEU is
    # computed on the text the papers used; the detokeniser undoes it for sacreBLEU.
    return [mt.tokenize(line, return_str=True, escape=True).lower() for line in lines]


def tokenize(lines, lang, workers):
    """Moses-tokenise and lowercase, in `workers` processes (sacremoses is pure Python)."""
    if workers <= 1 or len(lines) < 2000:
        return _tokenize_chunk((lang, lines))
    size = (len(lines) + workers - 1) // workers
    chunks = [(lang, lines[i:i + size]) for i in range(0, len(lines), size)]
    with ProcessPoolExecutor(workers) as pool:
        return [line for part in pool.map(_tokenize_chunk, chunks) for line in part]


def clean(src, tgt, max_len, ratio, raw_tgt=None):
    """Moses clean-corpus-n.perl semantics: 1..max_len tokens per side and a token-count ratio ≤ ratio.
    Pairs (source, target), or (source, target, raw target) where raw_tgt is given."""
    kept = []
    for i, (s, t) in enumerate(zip(src, tgt)):
        ns, nt = len(s.split()), len(t.split())
        if 1 <= ns <= max_len and 1 <= nt <= max_len and ns / nt <= ratio and nt / ns <= ratio:
            kept.append((s, t) if raw_tgt is None else (s, t, raw_tgt[i]))
    return kept


def evenly_spaced(pairs, n):
    """n pairs spread over the whole corpus (deterministic), not the first n (one book, one talk)."""
    if not n or n >= len(pairs):
        return pairs
    return [pairs[i * len(pairs) // n] for i in range(n)]


def learn_and_apply_bpe(args, tok_dir, bpe_dir, splits):
    src, tgt = args.src, args.tgt
    joint = os.path.join(bpe_dir, "train.joint")
    with open(joint, "w", encoding="utf-8") as f:
        for lang in (src, tgt):
            with open(os.path.join(tok_dir, f"train.{lang}"), encoding="utf-8") as g:
                shutil.copyfileobj(g, f)
    if args.bpe == "subword_nmt":
        from subword_nmt.apply_bpe import BPE
        from subword_nmt.learn_bpe import learn_bpe

        codes = os.path.join(bpe_dir, "codes")
        with open(joint, encoding="utf-8") as inp, open(codes, "w", encoding="utf-8") as out:
            learn_bpe(inp, out, args.bpe_merges)
        with open(codes, encoding="utf-8") as f:
            bpe = BPE(f)
        encode = bpe.process_line
    else:
        import sentencepiece as spm

        prefix = os.path.join(bpe_dir, "spm")
        spm.SentencePieceTrainer.train(
            input=joint, model_prefix=prefix, vocab_size=args.bpe_merges, model_type="bpe",
            character_coverage=1.0, input_sentence_size=2_000_000, shuffle_input_sentence=True,
            minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")

        def encode(line):
            return " ".join(sp.encode(line, out_type=str))
    os.remove(joint)
    for split in splits:
        for lang in (src, tgt):
            lines = read_lines(os.path.join(tok_dir, f"{split}.{lang}"))
            write_lines(os.path.join(bpe_dir, f"{split}.{lang}"), [encode(line).strip() for line in lines])


def prepare(args):
    src, tgt = args.src, args.tgt
    train = {lang: read_lines(os.path.join(args.raw, f"train.{lang}")) for lang in (src, tgt)}
    test = {lang: read_lines(os.path.join(args.raw, f"test.{lang}")) for lang in (src, tgt)}
    for name, split in (("train", train), ("test", test)):
        if len(split[src]) != len(split[tgt]):
            raise PrepareError(f"{args.raw}/{name}.{src} has {len(split[src])} lines but "
                               f"{args.raw}/{name}.{tgt} has {len(split[tgt])}")
        if not split[src]:
            raise PrepareError(f"{args.raw}/{name}.{src} is empty")
    tmp = args.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("tok", "bpe", "ref"):
        os.makedirs(os.path.join(tmp, sub))
    tok_train = {lang: tokenize(train[lang], lang, args.workers) for lang in (src, tgt)}
    kept = clean(tok_train[src], tok_train[tgt], args.max_len, args.ratio, train[tgt])
    valid = [p for i, p in enumerate(kept, 1) if i % args.valid_every == 0]
    train_pairs = evenly_spaced([p for i, p in enumerate(kept, 1) if i % args.valid_every != 0],
                                args.max_train_pairs)
    if not train_pairs or not valid:
        raise PrepareError(f"cleaning left {len(train_pairs)} train and {len(valid)} valid pairs "
                           f"(--max-len {args.max_len}, --ratio {args.ratio})")
    tok_dir = os.path.join(tmp, "tok")
    for side, lang in enumerate((src, tgt)):
        write_lines(os.path.join(tok_dir, f"train.{lang}"), [p[side] for p in train_pairs])
        write_lines(os.path.join(tok_dir, f"valid.{lang}"), [p[side] for p in valid])
        write_lines(os.path.join(tok_dir, f"test.{lang}"), tokenize(test[lang], lang, args.workers))
    write_lines(os.path.join(tmp, "ref", f"test.{tgt}"), test[tgt])
    # the valid targets as they were before tokenisation: sacreBLEU scores on valid (the sweep)
    write_lines(os.path.join(tmp, "ref", f"valid.{tgt}"), [p[2] for p in valid])
    learn_and_apply_bpe(args, tok_dir, os.path.join(tmp, "bpe"), ("train", "valid", "test"))
    bpe = os.path.join(tmp, "bpe")
    # the fairseq-preprocess of this Python's environment, even when its bin/ is not on PATH
    exe = os.path.join(os.path.dirname(sys.executable), "fairseq-preprocess")
    cmd = [exe if os.path.exists(exe) else "fairseq-preprocess", "--source-lang", src, "--target-lang", tgt,
           "--trainpref", f"{bpe}/train", "--validpref", f"{bpe}/valid", "--testpref", f"{bpe}/test",
           "--destdir", os.path.join(tmp, "bin"), "--joined-dictionary", "--workers", str(args.workers)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise PrepareError("fairseq-preprocess not found: run inside the project's environment (.venv)")
    if p.returncode != 0 and ("No space left on device" in p.stderr or "Disk quota exceeded" in p.stderr):
        raise PrepareError(f"no space left on the device while fairseq-preprocess wrote {tmp}/bin: {args.out} "
                           f"was not made; free some space and run again")
    if p.returncode != 0:
        raise PrepareError(f"fairseq-preprocess failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    with open(os.path.join(tmp, "SPLITS.txt"), "w") as f:
        f.write(f"raw input\t{os.path.abspath(args.raw)}\n")
        f.write(f"train\t{len(train_pairs)} pairs: cleaned train (1..{args.max_len} tokens, ratio "
                f"≤ {args.ratio}) minus every {args.valid_every}th"
                + (f", {args.max_train_pairs} evenly spaced" if args.max_train_pairs else "") + "\n")
        f.write(f"valid\t{len(valid)} pairs: every {args.valid_every}th cleaned train pair\n")
        f.write(f"test\t{len(test[src])} pairs: all of raw test, not cleaned\n")
        f.write(f"dropped by cleaning\t{len(train[src]) - len(kept)} of {len(train[src])} raw train pairs\n")
        f.write(f"bpe\t{args.bpe}, {args.bpe_merges} {'merges' if args.bpe == 'subword_nmt' else 'pieces'},"
                f" joint over train.{src}+train.{tgt}; Moses tokenisation (sacremoses) and lowercasing\n")
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    return len(train_pairs), len(valid), len(test[src])


def _run(args):
    if os.path.exists(os.path.join(args.out, "SPLITS.txt")):
        print(f"prepare: {args.out} is complete, nothing to do")
        return 0
    if args.valid_every < 2:
        raise PrepareError(f"--valid-every must be at least 2, got {args.valid_every}")
    n_train, n_valid, n_test = prepare(args)
    print(f"prepare: {n_train} train, {n_valid} valid, {n_test} test pairs in {args.out}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", required=True, help="folder with train.{src,tgt} and test.{src,tgt}")
    ap.add_argument("--src", required=True, help="source language code (Moses tokeniser language)")
    ap.add_argument("--tgt", default="en", help="target language code")
    ap.add_argument("--out", required=True, help="output folder (written as OUT.tmp, then renamed)")
    ap.add_argument("--bpe", choices=("subword_nmt", "sentencepiece"), default="subword_nmt",
                    help="joint BPE implementation")
    ap.add_argument("--bpe-merges", type=int, default=10000,
                    help="subword-nmt merge operations, or the sentencepiece vocabulary size")
    ap.add_argument("--max-len", type=int, default=175, help="cleaning: most tokens per side (train)")
    ap.add_argument("--ratio", type=float, default=1.5, help="cleaning: largest token-count ratio (train)")
    ap.add_argument("--valid-every", type=int, default=23, help="valid = every N-th cleaned train pair")
    ap.add_argument("--max-train-pairs", type=int, default=0,
                    help="keep only this many train pairs, evenly spaced (0 = all; for quick demos)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for tokenising")
    return cli_main(ap, _run, argv, timeout=False)  # errors are printed plainly, exit status 2


if __name__ == "__main__":
    sys.exit(main())
