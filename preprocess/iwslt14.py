"""Get the raw text of IWSLT14 X->En (X in de, ar, fa, es, he): download, verify, extract, strip.

Usage:
  python preprocess/iwslt14.py --src de --out DIR [--url URL | --archive PATH] [--sha256 HEX]
                               [--timeout S]

Where the archive {src}-en.tgz comes from (first match wins):
  1. --archive PATH     a local copy, read in place (nothing is copied or written next to it): the
                        pair's archive, or the whole 2014-01 release (2014-01.tgz), whose member
                        2014-01/texts/{src}/en/{src}-en.tgz is then copied to DIR/download/ and used;
  2. --url URL          the archive's full URL;
  3. $IWSLT14_MIRROR    a base URL: the archive is $IWSLT14_MIRROR/{src}-en.tgz;
  4. DEFAULT_URLS       fairseq's mirror for de, the WIT3 2014-01 release for the others (which the
                        WIT3 site no longer serves: the failure's message says so).
Downloads go to DIR/download/{src}-en.tgz (via a .part file that a rerun resumes with an HTTP Range
request). The sha256 is checked against --sha256, else KNOWN_SHA256, else the file
DIR/download/{src}-en.tgz.sha256 written by an earlier run; when none is known, the first download's
sha256 is recorded there and trusted from then on (trust on first use).

Writes DIR/extract/{src}-en/ (the archive, extracted with path and link checks) and DIR/raw/:
train.{src}, train.en, test.{src}, test.en (UTF-8, one sentence per line, not tokenised, not
lowercased) and SOURCES.txt. The stripping follows fairseq's
examples/translation/prepare-iwslt14.sh; the test split is all dev/test XML sets concatenated in
fairseq's order (dev2010, TEDX.dev2012 for de, tst2010, tst2011, tst2012); each of these sets the
archive lacks is warned about, naming the pair. A complete DIR/raw is left alone: delete it to rebuild.
"""
import argparse
import html
import os
import re
import shutil
import sys

# download.py beside this script (Python puts a script's folder first on its path; the tests use
# pytest's pythonpath = preprocess)
# Re-exported: fetch, safe_extract, PrepareError, DEFAULT_TIMEOUT were defined here (tests use them).
from download import (  # noqa: E402,F401
    DEFAULT_TIMEOUT,
    PrepareError,
    cli_main,
    fetch,
    normalise_sha256,
    verify_local,
)
from archives import archive_kind, extract_member, safe_extract  # noqa: E402,F401

from selfteach_pipeline.files import sha256_of_file

SOURCES = ("de", "ar", "fa", "es", "he")

_WIT3 = "https://wit3.fbk.eu/archive/2014-01/texts/{src}/en/{src}-en.tgz"
# pair -> archive URL. WIT3 has reorganised its site over the years: if a URL here no longer
# answers, pass --url, IWSLT14_MIRROR or --archive instead of editing this table.
DEFAULT_URLS = {
    "de-en": "http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz",
    **{f"{s}-en": _WIT3.format(src=s) for s in SOURCES if s != "de"},
}

# pair -> sha256 of the archive. Only hashes someone on the project has verified belong here;
# None means "unknown", and the first download is then recorded and trusted (see fetch).
KNOWN_SHA256 = {f"{s}-en": None for s in SOURCES}

# The end of the message when the archive cannot be downloaded ({name}: the archive's file name).
FETCH_HINT = (
    "If you already have the archive, pass it with:  --archive /path/to/{name}\n"
    "or download it from a mirror with:  --url URL_OF_{name}  "
    "or  IWSLT14_MIRROR=BASE_URL (the archive is then BASE_URL/{name})"
)
# WIT3 no longer serves the 2014-01 release at the default URLs of the pairs other than de-en.
GONE_HINT = (
    "The default host of this pair, wit3.fbk.eu, no longer serves the IWSLT 2014-01 release (it answers "
    "404: fairseq issues #2984, #4361). With the whole release or the pair's archive at hand, pass it:\n"
    "  --archive /path/to/2014-01.tgz  (the release: 2014-01/texts/{src}/en/{name} inside is used)\n"
    "  --archive /path/to/{name}\n"
    "or download it from a mirror with:  --url URL_OF_{name}  or  IWSLT14_MIRROR=BASE_URL"
)
# The dev/test sets fairseq's recipe concatenates into the test split, in its order (a pair's archive
# may hold fewer: each missing one is said, naming the pair)
EXPECTED_SETS = ("TED.dev2010", "TEDX.dev2012", "TED.tst2010", "TED.tst2011", "TED.tst2012")


def fetch_hint(src, url):
    """What ends the message when the archive cannot be downloaded from url."""
    if url == DEFAULT_URLS.get(f"{src}-en") and "wit3.fbk.eu" in url:
        return GONE_HINT.replace("{src}", src)
    return FETCH_HINT


# Train lines dropped whole. fairseq drops <url>, <talkid> and <keywords> lines only; we also drop
# <speaker>, <reviewer ...> and <translator ...> lines, which fairseq's script leaves in the
# training text although they are metadata, not talk text.
_TRAIN_DROP = ("<url>", "<talkid>", "<keywords>", "<speaker>", "<reviewer", "<translator")
# Tags removed from train lines whose text is kept (the talk's title and description), as in
# fairseq's script.
_TRAIN_STRIP = ("<title>", "</title>", "<description>", "</description>")

_SEG = re.compile(r"<seg\b[^>]*>(.*?)</seg>", re.DOTALL)
_XML_NAME = re.compile(r"^IWSLT\d+\.(?P<corpus>[^.]+)\.(?P<set>[a-z]+)(?P<year>\d+)\.")
_RAW_FILES = ("train.{src}", "train.en", "test.{src}", "test.en", "SOURCES.txt")


# ---------------------------------------------------------------- raw text


def _read_utf8(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        raise PrepareError(f"missing file: {path}") from None
    except UnicodeDecodeError as e:
        raise PrepareError(f"{path} is not UTF-8 ({e})") from None


def _one_line(text):
    # Whatever a later tool might take for a line break (\r, \u2028, ...) becomes a space, so that
    # the output stays one sentence per line.
    return " ".join(text.splitlines()).strip()


def _train_lines(path):
    text = _read_utf8(path)
    # Lines are split on \n only, as grep/sed do in fairseq's script.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = []
    for line in lines:
        if any(tag in line for tag in _TRAIN_DROP):
            continue
        for tag in _TRAIN_STRIP:
            line = line.replace(tag, "")
        out.append(_one_line(line))
    return out


def _segments(path):
    out = []
    for m in _SEG.finditer(_read_utf8(path)):
        # Unescape first, so that &#8217; is replaced like a literal ’ (fairseq's sed s/’/'/g).
        out.append(_one_line(html.unescape(m.group(1)).replace("\u2019", "'")))
    return out


def _xml_sort_key(name):
    # dev before tst, then year, then corpus: for de this is fairseq's order
    # dev2010, TEDX.dev2012, tst2010, tst2011, tst2012 (examples/translation/prepare-iwslt14.sh).
    m = _XML_NAME.match(name)
    if not m:
        return (9, 0, "", name)
    set_rank = {"dev": 0, "tst": 1}.get(m.group("set"), 2)
    return (set_rank, int(m.group("year")), m.group("corpus"), name)


def _xml_pairs(pair_dir, src):
    """[(src xml path, en xml path)] of the dev/test sets, in concatenation order."""
    pair = f"{src}-en"
    names = os.listdir(pair_dir)
    src_suffix, en_suffix = f".{pair}.{src}.xml", f".{pair}.en.xml"
    src_files = sorted((n for n in names if n.startswith("IWSLT14.") and n.endswith(src_suffix)),
                       key=_xml_sort_key)
    en_files = {n for n in names if n.startswith("IWSLT14.") and n.endswith(en_suffix)}
    if not src_files:
        raise PrepareError(f"no IWSLT14.*{src_suffix} dev/test files in {pair_dir}")
    pairs = []
    for n in src_files:
        partner = n[: -len(src_suffix)] + en_suffix
        if partner not in en_files:
            raise PrepareError(f"{os.path.join(pair_dir, n)} has no English partner {partner}")
        en_files.discard(partner)
        pairs.append((os.path.join(pair_dir, n), os.path.join(pair_dir, partner)))
    if en_files:
        orphan = sorted(en_files)[0]
        raise PrepareError(
            f"{os.path.join(pair_dir, orphan)} has no {src} partner "
            f"{orphan[: -len(en_suffix)] + src_suffix}"
        )
    return pairs


def _raw_names(src):
    return [n.format(src=src) for n in _RAW_FILES]


def raw_complete(raw_dir, src):
    """True if raw_dir holds a finished output.

    raw_dir only appears by renaming a complete raw.tmp, so a raw_dir with files missing was altered
    by hand: that is an error (PrepareError), not something to overwrite.
    """
    if not os.path.isdir(raw_dir):
        return False
    missing = [n for n in _raw_names(src) if not os.path.isfile(os.path.join(raw_dir, n))]
    if missing:
        raise PrepareError(f"{raw_dir} exists but lacks {', '.join(missing)}: delete it and rerun")
    return True


def _count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def _write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def extract_raw(extract_dir, src, out_dir, archive=None, archive_sha256=None):
    """Write out_dir/{train,test}.{src,en} and SOURCES.txt from an extracted archive.

    Returns {'train': pairs, 'test': pairs, 'skipped': bool}; a complete out_dir is left as it is.
    `archive` and `archive_sha256` are only recorded in SOURCES.txt.
    """
    pair = f"{src}-en"
    out_dir = os.path.abspath(out_dir)
    if raw_complete(out_dir, src):
        return {"train": _count_lines(os.path.join(out_dir, "train.en")),
                "test": _count_lines(os.path.join(out_dir, "test.en")), "skipped": True}
    # The release has a top folder {src}-en/; accept the files directly in extract_dir too.
    pair_dir = os.path.join(extract_dir, pair)
    if not os.path.isdir(pair_dir):
        if not os.path.isfile(os.path.join(extract_dir, f"train.tags.{pair}.{src}")):
            found = sorted(os.listdir(extract_dir)) if os.path.isdir(extract_dir) else []
            raise PrepareError(f"no {pair}/ folder in {extract_dir} (found: {found[:10]})")
        pair_dir = extract_dir

    train_paths = {
        lang: os.path.join(pair_dir, f"train.tags.{pair}.{lang}") for lang in (src, "en")
    }
    train = {lang: _train_lines(p) for lang, p in train_paths.items()}
    if len(train[src]) != len(train["en"]):
        raise PrepareError(
            f"after stripping metadata, {train_paths[src]} has {len(train[src])} lines but "
            f"{train_paths['en']} has {len(train['en'])}"
        )

    test = {src: [], "en": []}
    sources = []
    xml_pairs = _xml_pairs(pair_dir, src)
    present = {".".join(os.path.basename(x).split(".")[1:3]) for x, _ in xml_pairs}
    missing = [name for name in EXPECTED_SETS if name not in present]
    for name in missing:
        print(f"warning: IWSLT14 {pair}: {pair_dir} has no {name} set (IWSLT14.{name}.{pair}.{{{src},en}}.xml): "
              f"the test split is the sets it has, not all of fairseq's {', '.join(EXPECTED_SETS)}", file=sys.stderr)
    for src_xml, en_xml in xml_pairs:
        segs_src, segs_en = _segments(src_xml), _segments(en_xml)
        if len(segs_src) != len(segs_en):
            raise PrepareError(
                f"segment counts differ: {src_xml} has {len(segs_src)} <seg>, "
                f"{en_xml} has {len(segs_en)}"
            )
        if not segs_src:
            raise PrepareError(f"no <seg> elements in {src_xml}")
        test[src] += segs_src
        test["en"] += segs_en
        sources.append((os.path.basename(src_xml)[: -len(f".{src}.xml")], len(segs_src)))

    tmp = out_dir + ".tmp"
    if os.path.lexists(tmp):
        shutil.rmtree(tmp)  # left by an interrupted run
    os.makedirs(tmp)
    for lang in (src, "en"):
        _write_lines(os.path.join(tmp, f"train.{lang}"), train[lang])
        _write_lines(os.path.join(tmp, f"test.{lang}"), test[lang])
    info = [f"IWSLT14 {pair} raw text, written by preprocess/iwslt14.py "
            "(not tokenised, not lowercased)"]
    if archive:
        info.append(f"archive: {archive}"
                    + (f"  sha256 {archive_sha256}" if archive_sha256 else ""))
    info.append(f"train: train.tags.{pair}.{{{src},en}} minus metadata lines: "
                f"{len(train['en'])} lines")
    info.append("test: the <seg> texts of these files ({src,en}.xml), concatenated in this order:")
    info += [f"  {name}.{{{src},en}}.xml\t{n} segments" for name, n in sources]
    info += [f"  missing: IWSLT14.{name}.{pair}.{{{src},en}}.xml (not in the archive)" for name in missing]
    info.append(f"test total: {len(test['en'])} segments")
    _write_lines(os.path.join(tmp, "SOURCES.txt"), info)
    os.rename(tmp, out_dir)
    return {"train": len(train["en"]), "test": len(test["en"]), "skipped": False}


# ---------------------------------------------------------------- command line


def resolve_url(src, url=None, environ=None):
    """--url, else $IWSLT14_MIRROR/{src}-en.tgz, else DEFAULT_URLS."""
    environ = os.environ if environ is None else environ
    if url:
        return url
    mirror = environ.get("IWSLT14_MIRROR", "").strip()
    if mirror:
        return f"{mirror.rstrip('/')}/{src}-en.tgz"
    return DEFAULT_URLS[f"{src}-en"]


def _run(a):
    pair = f"{a.src}-en"
    out = os.path.abspath(a.out)
    raw_dir = os.path.join(out, "raw")
    if raw_complete(raw_dir, a.src):
        print(f"{raw_dir} is already complete; nothing to do (delete it to rebuild)")
        return 0
    expected = normalise_sha256(a.sha256) if a.sha256 else KNOWN_SHA256.get(pair)
    if a.archive:
        archive = os.path.abspath(a.archive)
        if a.url:
            print("--archive given: ignoring --url")
        digest = verify_local(archive, expected)  # never deletes the user's own file
        # the whole IWSLT 2014-01 release (2014-01/texts/{src}/en/{src}-en.tgz inside): its pair's archive
        inner = os.path.join(out, "download", f"{pair}.tgz")
        member = (extract_member(archive, f"texts/{a.src}/en/{pair}.tgz", inner)
                  if archive_kind(archive) != "zip" else None)
        if member is not None:
            print(f"--archive {archive} is the IWSLT release: using its {member} (copied to {inner})")
            archive, digest = inner, sha256_of_file(inner)
    else:
        url = resolve_url(a.src, a.url)
        archive = fetch(url, os.path.join(out, "download", f"{pair}.tgz"), sha256=expected,
                        timeout=a.timeout, hint=fetch_hint(a.src, url))
        digest = sha256_of_file(archive)
    extract_dir = safe_extract(archive, os.path.join(out, "extract"))
    r = extract_raw(extract_dir, a.src, raw_dir, archive=archive, archive_sha256=digest)
    print(f"IWSLT14 {pair}: {r['train']} train pairs, {r['test']} test pairs -> {raw_dir}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Archive source precedence: "
               "--archive > --url > $IWSLT14_MIRROR > the built-in default.",
    )
    p.add_argument("--src", required=True, choices=SOURCES, help="source language (target is en)")
    p.add_argument("--out", required=True, help="output folder (download/, extract/, raw/ go here)")
    p.add_argument("--archive", help="a local {src}-en.tgz to use instead of downloading")
    p.add_argument("--url", help="download the archive from this URL")
    p.add_argument("--sha256", help="expected sha256 of the archive (overrides the known one)")
    return cli_main(p, _run, argv)  # adds --timeout; errors are printed plainly, exit status 2


if __name__ == "__main__":
    sys.exit(main())
