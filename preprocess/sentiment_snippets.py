"""Movie-review sentiment snippets in GLUE's SST-2 layout: an offline stand-in for SST-2.

No dataset site can be reached from the project's machines, but PyPI's sdist of vadersentiment 3.3.2
(MIT) ships Hutto & Gilbert's ICWSM 2014 ground truth: additional_resources/hutto_ICWSM_2014.tar.gz
holds movieReviewSnippets_GroundTruth.txt, 10,605 movie-review sentences (`id TAB mean human score
in -4..+4 TAB text`, CRLF).

    python preprocess/sentiment_snippets.py --out DIR [--sdist vaderSentiment-3.3.2.tar.gz]
        [--min-abs-score 0.0] [--dev-every 10] [--max-examples N] [--seed 1] [--transfer N]

Writes DIR/SENT/train.tsv and DIR/SENT/dev.tsv (header `sentence<TAB>label`, label 1 when the mean
score is > 0, else 0), ready for `preprocess/glue_binarize.py --task SST-2 --glue-dir DIR/SENT`, and
DIR/SENT/SOURCE.json (sdist sha256, counts, what was dropped). Rules:
- examples with |score| <= --min-abs-score are dropped (with the default 0.0: the exact zeros,
  which are neither positive nor negative), and the count is reported;
- --max-examples N keeps N of the remaining examples, drawn uniformly with --seed but kept in file
  order (the file is sorted by polarity, so a prefix would be one-sided);
- dev is every --dev-every-th kept example (the 10th, 20th, ...), train the rest;
- whitespace in the text (tabs included) is folded to single spaces, so the TSV stays well-formed;
- --transfer N (with --max-examples) also writes DIR/SENT/transfer.tsv: N of the examples that
  --max-examples left out, drawn with --seed, in SST-2's test layout (`index<TAB>sentence`) and with no
  label: unlabelled text a teacher labels for its students (glue_binarize.py --transfer). A sentence
  whose text is also in train or dev, or already drawn, is skipped, and counted.
Without --sdist the sdist is fetched with `python -m pip download --no-deps --no-binary :all:
vadersentiment==3.3.2` into DIR/download (skipped when already there). The archives are read in
memory (tarfile.extractfile on the one regular-file member needed; nothing is extracted to disk),
and DIR/SENT is written under a temporary name and renamed when complete.
"""
import argparse
import glob
import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile

from download import staged_dir  # noqa: E402  (preprocess/download.py, beside this script)

from selfteach_pipeline.files import sha256_of_file

PACKAGE = "vadersentiment==3.3.2"
SDIST_GLOB = "vaderSentiment-3.3.2.tar.gz"
INNER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
SNIPPETS = "movieReviewSnippets_GroundTruth.txt"
MAX_MEMBER_BYTES = 64 << 20  # refuse a member that claims more (the real ones are a few MB)


class SnippetError(Exception):
    pass


def fetch_sdist(download_dir):
    """The sdist in download_dir, fetched with pip when missing."""
    found = sorted(glob.glob(os.path.join(download_dir, SDIST_GLOB)))
    if found:
        return found[0]
    os.makedirs(download_dir, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PACKAGE,
           "-d", download_dir, "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(glob.glob(os.path.join(download_dir, SDIST_GLOB)))
    if p.returncode != 0 or not found:
        last = ((p.stderr or p.stdout).strip().splitlines() or ["no output"])[-1]
        raise SnippetError(
            f"could not fetch {PACKAGE} from the package index (pip exited {p.returncode}: {last}); "
            f"offline, give a local copy with --sdist PATH"
        )
    return found[0]


def _read_member(tar, name_ok, what, archive):
    """Bytes of the single regular-file member whose name satisfies name_ok."""
    matches = []
    for m in tar.getmembers():
        name = m.name
        parts = name.replace("\\", "/").split("/")
        if name.startswith("/") or ".." in parts:
            continue  # never a member we want; nothing is extracted, so it cannot escape either
        if name_ok(name):
            matches.append(m)
    if len(matches) != 1:
        raise SnippetError(f"{archive}: expected one {what}, found {len(matches)}")
    m = matches[0]
    if not m.isfile():
        raise SnippetError(f"{archive}: {m.name} is not a regular file (link or device refused)")
    if m.size > MAX_MEMBER_BYTES:
        raise SnippetError(f"{archive}: {m.name} is {m.size} bytes, more than expected")
    f = tar.extractfile(m)
    data = f.read(MAX_MEMBER_BYTES + 1)
    if len(data) != m.size:
        raise SnippetError(f"{archive}: {m.name} is truncated")
    return data


def read_snippets(sdist):
    """[(line number, score, text)] from the sdist's nested archive."""
    try:
        with tarfile.open(sdist, "r:*") as outer:
            inner = _read_member(
                outer, lambda n: n.endswith("/" + INNER_ARCHIVE), INNER_ARCHIVE, sdist
            )
        with tarfile.open(fileobj=io.BytesIO(inner), mode="r:*") as tar:
            raw = _read_member(tar, lambda n: os.path.basename(n) == SNIPPETS, SNIPPETS, INNER_ARCHIVE)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SnippetError(f"cannot read {sdist}: {e}") from e
    where = f"{sdist}!{INNER_ARCHIVE}!{SNIPPETS}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SnippetError(f"{where}: not UTF-8 ({e})") from e
    rows = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != 3:
            raise SnippetError(f"{where}:{lineno}: {len(cells)} columns, expected 3 (id, score, text)")
        try:
            score = float(cells[1])
        except ValueError:
            raise SnippetError(f"{where}:{lineno}: score {cells[1]!r} is not a number") from None
        sentence = re.sub(r"\s+", " ", cells[2]).strip()
        if sentence:
            rows.append((lineno, score, sentence))
    if not rows:
        raise SnippetError(f"{where}: no snippets")
    return rows



def make(args):
    if args.dev_every < 2:
        raise SnippetError("--dev-every must be at least 2")
    if args.min_abs_score < 0:
        raise SnippetError("--min-abs-score must be >= 0")
    sdist = args.sdist or fetch_sdist(os.path.join(args.out, "download"))
    if not os.path.isfile(sdist):
        raise SnippetError(f"--sdist {sdist} not found")
    rows = read_snippets(sdist)
    kept = [(score, text) for _, score, text in rows if abs(score) > args.min_abs_score]
    dropped = len(rows) - len(kept)
    left_out = []
    if args.max_examples is not None and args.max_examples < len(kept):
        chosen = sorted(random.Random(args.seed).sample(range(len(kept)), args.max_examples))
        picked = set(chosen)
        left_out = [kept[i][1] for i in range(len(kept)) if i not in picked]
        kept = [kept[i] for i in chosen]
    if args.transfer and args.max_examples is None:
        raise SnippetError("--transfer N draws from the snippets --max-examples leaves out: give --max-examples")
    train, dev = [], []
    for i, (score, text) in enumerate(kept, start=1):
        (dev if i % args.dev_every == 0 else train).append((text, 1 if score > 0 else 0))
    if not train or not dev:
        raise SnippetError(f"{len(kept)} examples are too few for a train and a dev set")
    transfer, repeats = [], 0
    if args.transfer:
        # the corpus repeats some sentences: a repeat of train, dev or an earlier transfer text is skipped
        seen, fresh = {text for text, _ in train + dev}, []
        for text in left_out:
            if text not in seen:
                seen.add(text)
                fresh.append(text)
        repeats = len(left_out) - len(fresh)
        if args.transfer > len(fresh):
            raise SnippetError(f"--transfer {args.transfer}: only {len(fresh)} snippets are left out of train "
                               f"and dev (--max-examples {args.max_examples})")
        # a draw of its own (seed + 1), file order kept, so --transfer never changes train or dev
        transfer = [fresh[i] for i in sorted(random.Random(args.seed + 1).sample(range(len(fresh)), args.transfer))]

    with staged_dir(os.path.join(os.path.abspath(args.out), "SENT")) as tmp:
        for name, examples in (("train.tsv", train), ("dev.tsv", dev)):
            with open(os.path.join(tmp, name), "w", encoding="utf-8", newline="\n") as f:
                f.write("sentence\tlabel\n")
                f.writelines(f"{text}\t{label}\n" for text, label in examples)
        if transfer:
            with open(os.path.join(tmp, "transfer.tsv"), "w", encoding="utf-8", newline="\n") as f:
                f.write("index\tsentence\n")
                f.writelines(f"{i}\t{text}\n" for i, text in enumerate(transfer))
        source = {
            "sdist": os.path.abspath(sdist),
            "sdist_sha256": sha256_of_file(sdist),
            "member": f"{INNER_ARCHIVE}!{SNIPPETS}",
            "snippets": len(rows),
            "dropped_abs_score_le": args.min_abs_score,
            "dropped": dropped,
            "max_examples": args.max_examples,
            "seed": args.seed,
            "dev_every": args.dev_every,
            "train": {"examples": len(train), "positive": sum(y for _, y in train)},
            "dev": {"examples": len(dev), "positive": sum(y for _, y in dev)},
            "transfer": {"examples": len(transfer), "skipped_as_repeats": repeats},
        }
        with open(os.path.join(tmp, "SOURCE.json"), "w", encoding="utf-8") as f:
            json.dump(source, f, indent=1)
            f.write("\n")
    return source


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python preprocess/sentiment_snippets.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output folder: OUT/SENT/{train,dev}.tsv (and OUT/download)")
    p.add_argument("--sdist", help=f"local {SDIST_GLOB} instead of fetching {PACKAGE} with pip")
    p.add_argument(
        "--min-abs-score", type=float, default=0.0,
        help="drop snippets whose |mean score| is at most this (default 0.0: drop exact zeros)",
    )
    p.add_argument("--dev-every", type=int, default=10, help="every N-th kept example goes to dev (default 10)")
    p.add_argument("--max-examples", type=int, help="keep only N examples (uniform sample, file order kept)")
    p.add_argument("--seed", type=int, default=1, help="seed of the --max-examples sample (default 1)")
    p.add_argument("--transfer", type=int, default=0, metavar="N",
                   help="also write transfer.tsv: N unlabelled snippets that --max-examples left out (default 0)")
    args = p.parse_args(argv)
    if args.transfer < 0:
        p.error("--transfer must be >= 0")
    try:
        s = make(args)
    except SnippetError as e:
        print(f"sentiment_snippets: error: {e}", file=sys.stderr)
        return 1
    print(
        f"sentiment_snippets: {s['snippets']} snippets, {s['dropped']} dropped (|score| <= "
        f"{args.min_abs_score:g}); train {s['train']['examples']} ({s['train']['positive']} positive), "
        f"dev {s['dev']['examples']} ({s['dev']['positive']} positive)"
        + (f", transfer {s['transfer']['examples']} unlabelled ({s['transfer']['skipped_as_repeats']} "
           f"skipped as repeats of train, dev or each other)" if s["transfer"]["examples"] else "")
        + f" in "
        f"{os.path.join(os.path.abspath(args.out), 'SENT')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
