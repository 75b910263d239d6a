"""preprocess/iwslt14.py: download (resume, checksums, offline), safe extraction, stripping.

Everything runs against a fake archive in the real IWSLT14 layout, served from 127.0.0.1.
"""
import http.server
import io
import os
import re
import shutil
import tarfile

import pytest

from tests.helpers import (
    REPO, closed_port, http_server, load_script, read_lines, run_script, run_script_main, sha,
)

SCRIPT = os.path.join(REPO, "preprocess", "iwslt14.py")
iwslt14 = load_script("iwslt14")

# (corpus, set, number of segments), in the order the archive stores them (not the output order).
XML_SETS = [("TED", "tst2012", 3), ("TEDX", "dev2012", 2), ("TED", "tst2010", 4),
            ("TED", "dev2010", 3), ("TED", "tst2011", 2)]
# fairseq's concatenation order (examples/translation/prepare-iwslt14.sh), where each file starts.
TEST_ORDER = [("TED", "dev2010"), ("TEDX", "dev2012"), ("TED", "tst2010"), ("TED", "tst2011"),
              ("TED", "tst2012")]
TEST_OFFSETS = [0, 3, 5, 9, 11]
N_TEST = 14
TALKS, TEXT_LINES = 3, 7
N_TRAIN = TALKS * (TEXT_LINES + 2)  # text lines plus the title and description lines, per talk


def _train_file(lang):
    lines = []
    for t in range(TALKS):
        lines += [
            f"<url>http://www.ted.com/talks/lang/{lang}/talk_{t}.html</url>",
            f"<keywords>talks, {lang}, science</keywords>",
            f"<speaker>Speaker {t}</speaker>",
            f"<talkid>{100 + t}</talkid>",
            f"<title>Title {lang} {t}</title>",
            f"<description>TED Talk Subtitles and Transcript: about {lang} {t}</description>",
            f'<reviewer href="http://www.ted.com/profiles/{t}">Reviewer {t}</reviewer>',
            f'<translator href="http://www.ted.com/profiles/{t + 50}">Translator {t}</translator>',
        ]
        lines += [f"train {lang} talk {t} line {i}" for i in range(TEXT_LINES)]
    return "\n".join(lines) + "\n"


def _xml_file(corpus, setname, lang, n, drop_last=False):
    tag = "srcset" if lang == "de" else "refset"
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<mteval>",
           f'<{tag} setid="iwslt2014-{setname}" srclang="german" trglang="english">',
           '<doc docid="535" genre="lectures">',
           "<url>http://www.ted.com/talks/x.html</url>",
           "<description>TED Talk Subtitles and Transcript: a talk</description>",
           "<keywords>talks</keywords>", "<talkid>535</talkid>", f"<title>Title {lang}</title>"]
    for i in range(1, n + 1 - int(drop_last)):
        text = f"{corpus}.{setname} {lang} seg {i}"
        if (corpus, setname, i) == ("TED", "dev2010", 1):
            # entities and the curly apostrophe, literal and as a character reference
            text += " Tom &amp; Jerry’s &quot;cat&quot; &#8217;s"
        out.append(f'<seg id="{i}">  {text}  </seg>')
    out += ["</doc>", f"</{tag}>", "</mteval>"]
    return "\n".join(out) + "\n"


def make_archive(path, files=None, extra=(), drop_seg=None):
    """A de-en.tgz in the WIT3 layout; files overrides/adds {name: text}, extra adds TarInfos."""
    content = {"de-en/train.tags.de-en.de": _train_file("de"),
               "de-en/train.tags.de-en.en": _train_file("en"),
               "de-en/README": "fake IWSLT14 release for tests\n"}
    for corpus, setname, n in XML_SETS:
        for lang in ("de", "en"):
            drop = drop_seg == (corpus, setname, lang)
            content[f"de-en/IWSLT14.{corpus}.{setname}.de-en.{lang}.xml"] = _xml_file(
                corpus, setname, lang, n, drop_last=drop)
    content.update(files or {})
    with tarfile.open(path, "w:gz") as tf:
        d = tarfile.TarInfo("de-en")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
        for name, text in content.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.fixture(scope="module")
def archive_bytes(tmp_path_factory):
    return open(make_archive(tmp_path_factory.mktemp("arc") / "de-en.tgz"), "rb").read()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.payload at /de-en.tgz; honours `Range: bytes=N-` when server.ranges, and sends
    only server.drop_after bytes of the body (once) before closing, to simulate a cut connection."""

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.ranges_seen.append(rng)
        if self.path == "/broken.tgz":  # a server error
            self.send_error(500)
            return
        if self.path != "/de-en.tgz":
            self.send_error(404)
            return
        body, start = srv.payload, 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and srv.ranges:
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        rest = body[start:]
        self.send_header("Content-Length", str(len(rest)))
        self.send_header("Content-Type", "application/x-gzip")
        self.end_headers()
        if srv.drop_after is not None:
            rest, srv.drop_after = rest[: srv.drop_after], None
            self.close_connection = True  # HTTP/1.0 closes anyway; the client sees EOF early
        self.wfile.write(rest)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(archive_bytes, monkeypatch):
    with http_server(_Handler, monkeypatch, unset=("IWSLT14_MIRROR",), payload=archive_bytes, ranges=True,
                     drop_after=None, ranges_seen=[]) as srv:
        srv.url = f"http://127.0.0.1:{srv.port}/de-en.tgz"
        yield srv


def run_main(capsys, *args):
    return run_script_main(iwslt14, capsys, *args)


def run_cli(*args):
    return run_script(SCRIPT, *args, unset=("IWSLT14_MIRROR",))


# ---------------------------------------------------------------- happy path and text stripping


def check_raw(raw):
    for lang in ("de", "en"):
        train = read_lines(raw / f"train.{lang}")
        assert len(train) == N_TRAIN
        assert not [line for line in train if "<" in line or ">" in line], "tags left in train"
        for gone in ("http://www.ted.com", "talks, ", "Speaker ", "Reviewer ", "Translator "):
            assert not [line for line in train if gone in line], gone
        assert train[0] == f"Title {lang} 0"  # the title text is kept, without its tags
        assert train[1] == f"TED Talk Subtitles and Transcript: about {lang} 0"
        assert train[2] == f"train {lang} talk 0 line 0"
        test = read_lines(raw / f"test.{lang}")
        assert len(test) == N_TEST
        for (corpus, setname), offset in zip(TEST_ORDER, TEST_OFFSETS):
            assert test[offset].startswith(f"{corpus}.{setname} {lang} seg 1"), (offset, test)
        assert test[0] == f"TED.dev2010 {lang} seg 1 Tom & Jerry's \"cat\" 's"
        assert test[-1] == f"TED.tst2012 {lang} seg 3"
    sources = (raw / "SOURCES.txt").read_text()
    names = re.findall(r"IWSLT14\.(\w+\.\w+)\.de-en\.\{de,en\}\.xml\t(\d+) segments", sources)
    assert names == [("TED.dev2010", "3"), ("TEDX.dev2012", "2"), ("TED.tst2010", "4"),
                     ("TED.tst2011", "2"), ("TED.tst2012", "3")]
    assert f"{N_TRAIN} lines" in sources


def test_download_and_prepare(server, tmp_path, capsys, archive_bytes):
    rc, out, err = run_main(capsys, "--src", "de", "--out", tmp_path, "--url", server.url)
    assert rc == 0, err
    check_raw(tmp_path / "raw")
    assert f"{N_TRAIN} train pairs, {N_TEST} test pairs" in out
    assert (tmp_path / "download" / "de-en.tgz").read_bytes() == archive_bytes
    assert not (tmp_path / "download" / "de-en.tgz.part").exists()
    assert not (tmp_path / "raw.tmp").exists() and not (tmp_path / "extract.tmp").exists()
    assert server.ranges_seen == [None]

    # Idempotent: a second run touches neither the network nor the output.
    server.shutdown()
    rc, out, err = run_main(capsys, "--src", "de", "--out", tmp_path,
                            "--url", f"http://127.0.0.1:{closed_port()}/de-en.tgz")
    assert rc == 0, err
    assert "already complete" in out


def test_mirror_env_var(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IWSLT14_MIRROR", server.url.rsplit("/", 1)[0] + "/")
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path)
    assert rc == 0, err
    assert (tmp_path / "raw" / "test.de").exists()


def test_cli_local_archive(tmp_path):
    # --archive needs no server; also checks the script runs as a plain command.
    arc = make_archive(tmp_path / "de-en.tgz")
    before = arc.read_bytes()
    p = run_cli("--src", "de", "--out", tmp_path / "out", "--archive", arc)
    assert p.returncode == 0, p.stderr
    check_raw(tmp_path / "out" / "raw")
    assert not (tmp_path / "out" / "download").exists()
    assert arc.read_bytes() == before and not (tmp_path / "de-en.tgz.sha256").exists()


# ---------------------------------------------------------------- interrupted and resumed downloads


def test_interrupted_download_resumes_with_range(server, tmp_path, capsys, archive_bytes):
    cut = len(archive_bytes) // 2
    server.drop_after = cut
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path, "--url", server.url)
    part = tmp_path / "download" / "de-en.tgz.part"
    assert rc == 2 and "rerun" in err and "Traceback" not in err
    assert part.stat().st_size == cut
    assert not (tmp_path / "download" / "de-en.tgz").exists()
    assert not (tmp_path / "raw").exists()

    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path, "--url", server.url)
    assert rc == 0, err
    assert server.ranges_seen == [None, f"bytes={cut}-"]
    final = tmp_path / "download" / "de-en.tgz"
    assert sha(final.read_bytes()) == sha(archive_bytes)
    assert not part.exists()
    check_raw(tmp_path / "raw")


def test_server_without_range_support_restarts_from_zero(server, tmp_path, capsys, archive_bytes):
    server.ranges = False
    part = tmp_path / "download" / "de-en.tgz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes from some other file" * 7)
    rc, out, err = run_main(capsys, "--src", "de", "--out", tmp_path, "--url", server.url)
    assert rc == 0, err
    assert server.ranges_seen[0] == f"bytes={7 * 32}-"  # it asked to resume ...
    assert "restarting from zero" in out  # ... and noticed the 200
    assert (tmp_path / "download" / "de-en.tgz").read_bytes() == archive_bytes
    check_raw(tmp_path / "raw")


def test_complete_part_answered_416_restarts(server, tmp_path, capsys, archive_bytes):
    part = tmp_path / "download" / "de-en.tgz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(archive_bytes + b"junk")  # longer than the file: the server answers 416
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path, "--url", server.url)
    assert rc == 0, err
    assert server.ranges_seen == [f"bytes={len(archive_bytes) + 4}-", None]
    assert (tmp_path / "download" / "de-en.tgz").read_bytes() == archive_bytes


# ---------------------------------------------------------------- checksums


def test_wrong_sha256_is_refused(server, tmp_path, capsys, archive_bytes):
    wrong = "ab" * 32
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path, "--url", server.url,
                             "--sha256", wrong)
    assert rc == 2
    assert wrong in err and sha(archive_bytes) in err and "de-en.tgz" in err
    assert "Traceback" not in err
    assert not (tmp_path / "download" / "de-en.tgz").exists()
    assert not (tmp_path / "download" / "de-en.tgz.part").exists()
    assert not (tmp_path / "extract").exists() and not (tmp_path / "raw").exists()


def test_right_sha256_is_accepted(server, tmp_path, capsys, archive_bytes):
    rc, out, err = run_main(capsys, "--src", "de", "--out", tmp_path, "--url", server.url,
                            "--sha256", sha(archive_bytes).upper())
    assert rc == 0, err
    assert "verified" in out


def test_trust_on_first_use(server, tmp_path, capsys, archive_bytes):
    rc, out, err = run_main(capsys, "--src", "de", "--out", tmp_path, "--url", server.url)
    assert rc == 0, err
    arc = tmp_path / "download" / "de-en.tgz"
    side = tmp_path / "download" / "de-en.tgz.sha256"
    assert side.read_text().split()[0] == sha(archive_bytes)
    assert sha(archive_bytes) in out and "trust" in out

    # Tamper with the archive in place; a rebuild must notice.
    data = bytearray(arc.read_bytes())
    data[len(data) // 2] ^= 0xFF
    arc.write_bytes(bytes(data))
    shutil.rmtree(tmp_path / "raw")
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path, "--url", server.url)
    assert rc == 2
    assert "mismatch" in err and sha(archive_bytes) in err and sha(bytes(data)) in err
    assert str(arc) in err
    assert not arc.exists()  # the bad file is removed, so the next run downloads it again
    assert side.read_text().split()[0] == sha(archive_bytes)

    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path, "--url", server.url)
    assert rc == 0, err
    assert arc.read_bytes() == archive_bytes


def test_truncated_download_without_length_is_not_trusted(tmp_path, capsys):
    # A cut body with no Content-Length looks complete by size; it must not become the trusted hash.
    bad = tmp_path / "dl" / "de-en.tgz"
    bad.parent.mkdir()
    bad.write_bytes(make_archive(tmp_path / "x.tgz").read_bytes()[:200])
    with pytest.raises(iwslt14.PrepareError, match="not a readable gzip"):
        iwslt14.fetch("http://127.0.0.1:1/unused", bad)
    assert not bad.exists() and not (tmp_path / "dl" / "de-en.tgz.sha256").exists()


# ---------------------------------------------------------------- offline


def test_offline_message(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/de-en.tgz"
    p = run_cli("--src", "de", "--out", tmp_path, "--url", url, "--timeout", "5")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "offline" in p.stderr and url in p.stderr
    assert "--archive /path/to/de-en.tgz" in p.stderr
    assert "--url" in p.stderr and "IWSLT14_MIRROR" in p.stderr
    assert not (tmp_path / "download" / "de-en.tgz").exists()


@pytest.mark.parametrize("name,code", [("missing.tgz", 404), ("broken.tgz", 500)])
def test_http_error_is_plain(name, code, server, tmp_path, capsys):
    url = server.url.replace("de-en.tgz", name)
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path, "--url", url)
    assert rc == 2 and f"{url} answered HTTP {code}" in err and "--archive" in err and "Traceback" not in err
    assert not any(tmp_path.rglob("*.tgz")) and not (tmp_path / "raw").exists()


# ---------------------------------------------------------------- archive safety


def _member(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    if kind == "file":
        info.size = 4
        return info, b"evil"
    info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                 "chardev": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
    info.linkname = linkname
    return info, None


@pytest.mark.parametrize("name,kind,linkname,reason", [
    ("de-en/../../evil.txt", "file", "", "'..' in its path"),
    ("/tmp/iwslt14-test-evil.txt", "file", "", "absolute path"),
    ("de-en/link", "symlink", "/etc/passwd", "symbolic link to '/etc/passwd'"),
    ("de-en/hard", "hardlink", "de-en/README", "hard link to 'de-en/README'"),
    ("de-en/dev", "chardev", "", "device or other special file"),
    ("de-en/fifo", "fifo", "", "device or other special file"),
], ids=["dotdot", "absolute", "symlink", "hardlink", "device", "fifo"])
def test_unsafe_member_is_refused(tmp_path, capsys, name, kind, linkname, reason):
    # The bad member comes last: nothing before it may be extracted either.
    arc = make_archive(tmp_path / "de-en.tgz", extra=[_member(name, kind, linkname)])
    out = tmp_path / "out"
    rc, _out, err = run_main(capsys, "--src", "de", "--out", out, "--archive", arc)
    assert rc == 2
    assert f"member {name!r}: {reason}" in err
    assert "Traceback" not in err
    assert not os.path.exists("/tmp/iwslt14-test-evil.txt")
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (out / "extract").exists() and not (out / "extract.tmp").exists()
    assert not (out / "raw").exists()


def test_safe_extract_replaces_stale_tmp(tmp_path):
    arc = make_archive(tmp_path / "de-en.tgz")
    stale = tmp_path / "extract.tmp"
    stale.mkdir()
    (stale / "half-written").write_text("x")
    dest = iwslt14.safe_extract(arc, tmp_path / "extract")
    assert not stale.exists()
    assert (tmp_path / "extract" / "de-en" / "train.tags.de-en.de").exists()
    assert not (tmp_path / "extract" / "half-written").exists()
    assert dest == str(tmp_path / "extract")


def test_not_a_gzip_tar(tmp_path, capsys):
    arc = tmp_path / "de-en.tgz"
    arc.write_bytes(b"<html>404 page saved as an archive</html>\n")
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path / "out", "--archive", arc)
    assert rc == 2 and str(arc) in err and "gzip" in err and "Traceback" not in err


# ---------------------------------------------------------------- layout errors


def test_seg_count_mismatch_names_files(tmp_path, capsys):
    arc = make_archive(tmp_path / "de-en.tgz", drop_seg=("TED", "tst2011", "en"))
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path / "out", "--archive", arc)
    assert rc == 2
    assert "IWSLT14.TED.tst2011.de-en.de.xml has 2" in err
    assert "IWSLT14.TED.tst2011.de-en.en.xml has 1" in err
    assert not (tmp_path / "out" / "raw").exists() and not (tmp_path / "out" / "raw.tmp").exists()


def test_xml_without_partner(tmp_path, capsys):
    orphan = {"de-en/IWSLT14.TED.tst2013.de-en.de.xml": _xml_file("TED", "tst2013", "de", 1)}
    arc = make_archive(tmp_path / "de-en.tgz", files=orphan)
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path / "out", "--archive", arc)
    assert rc == 2 and "IWSLT14.TED.tst2013.de-en.de.xml has no English partner" in err


def test_train_line_count_mismatch(tmp_path, capsys):
    arc = make_archive(tmp_path / "de-en.tgz",
                       files={"de-en/train.tags.de-en.en": _train_file("en") + "one more line\n"})
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path / "out", "--archive", arc)
    assert rc == 2
    assert "train.tags.de-en.de has 27 lines" in err and "train.tags.de-en.en has 28" in err


def test_xml_sort_key_matches_fairseq_order():
    names = [f"IWSLT14.{c}.{s}.de-en.de.xml" for c, s, _n in XML_SETS]
    got = [".".join(n.split(".")[1:3]) for n in sorted(names, key=iwslt14._xml_sort_key)]
    assert got == [f"{c}.{s}" for c, s in TEST_ORDER]


def test_default_urls_and_precedence():
    assert set(iwslt14.DEFAULT_URLS) == {f"{s}-en" for s in ("de", "ar", "fa", "es", "he")}
    fb = "http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz"
    assert iwslt14.DEFAULT_URLS["de-en"] == fb
    wit3 = "https://wit3.fbk.eu/archive/2014-01/texts/es/en/es-en.tgz"
    assert iwslt14.resolve_url("es", None, {}) == wit3
    mirror = {"IWSLT14_MIRROR": "http://m/x/"}
    assert iwslt14.resolve_url("es", None, mirror) == "http://m/x/es-en.tgz"
    assert iwslt14.resolve_url("es", "http://u/a.tgz", mirror) == "http://u/a.tgz"  # --url wins


# ------------------------------------------------------------- the archives users have
def make_release(path, pair_archive, src="de"):
    """The whole IWSLT 2014-01 release as users hold it: 2014-01/texts/SRC/en/SRC-en.tgz inside, beside
    another pair's."""
    with tarfile.open(path, "w:gz") as tf:
        tf.add(pair_archive, arcname=f"2014-01/texts/{src}/en/{src}-en.tgz")
        data = b"another pair"
        info = tarfile.TarInfo("2014-01/texts/fr/en/fr-en.tgz")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return path


def test_the_whole_2014_01_release_as_archive_gives_the_pairs_own_raw_text(tmp_path, capsys):
    pair = make_archive(str(tmp_path / "de-en.tgz"))
    release = make_release(str(tmp_path / "2014-01.tgz"), pair)
    rc, out, err = run_main(capsys, "--src", "de", "--out", tmp_path / "from_release", "--archive", release)
    assert rc == 0, err
    assert "is the IWSLT release: using its 2014-01/texts/de/en/de-en.tgz" in out
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path / "from_pair", "--archive", pair)
    assert rc == 0, err
    for name in ("train.de", "train.en", "test.de", "test.en"):
        assert (tmp_path / "from_release" / "raw" / name).read_bytes() == \
            (tmp_path / "from_pair" / "raw" / name).read_bytes()
    assert "warning" not in err  # the pair holds all five dev/test sets


def test_a_missing_dev_or_test_set_is_said_naming_the_pair(tmp_path, capsys):
    arc = tmp_path / "de-en.tgz"
    make_archive(str(arc))
    with tarfile.open(arc) as tf:  # the same archive without TEDX.dev2012
        members = [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()
                   if "TEDX.dev2012" not in m.name]
    with tarfile.open(arc, "w:gz") as tf:
        for m, data in members:
            tf.addfile(m, io.BytesIO(data) if data is not None else None)
    rc, _out, err = run_main(capsys, "--src", "de", "--out", tmp_path / "out", "--archive", arc)
    assert rc == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "IWSLT14 de-en" in warnings[0] and "no TEDX.dev2012 set" in warnings[0]
    raw = tmp_path / "out" / "raw"
    assert len((raw / "test.en").read_text().splitlines()) == N_TEST - 2  # TEDX.dev2012 has 2 segments
    assert "missing: IWSLT14.TEDX.dev2012.de-en.{de,en}.xml" in (raw / "SOURCES.txt").read_text()


def test_the_message_for_a_pair_whose_default_host_is_gone_says_so_and_how_to_pass_a_copy():
    for src in ("ar", "fa", "es", "he"):
        hint = iwslt14.fetch_hint(src, iwslt14.DEFAULT_URLS[f"{src}-en"])
        assert "no longer serves the IWSLT 2014-01 release" in hint and "--archive /path/to/2014-01.tgz" in hint
        assert f"2014-01/texts/{src}/en/{{name}}" in hint
    # de-en's default is fairseq's mirror, which still answers; a --url of the user's own gets the plain hint
    assert iwslt14.fetch_hint("de", iwslt14.DEFAULT_URLS["de-en"]) == iwslt14.FETCH_HINT
    assert iwslt14.fetch_hint("ar", "http://example.org/ar-en.tgz") == iwslt14.FETCH_HINT
