"""Spanish→English Bible verses from Debian's SWORD packages: the offline stand-in for IWSLT14 es-en.

No IWSLT archive can be downloaded on the project's machines, so the demo and the end-to-end tests run
the same pipeline on the Reina-Valera 1909 (Spanish) and King James (English) Bibles, which Debian
ships as `sword-text-sparv` and `sword-text-kjv` (both public domain). Both use KJV versification, so
the i-th verse entry of one module lines up with the i-th entry of the other.

Writes, like preprocess/iwslt14.py, raw (untokenised) text:
  OUT/raw/train.{es,en}   every verse pair not held out
  OUT/raw/test.{es,en}    every --test-every-th verse pair (counted over the non-empty pairs)
  OUT/raw/SOURCES.txt     the packages, their sha256 and the counts
The shared step (preprocess/prepare_translation.py) then tokenises, cleans, takes valid as a fixed
slice of train, learns BPE and binarises, exactly as for IWSLT14.

    python preprocess/bible.py --out DIR [--debs DIR_WITH_DEBS] [--test-every 50] [--max-words N]
"""
import argparse
import glob
import html
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

from download import PrepareError, cli_main  # noqa: E402  (preprocess/download.py, beside this script)

from selfteach_pipeline.files import sha256_of_file

PACKAGES = {"en": ("sword-text-kjv", "engKJV2006eb"), "es": ("sword-text-sparv", "spaRV1909eb")}


def fetch_debs(dest):
    """apt-get download the two packages into dest (no install, no root needed)."""
    os.makedirs(dest, exist_ok=True)
    names = [pkg for pkg, _ in PACKAGES.values()]
    missing = [n for n in names if not glob.glob(os.path.join(dest, f"{n}_*.deb"))]
    if not missing:
        return
    tmp = tempfile.mkdtemp(dir=dest, prefix=".apt.")
    try:
        p = subprocess.run(["apt-get", "download"] + missing, cwd=tmp, capture_output=True, text=True)
        if p.returncode != 0:
            raise PrepareError(
                f"`apt-get download {' '.join(missing)}` failed (exit {p.returncode}):\n{p.stderr.strip()}\n"
                "Without a Debian package mirror, download the .deb files elsewhere and pass --debs DIR.")
        for f in os.listdir(tmp):  # a finished .deb is moved into place only after apt-get succeeded
            os.replace(os.path.join(tmp, f), os.path.join(dest, f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unpack(debs_dir, dest):
    """dpkg -x each package into dest; return {lang: module dir}."""
    mods = {}
    for lang, (pkg, module) in PACKAGES.items():
        found = sorted(glob.glob(os.path.join(debs_dir, f"{pkg}_*.deb")))
        if not found:
            raise PrepareError(f"no {pkg}_*.deb in {debs_dir}")
        subprocess.run(["dpkg", "-x", found[-1], dest], check=True)
        mods[lang] = (found[-1], os.path.join(dest, "usr/share/sword/modules/texts/ztext", module))
    return mods


def read_ztext(module_dir):
    """Yield the raw OSIS text of every verse entry (OT then NT) of a SWORD zText module.

    .bzv: 10-byte records (uint32 block, uint32 offset in block, uint16 size) per entry;
    .bzs: 12-byte records (uint32 offset in .bzz, uint32 compressed size, uint32 size) per block;
    .bzz: zlib-compressed blocks of UTF-8 text.
    """
    for testament in ("ot", "nt"):
        paths = {ext: os.path.join(module_dir, f"{testament}.{ext}") for ext in ("bzv", "bzs", "bzz")}
        for path in paths.values():
            if not os.path.exists(path):
                raise PrepareError(f"missing SWORD file {path}")
        bzv, bzs, bzz = (open(paths[e], "rb").read() for e in ("bzv", "bzs", "bzz"))
        if len(bzv) % 10 or len(bzs) % 12:
            raise PrepareError(f"{paths['bzv']} / {paths['bzs']}: size is not a whole number of records")
        blocks = {}
        for i in range(len(bzv) // 10):
            block, offset, size = struct.unpack_from("<IIH", bzv, i * 10)
            if size == 0:
                yield ""
                continue
            if block not in blocks:
                if (block + 1) * 12 > len(bzs):
                    raise PrepareError(f"{paths['bzv']} entry {i} points at block {block}, not in {paths['bzs']}")
                start, csize, _ = struct.unpack_from("<III", bzs, block * 12)
                try:
                    blocks = {block: zlib.decompress(bzz[start:start + csize])}  # entries come in block order
                except zlib.error as e:
                    raise PrepareError(f"{paths['bzz']}: block {block} is not a zlib stream ({e})")
            yield blocks[block][offset:offset + size].decode("utf-8")


_DROP = re.compile(r"<(note|title)\b[^>]*>.*?</\1>", re.S)  # footnotes and headings are not verse text
_TAG = re.compile(r"<[^>]+>")


def clean_osis(text):
    # tags are removed without leaving a space: the modules put the spaces between words themselves
    # (a space here would split "<w>word</w>," into "word ,")
    text = _DROP.sub("", text)
    text = _TAG.sub("", text)
    # ¶ is the KJV's paragraph mark, not text
    return " ".join(html.unescape(text).replace("¶", " ").split())


def verse_pairs(mods):
    es = [clean_osis(t) for t in read_ztext(mods["es"])]
    en = [clean_osis(t) for t in read_ztext(mods["en"])]
    if len(es) != len(en):
        raise PrepareError(f"the modules have {len(es)} and {len(en)} entries: versifications differ")
    return [(s, t) for s, t in zip(es, en) if s and t]


def _run(args):
    if args.test_every < 2:
        raise PrepareError(f"--test-every must be at least 2, got {args.test_every}")
    raw = os.path.join(args.out, "raw")
    if os.path.exists(os.path.join(raw, "SOURCES.txt")):
        print(f"bible: {raw} is complete, nothing to do")
        return 0
    debs = args.debs or os.path.join(args.out, "download")
    if not args.debs:
        fetch_debs(debs)
    os.makedirs(args.out, exist_ok=True)
    tmp = raw + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with tempfile.TemporaryDirectory(dir=args.out, prefix=".unpack.") as unpacked:
        mods = unpack(debs, unpacked)
        pairs = verse_pairs({lang: d for lang, (_, d) in mods.items()})
        debs_used = {lang: deb for lang, (deb, _) in mods.items()}
    if args.max_words:
        pairs = [p for p in pairs if max(len(p[0].split()), len(p[1].split())) <= args.max_words]
    splits = {"train": [], "test": []}
    for i, pair in enumerate(pairs, 1):
        splits["test" if i % args.test_every == 0 else "train"].append(pair)
    for split, rows in splits.items():
        for side, lang in enumerate(("es", "en")):
            with open(os.path.join(tmp, f"{split}.{lang}"), "w", encoding="utf-8") as f:
                f.writelines(r[side] + "\n" for r in rows)
    with open(os.path.join(tmp, "SOURCES.txt"), "w") as f:
        for lang, deb in debs_used.items():
            f.write(f"{lang}\t{os.path.basename(deb)}\tsha256 {sha256_of_file(deb)}\n")
        f.write(f"verse pairs (both sides non-empty"
                + (f", at most {args.max_words} words each" if args.max_words else "") + f")\t{len(pairs)}\n")
        f.write(f"test = every {args.test_every}th pair\t{len(splits['test'])}\n")
        f.write(f"train = the rest\t{len(splits['train'])}\n")
    shutil.rmtree(raw, ignore_errors=True)
    os.replace(tmp, raw)
    print(f"bible: {len(splits['train'])} train and {len(splits['test'])} test verse pairs in {raw}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (raw/ is written inside it)")
    ap.add_argument("--debs", help="folder holding sword-text-kjv_*.deb and sword-text-sparv_*.deb "
                                   "(default: OUT/download, filled with apt-get download)")
    ap.add_argument("--max-words", type=int, default=0,
                    help="keep only verse pairs with at most N words on each side, before the split "
                         "(0 = all; a slice of shorter verses makes a quick demo quicker)")
    ap.add_argument("--test-every", type=int, default=50,
                    help="hold out every N-th non-empty verse pair as test (default 50: about 620 verses)")
    return cli_main(ap, _run, argv, timeout=False)  # errors are printed plainly, exit status 2


if __name__ == "__main__":
    sys.exit(main())
