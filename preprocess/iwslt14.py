"""Get the raw text of IWSLT14 X->En (X in de, ar, fa, es, he): download, verify, extract, strip.

Usage:
  python preprocess/iwslt14.py --src de --out DIR [--url URL | --archive PATH] [--sha256 HEX]
                               [--timeout S]

Where the archive {src}-en.tgz comes from (first match wins):
  1. --archive PATH     a local copy, read in place (nothing is copied or written next to it);
  2. --url URL          the archive's full URL;
  3. $IWSLT14_MIRROR    a base URL: the archive is $IWSLT14_MIRROR/{src}-en.tgz;
  4. DEFAULT_URLS       fairseq's mirror for de, the WIT3 2014-01 release for the others.
Downloads go to DIR/download/{src}-en.tgz (via a .part file that a rerun resumes with an HTTP Range
request). The sha256 is checked against --sha256, else KNOWN_SHA256, else the file
DIR/download/{src}-en.tgz.sha256 written by an earlier run; when none is known, the first download's
sha256 is recorded there and trusted from then on (trust on first use).

Writes DIR/extract/{src}-en/ (the archive, extracted with path and link checks) and DIR/raw/:
train.{src}, train.en, test.{src}, test.en (UTF-8, one sentence per line, not tokenised, not
lowercased) and SOURCES.txt. The stripping follows fairseq's
examples/translation/prepare-iwslt14.sh; the test split is all dev/test XML sets concatenated in
fairseq's order (dev2010, TEDX.dev2012 for de, tst2010, tst2011, tst2012). A complete DIR/raw is
left alone: delete it to rebuild.
"""
import argparse
import hashlib
import html
import http.client
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zlib

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

DEFAULT_TIMEOUT = 60.0  # seconds per socket operation, not for the whole download
_CHUNK = 1 << 20

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


class PrepareError(Exception):
    """An expected failure (offline, bad checksum, bad archive...): main prints it, no traceback."""


# ---------------------------------------------------------------- download and checksums


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _normalise_sha256(value):
    v = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", v):
        raise PrepareError(f"not a sha256 (64 hex digits): {value!r}")
    return v


def _sidecar(path):
    return path + ".sha256"


def _read_sidecar(path):
    try:
        with open(_sidecar(path), encoding="utf-8") as f:
            first = f.read().split()
    except FileNotFoundError:
        return None
    if not first:
        raise PrepareError(f"empty checksum file {_sidecar(path)}: delete it to record a new one")
    return _normalise_sha256(first[0])


def _write_sidecar(path, digest):
    side = _sidecar(path)
    with open(side + ".tmp", "w", encoding="utf-8") as f:
        # sha256sum's format, so that `sha256sum -c` can check it too
        f.write(f"{digest}  {os.path.basename(path)}\n")
    os.replace(side + ".tmp", side)


def _check_sha256(path, expected, actual, delete):
    if actual == expected:
        return
    if delete:
        os.remove(path)
    what = "deleted it; rerun to download again" if delete else "left it in place"
    raise PrepareError(
        f"checksum mismatch for {path}: expected sha256 {expected}, actual {actual} ({what})"
    )


def _trust_first_use(path, digest):
    # Only a readable archive is trusted: without Content-Length a cut download cannot be told from
    # a complete one by its size, and its hash must not become the reference.
    _check_readable_tgz(path, delete=True)
    _write_sidecar(path, digest)
    print(
        f"sha256 {digest} of {path} (no known checksum: recorded in {_sidecar(path)} "
        "and trusted from now on; trust on first use)"
    )


def _offline_message(url, err, name):
    reason = getattr(err, "reason", err)
    return (
        f"could not reach {url} ({reason}).\n"
        "This machine appears to be offline, or the server is unreachable from it.\n"
        f"If you already have the archive, pass it with:  --archive /path/to/{name}\n"
        f"or download it from a mirror with:  --url URL_OF_{name}  "
        f"or  IWSLT14_MIRROR=BASE_URL (the archive is then BASE_URL/{name})"
    )


def _parse_content_range(value):
    """(first byte, total size or None) from 'bytes FIRST-LAST/TOTAL', or None if unparsable."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not m:
        return None
    return int(m.group(1)), None if m.group(3) == "*" else int(m.group(3))


def _download(url, part, timeout):
    """Download url into part; an existing part is resumed with a Range request if possible."""
    name = os.path.basename(part)[: -len(".part")]
    # An opener per call, so that proxy settings are read from the environment as it is now.
    opener = urllib.request.build_opener()
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    for _attempt in range(2):  # the second attempt is a restart from zero
        headers = {"User-Agent": "fairseq-selfteach/iwslt14", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        print(f"downloading {url} -> {part}" + (f" (resuming at byte {offset})" if offset else ""))
        try:
            request = urllib.request.Request(url, headers=headers)
        except ValueError as e:  # e.g. no http:// in front
            raise PrepareError(f"not a usable URL: {url!r} ({e})") from None
        try:
            resp = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416 and offset:
                # The .part is not a prefix the server can continue (as long as the file or longer).
                print(f"server refused to resume at byte {offset} (HTTP 416); restarting from zero")
                os.remove(part)
                offset = 0
                continue
            raise PrepareError(
                f"{url} answered HTTP {e.code} {e.reason}. Pass a local copy with "
                f"--archive /path/to/{name}, or another source with --url or IWSLT14_MIRROR"
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            raise PrepareError(_offline_message(url, e, name)) from None
        with resp:
            length = resp.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            if offset and resp.status == 206:
                cr = _parse_content_range(resp.headers.get("Content-Range"))
                if cr is None or cr[0] != offset:
                    print(f"server sent an unexpected range ({resp.headers.get('Content-Range')}); "
                          "restarting from zero")
                    os.remove(part)
                    offset = 0
                    continue
                total = cr[1]
                if total is None and length is not None:
                    total = offset + length
                mode = "ab"
            else:
                if offset:
                    print(f"server does not support resuming (HTTP {resp.status}); "
                          "restarting from zero")
                offset, total, mode = 0, length, "wb"  # "wb" truncates the stale part
            size = offset
            with open(part, mode) as f:
                while True:
                    try:
                        chunk = resp.read(_CHUNK)
                    except (http.client.HTTPException, OSError) as e:  # timeouts are OSErrors
                        raise PrepareError(
                            f"download of {url} interrupted after {size} bytes ({e}); the partial "
                            f"file {part} is kept: rerun the same command to resume"
                        ) from None
                    if not chunk:
                        break
                    f.write(chunk)
                    size += len(chunk)
        # http.client ends a body cut short silently (read() returns b""), so the size is the check.
        if total is not None and size < total:
            raise PrepareError(
                f"incomplete download of {url}: got {size} of {total} bytes; the partial file "
                f"{part} is kept: rerun the same command to resume"
            )
        if total is not None and size > total:
            os.remove(part)
            raise PrepareError(
                f"download of {url} is larger than the server announced ({size} > {total} bytes); "
                f"deleted {part}"
            )
        print(f"downloaded {size} bytes")
        return
    raise PrepareError(f"could not download {url}: the server would not send the file from byte 0")


def fetch(url, dest, sha256=None, timeout=DEFAULT_TIMEOUT):
    """Make dest a verified copy of url and return its path.

    The download goes to dest + '.part' (resumed on a rerun) and is renamed to dest only once
    complete and verified. The expected sha256 is `sha256`, else the one recorded in
    dest + '.sha256'; with neither, the download's hash is recorded there (trust on first use).
    An existing dest is not downloaded again but is verified the same way; a download or dest
    that fails verification is deleted.
    """
    dest = os.path.abspath(dest)
    expected = _normalise_sha256(sha256) if sha256 else _read_sidecar(dest)
    if os.path.exists(dest):
        actual = sha256_file(dest)
        if expected:
            _check_sha256(dest, expected, actual, delete=True)
            print(f"{dest} already downloaded; sha256 verified")
        else:
            _trust_first_use(dest, actual)
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    part = dest + ".part"
    _download(url, part, timeout)
    actual = sha256_file(part)
    if expected:
        # The message names dest (what the user asked for); the bad bytes are in part.
        if actual != expected:
            os.remove(part)
            raise PrepareError(
                f"checksum mismatch for {dest} (downloaded from {url}): "
                f"expected sha256 {expected}, actual {actual} (deleted the download)"
            )
        os.replace(part, dest)
        print(f"sha256 verified: {actual}")
    else:
        os.replace(part, dest)
        _trust_first_use(dest, actual)
    return dest


# ---------------------------------------------------------------- extraction


def _open_tgz(archive):
    try:
        return tarfile.open(archive, "r:gz")
    except FileNotFoundError:
        raise PrepareError(f"archive not found: {archive}") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise PrepareError(f"{archive} is not a gzip-compressed tar archive ({e})") from None


def _members(tf, archive):
    try:
        return tf.getmembers()  # reads the whole archive, so a truncated one fails here
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise PrepareError(
            f"{archive} is not a readable gzip-compressed tar archive ({e})"
        ) from None


def _check_readable_tgz(archive, delete=False):
    try:
        with _open_tgz(archive) as tf:
            _members(tf, archive)
    except PrepareError:
        if delete:
            os.remove(archive)
            raise PrepareError(
                f"{archive} is not a readable gzip-compressed tar archive (deleted it)"
            ) from None
        raise


def _unsafe_reason(member, dest_real):
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in parts:
        return "'..' in its path"
    if member.issym():
        return f"symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"hard link to {member.linkname!r}"
    if not (member.isfile() or member.isdir()):
        return "device or other special file"
    target = os.path.realpath(os.path.join(dest_real, name))
    if target != dest_real and not target.startswith(dest_real + os.sep):
        return "path leads outside the extraction folder"
    return None


def safe_extract(archive, dest):
    """Extract a .tgz into dest (via dest + '.tmp', renamed when complete) and return dest.

    Every member is checked before anything is written: an absolute path, a '..' component, a
    symbolic or hard link or a device/special file gets the whole archive refused (PrepareError
    naming the member). An existing dest is replaced.
    """
    dest = os.path.abspath(dest)
    tmp = dest + ".tmp"
    with _open_tgz(archive) as tf:
        members = _members(tf, archive)
        for m in members:
            reason = _unsafe_reason(m, os.path.realpath(tmp))
            if reason:
                raise PrepareError(
                    f"refusing to extract {archive}: member {m.name!r}: {reason}"
                )
        if os.path.lexists(tmp):
            shutil.rmtree(tmp)  # left by an interrupted run
        os.makedirs(tmp)
        # The 'data' filter (Python >= 3.11.4) repeats these checks and drops odd permission bits.
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        try:
            tf.extractall(tmp, members=members, **kwargs)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise PrepareError(f"could not extract {archive} ({e})") from None
    if os.path.lexists(dest):
        shutil.rmtree(dest)
    os.rename(tmp, dest)
    return dest


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
    for src_xml, en_xml in _xml_pairs(pair_dir, src):
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
    expected = _normalise_sha256(a.sha256) if a.sha256 else KNOWN_SHA256.get(pair)
    if a.archive:
        archive = os.path.abspath(a.archive)
        if a.url:
            print("--archive given: ignoring --url")
        if not os.path.isfile(archive):
            raise PrepareError(f"archive not found: {archive}")
        digest = sha256_file(archive)
        if expected:
            # delete=False: never delete the user's own file
            _check_sha256(archive, expected, digest, delete=False)
            print(f"sha256 verified: {digest}")
        else:
            print(f"sha256 {digest} of {archive} (no known checksum to verify it against)")
    else:
        url = resolve_url(a.src, a.url)
        archive = fetch(url, os.path.join(out, "download", f"{pair}.tgz"), sha256=expected,
                        timeout=a.timeout)
        digest = sha256_file(archive)
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
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="network timeout per socket operation, seconds (default %(default)s)")
    a = p.parse_args(argv)
    try:
        return _run(a)
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
