"""Shared by the preprocess/ downloaders: fetch a file (resume, size and sha256 checks, trust on
first use, a plain message when offline). Extracting archives safely is archives.py's.

Every expected failure raises PrepareError, which the scripts print without a traceback.
The scripts import it as `download`: Python puts a script's own folder first on its path, and
the tests name preprocess/ in pytest.ini's pythonpath.
"""
import http.client
import os
import re
import sys
import urllib.error
import urllib.request

from archives import check_readable
# the scripts import the errors (and staged_dir) from here, beside them
from prepare_errors import ChecksumError, NotFoundError, PrepareError  # noqa: F401

# the package's own file helpers (it is installed: pip install -e .), one copy for all
from selfteach_pipeline.files import sha256_of_file, staged_dir  # noqa: F401

DEFAULT_TIMEOUT = 60.0  # seconds per socket operation, not for the whole download
_CHUNK = 1 << 20  # bytes read at a time from a download

# Appended to the offline and HTTP-error messages when the caller gives no hint of its own;
# {name} is the file's name. Each script passes a hint naming its own options.
DEFAULT_HINT = "If you already have {name}, copy it to where the download goes and rerun."


def cli_main(parser, run, argv=None, timeout=True):
    """The end of a script's main: add --timeout (timeout=False: a script that downloads nothing),
    parse argv, run(args); a PrepareError is printed as one plain `error: ...` (no traceback) and
    gives exit status 2."""
    if timeout:
        parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                            help="network timeout per socket operation, seconds (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------- checksums


def normalise_sha256(value):
    v = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", v):
        raise PrepareError(f"not a sha256 (64 hex digits): {value!r}")
    return v


def check_sha256(path, expected, actual, delete):
    if actual == expected:
        return
    if delete:
        os.remove(path)
    what = "deleted it; rerun to download again" if delete else "left it in place"
    raise ChecksumError(
        f"checksum mismatch for {path}: expected sha256 {expected}, actual {actual} ({what})"
    )


def verify_local(path, expected):
    """Check a user's own file (never deleted) against `expected` (or None); return its sha256."""
    if not os.path.isfile(path):
        raise PrepareError(f"file not found: {path}")
    digest = sha256_of_file(path)
    if expected:
        check_sha256(path, expected, digest, delete=False)
        print(f"sha256 verified: {digest} ({path})")
    else:
        print(f"sha256 {digest} of {path} (no known checksum to verify it against)")
    return digest


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
    return normalise_sha256(first[0])


def _write_sidecar(path, digest):
    side = _sidecar(path)
    with open(side + ".tmp", "w", encoding="utf-8") as f:
        # sha256sum's format, so that `sha256sum -c` can check it too
        f.write(f"{digest}  {os.path.basename(path)}\n")
    os.replace(side + ".tmp", side)


def _trust_first_use(path, digest):
    # Only a readable archive is trusted: without Content-Length a cut download cannot be told from
    # a complete one by its size, and its hash must not become the reference.
    check_readable(path, delete=True)
    _write_sidecar(path, digest)
    print(
        f"sha256 {digest} of {path} (no known checksum: recorded in {_sidecar(path)} "
        "and trusted from now on; trust on first use)"
    )


# ---------------------------------------------------------------- download


def _offline_message(url, err, hint):
    reason = getattr(err, "reason", err)
    return (
        f"could not reach {url} ({reason}).\n"
        "This machine appears to be offline, or the server is unreachable from it.\n" + hint
    )


def _parse_content_range(value):
    """(first byte, total size or None) from 'bytes FIRST-LAST/TOTAL', or None if unparsable."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not m:
        return None
    return int(m.group(1)), None if m.group(3) == "*" else int(m.group(3))


def _download(url, part, timeout, hint):
    """Download url into part; an existing part is resumed with a Range request if possible."""
    # An opener per call, so that proxy settings are read from the environment as it is now.
    opener = urllib.request.build_opener()
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    for _attempt in range(2):  # the second attempt is a restart from zero
        headers = {"User-Agent": "fairseq-selfteach", "Accept-Encoding": "identity"}
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
            error = NotFoundError if e.code in (404, 410) else PrepareError
            raise error(f"{url} answered HTTP {e.code} {e.reason}.\n{hint}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            raise PrepareError(_offline_message(url, e, hint)) from None
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


def fetch(url, dest, sha256=None, timeout=DEFAULT_TIMEOUT, hint=None):
    """Make dest a verified copy of url and return its path.

    The download goes to dest + '.part' (resumed on a rerun) and is renamed to dest only once
    complete and verified. The expected sha256 is `sha256`, else the one recorded in
    dest + '.sha256'; with neither, the download's hash is recorded there (trust on first use; an
    archive, by its name .tgz/.tar.gz/.zip, must also open before it is trusted).
    An existing dest is not downloaded again but is verified the same way; a download or dest
    that fails verification is deleted. `hint` (with {name} for dest's file name) ends the
    message when the server cannot be reached or answers an HTTP error: say there which options
    give a local copy or another source. HTTP 404/410 raise NotFoundError.
    """
    dest = os.path.abspath(dest)
    hint = (hint or DEFAULT_HINT).format(name=os.path.basename(dest))
    expected = normalise_sha256(sha256) if sha256 else _read_sidecar(dest)
    if os.path.exists(dest):
        actual = sha256_of_file(dest)
        if expected:
            check_sha256(dest, expected, actual, delete=True)
            print(f"{dest} already downloaded; sha256 verified")
        else:
            _trust_first_use(dest, actual)
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    part = dest + ".part"
    _download(url, part, timeout, hint)
    actual = sha256_of_file(part)
    if expected:
        # The message names dest (what the user asked for); the bad bytes are in part.
        if actual != expected:
            os.remove(part)
            raise ChecksumError(
                f"checksum mismatch for {dest} (downloaded from {url}): "
                f"expected sha256 {expected}, actual {actual} (deleted the download)"
            )
        os.replace(part, dest)
        print(f"sha256 verified: {actual}")
    else:
        os.replace(part, dest)
        _trust_first_use(dest, actual)
    return dest
