"""preprocess/download_glue_data.py: mirror, local archives, checksums, unsafe zips, offline.

Everything runs against small files the tests make in the real GLUE layout (per-task zips with a
TASK/ folder, MRPC's SentEval text files and dev ids, the diagnostic TSV), served from 127.0.0.1.
Resuming, Range requests and trust on first use are the shared preprocess/download.py, tested in
tests/pipelines/test_iwslt14_download.py; here they are only used.
"""
import http.server
import os
import stat
import zipfile

import pytest

from tests.helpers import (
    REPO, closed_port, http_server, load_script, read_lines, run_script, run_script_main, sha,
)

SCRIPT = os.path.join(REPO, "preprocess", "download_glue_data.py")
glue = load_script("download_glue_data")

# ---------------------------------------------------------------- a small release, GLUE's layout

SST2 = {
    "SST-2/train.tsv": "sentence\tlabel\nhide new secretions from the parental units \t0\n"
                       "contains no wit , only labored gags \t0\n",
    "SST-2/dev.tsv": "sentence\tlabel\nit 's a charming and often affecting journey . \t1\n",
    "SST-2/test.tsv": "index\tsentence\n0\tuneasy mishmash of styles and genres .\n",
    "SST-2/original/README.txt": "Stanford Sentiment Treebank V1.0\n",
}
MNLI = {
    "MNLI/train.tsv": "index\tgenre\tsentence1\tsentence2\tgold_label\n"
                      "0\tgovernment\tConceptually cream skimming has two basic dimensions .\t"
                      "Product and geography are what make cream skimming work .\tneutral\n",
    "MNLI/dev_matched.tsv": "index\tgenre\tsentence1\tsentence2\tgold_label\n"
                            "0\ttelephone\tThe new rights are nice enough\tEveryone really likes "
                            "the newest benefits\tneutral\n",
    "MNLI/dev_mismatched.tsv": "index\tgenre\tsentence1\tsentence2\tgold_label\n"
                               "0\tletters\tYour contribution helped make it possible\t"
                               "Your contributions were of no help\tcontradiction\n",
    "MNLI/test_matched.tsv": "index\tgenre\tsentence1\tsentence2\n0\tgov\ta\tb\n",
    "MNLI/test_mismatched.tsv": "index\tgenre\tsentence1\tsentence2\n0\tnineeleven\ta\tb\n",
    "MNLI/original/multinli_1.0_dev_matched.jsonl": '{"gold_label": "neutral"}\n',
}
QQP = {
    "QQP/train.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                     "133273\t213221\t213222\tHow is the life of a math student?\t"
                     "Which level of prepration is enough?\t0\n",
    "QQP/dev.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                   "201359\t303345\t303346\tWhy are African-Americans so beautiful?\t"
                   "Why are hispanics so beautiful?\t0\n",
    "QQP/test.tsv": "id\tquestion1\tquestion2\n0\tHow does the Surface Pro work?\tWhy?\n",
}
MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
MRPC_TRAIN_ROWS = [
    "1\t702876\t702977\tAmrozi accused his brother .\tReferring to him , Amrozi accused him .",
    "0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought Dominick 's in 1995 .",
    "1\t1330381\t1330521\tThey had published an advertisement .\tThe owners had published it .",
    "0\t3344667\t3344648\tTab shares were up 19 cents .\tTab shares jumped 20 cents .",
]
MRPC_TEST_ROWS = [
    "1\t1089874\t1089925\tPCCW 's chief operating officer .\tCurrent Chief Operating Officer .",
    "0\t3019446\t3019327\tThe world 's two largest .\tDespite the ruling .",
]
MRPC_DEV_IDS = "2108705\t2108831\n3344667\t3344648\n"
DIAGNOSTIC = "index\tsentence1\tsentence2\n0\tThe cat sat on the mat.\tThe cat did not sit.\n"


def mrpc_text(rows, trailing_space=True):
    # The SentEval files start with a byte-order mark; one row ends with a space the original
    # script's strip() removes.
    lines = ["\ufeff" + MRPC_HEADER] + rows
    if trailing_space:
        lines[2] += " "
    return "\n".join(lines) + "\n"


def make_zip(path, files, extra=()):
    """A zip like GLUE's: a directory entry per folder, then the files; extra: (ZipInfo, bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        folders = sorted({os.path.dirname(n) + "/" for n in files})
        for d in folders:
            zf.writestr(zipfile.ZipInfo(d), b"")
        for name, text in files.items():
            zf.writestr(name, text.encode("utf-8"))
        for info, data in extra:
            zf.writestr(info, data)
    return path


def release_files(folder, sst2=SST2, mnli=MNLI):
    """The files of a release (what a mirror or --archives holds) -> {name: bytes}."""
    os.makedirs(folder, exist_ok=True)
    zips = {"SST-2.zip": sst2, "MNLI.zip": mnli, "QQP-clean.zip": QQP}  # QQP: the upstream name
    out = {n: open(make_zip(os.path.join(folder, n), f), "rb").read() for n, f in zips.items()}
    out["msr_paraphrase_train.txt"] = mrpc_text(MRPC_TRAIN_ROWS).encode("utf-8")
    out["msr_paraphrase_test.txt"] = mrpc_text(MRPC_TEST_ROWS, False).encode("utf-8")
    out["mrpc_dev_ids.tsv"] = MRPC_DEV_IDS.encode("utf-8")
    out["diagnostic.tsv"] = DIAGNOSTIC.encode("utf-8")
    for name in out:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(out[name])
    return out


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return release_files(str(tmp_path_factory.mktemp("release")))


def sha_args(files, keys=None):
    """--sha256 KEY=HEX for each file of the release (as --archives/--mirror names them)."""
    key_of = {"SST-2.zip": "SST-2", "MNLI.zip": "MNLI", "QQP-clean.zip": "QQP",
              "diagnostic.tsv": "diagnostic", "dev_ids.tsv": "mrpc_dev_ids.tsv"}
    args = []
    for name, data in files.items():
        key = key_of.get(name, name)
        if keys is None or key in keys:
            args += ["--sha256", f"{key}={sha(data)}"]
    return args


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files {url path: bytes}; 404 for anything else."""

    def do_GET(self):
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(release, monkeypatch):
    files = {f"/glue/{name}": data for name, data in release.items()}
    with http_server(_Handler, monkeypatch, unset=("GLUE_MIRROR",), files=files, requests=[]) as srv:
        srv.url = f"http://127.0.0.1:{srv.port}/glue/"
        yield srv


@pytest.fixture
def unknown_sha256(monkeypatch):
    # The real checksums cannot match the test's files: downloads are trusted on first use instead.
    monkeypatch.setattr(glue, "KNOWN_SHA256", {})


def run_main(capsys, *args):
    return run_script_main(glue, capsys, *args)


def run_cli(*args):
    return run_script(SCRIPT, *args, unset=("GLUE_MIRROR",))


def snapshot(folder):
    """{relative path: (size, mtime_ns)} of every file below folder."""
    out = {}
    for root, _dirs, files in os.walk(folder):
        for n in files:
            st = os.stat(os.path.join(root, n))
            out[os.path.relpath(os.path.join(root, n), folder)] = (st.st_size, st.st_mtime_ns)
    return out


def leftovers(out):
    return [n for n in os.listdir(out) if n.endswith(".tmp")]


# ---------------------------------------------------------------- checks of the output layout


def check_zip_task(out, files):
    for name, text in files.items():
        assert (out / name).read_text(encoding="utf-8") == text, name


def check_mrpc(out):
    d = out / "MRPC"
    assert read_lines(d / "train.tsv") == [MRPC_HEADER, MRPC_TRAIN_ROWS[0], MRPC_TRAIN_ROWS[2]]
    assert read_lines(d / "dev.tsv") == [MRPC_HEADER, MRPC_TRAIN_ROWS[1], MRPC_TRAIN_ROWS[3]]
    test = read_lines(d / "test.tsv")
    assert test[0] == "index\t#1 ID\t#2 ID\t#1 String\t#2 String"
    assert test[1:] == [f"{i}\t" + row.split("\t", 1)[1] for i, row in enumerate(MRPC_TEST_ROWS)]
    assert (d / "dev_ids.tsv").read_text() == MRPC_DEV_IDS


def check_tree(out, tasks):
    if "SST-2" in tasks:
        check_zip_task(out, SST2)
    if "MNLI" in tasks:
        check_zip_task(out, MNLI)
    if "QQP" in tasks:
        check_zip_task(out, QQP)
    if "MRPC" in tasks:
        check_mrpc(out)
    if "diagnostic" in tasks:
        assert (out / "diagnostic" / "diagnostic.tsv").read_text() == DIAGNOSTIC
    for task in tasks:
        assert "sha256" in (out / task / "SOURCES.txt").read_text()
    assert not leftovers(out)


TASKS = ["SST-2", "MNLI", "QQP", "MRPC", "diagnostic"]


# ---------------------------------------------------------------- happy paths


def test_mirror_then_rerun_is_a_no_op(mirror, unknown_sha256, tmp_path, capsys, release):
    rc, out, err = run_main(capsys, "--out", tmp_path, "--tasks", ",".join(TASKS),
                            "--mirror", mirror.url)
    assert rc == 0, err
    check_tree(tmp_path, TASKS)
    assert "SST-2: train.tsv 3 lines, dev.tsv 2 lines" in out
    # QQP is tried under the mirror's name first, then under the upstream name.
    assert mirror.requests.index("/glue/QQP.zip") < mirror.requests.index("/glue/QQP-clean.zip")
    dl = tmp_path / "download"
    assert (dl / "QQP-clean.zip").read_bytes() == release["QQP-clean.zip"]
    # No checksum known: each file's is recorded (trust on first use).
    assert (dl / "SST-2.zip.sha256").read_text().split()[0] == sha(release["SST-2.zip"])
    assert sha(release["SST-2.zip"]) in (tmp_path / "SST-2" / "SOURCES.txt").read_text()

    before = snapshot(tmp_path)
    mirror.requests.clear()
    rc, out, err = run_main(capsys, "--out", tmp_path, "--tasks", ",".join(TASKS),
                            "--mirror", f"http://127.0.0.1:{closed_port()}/glue/")
    assert rc == 0, err
    assert out.count("already complete") == len(TASKS)
    assert mirror.requests == [] and snapshot(tmp_path) == before


def test_mirror_env_var(mirror, unknown_sha256, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GLUE_MIRROR", mirror.url)
    rc, _out, err = run_main(capsys, "--out", tmp_path, "--tasks", "sst")  # alias of SST-2
    assert rc == 0, err
    check_tree(tmp_path, ["SST-2"])
    assert mirror.requests == ["/glue/SST-2.zip"]


def test_cli_local_archives(tmp_path):
    # --archives needs no server; also checks the script runs as a plain command and that the
    # --sha256 overrides are used (the real known checksums could not match these files).
    arc = tmp_path / "archives"
    files = release_files(str(arc))
    os.rename(arc / "mrpc_dev_ids.tsv", arc / "dev_ids.tsv")  # the other accepted name
    files["dev_ids.tsv"] = files.pop("mrpc_dev_ids.tsv")
    before = snapshot(arc)
    p = run_cli("--out", tmp_path / "out", "--tasks", ",".join(TASKS), "--archives", arc,
                *sha_args(files))
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("sha256 verified") == len(files)
    check_tree(tmp_path / "out", TASKS)
    assert not (tmp_path / "out" / "download").exists()
    assert snapshot(arc) == before  # read in place: nothing written next to the user's files


# ---------------------------------------------------------------- checksums


def test_known_checksum_mismatch(mirror, tmp_path, capsys, release):
    known = glue.KNOWN_SHA256["SST-2"]
    rc, _out, err = run_main(capsys, "--out", tmp_path, "--tasks", "SST-2", "--mirror", mirror.url)
    assert rc == 2 and "Traceback" not in err
    assert known in err and sha(release["SST-2.zip"]) in err and "SST-2.zip" in err
    assert "--sha256 SST-2=HEX" in err
    assert not (tmp_path / "download" / "SST-2.zip").exists()
    assert not (tmp_path / "download" / "SST-2.zip.part").exists()
    assert not (tmp_path / "SST-2").exists() and not leftovers(tmp_path)


def test_wrong_sha256_option_leaves_local_archive(tmp_path, capsys, release):
    arc = tmp_path / "archives"
    files = release_files(str(arc))
    wrong = "ab" * 32
    rc, _out, err = run_main(capsys, "--out", tmp_path / "out", "--tasks", "SST-2",
                             "--archives", arc, "--sha256", f"SST-2={wrong}")
    assert rc == 2 and wrong in err and sha(files["SST-2.zip"]) in err
    assert "left it in place" in err and (arc / "SST-2.zip").exists()
    assert not (tmp_path / "out" / "SST-2").exists()


def test_truncated_zip_is_not_trusted_on_first_use(tmp_path):
    # Without Content-Length a cut download looks complete by its size: it must not become the
    # recorded checksum (the shared fetch opens a .zip before trusting it).
    bad = tmp_path / "dl" / "SST-2.zip"
    bad.parent.mkdir()
    bad.write_bytes(make_zip(tmp_path / "x.zip", SST2).read_bytes()[:100])
    with pytest.raises(glue.PrepareError, match="not a readable zip archive"):
        glue.fetch("http://127.0.0.1:1/unused", bad)
    assert not bad.exists() and not (tmp_path / "dl" / "SST-2.zip.sha256").exists()


# ---------------------------------------------------------------- unsafe and broken archives


def _zip_member(name, kind):
    info = zipfile.ZipInfo(name)
    if kind == "symlink":
        info.create_system = 3  # Unix: the file type is in the high bits of external_attr
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        return info, b"/etc/passwd"
    return info, b"evil"


@pytest.mark.parametrize("name,kind,reason", [
    ("SST-2/../../evil.txt", "file", "'..' in its path"),
    ("/tmp/glue-test-evil.txt", "file", "absolute path"),
    ("SST-2/link", "symlink", "symbolic link to '/etc/passwd'"),
], ids=["dotdot", "absolute", "symlink"])
def test_unsafe_zip_member_is_refused(tmp_path, capsys, name, kind, reason):
    # The bad member comes last: nothing before it may be extracted either.
    arc = tmp_path / "archives"
    arc.mkdir()
    data = make_zip(arc / "SST-2.zip", SST2, extra=[_zip_member(name, kind)]).read_bytes()
    out = tmp_path / "out"
    rc, _out, err = run_main(capsys, "--out", out, "--tasks", "SST-2", "--archives", arc,
                             "--sha256", f"SST-2={sha(data)}")
    assert rc == 2 and "Traceback" not in err
    assert f"member {name!r}: {reason}" in err
    assert not os.path.exists("/tmp/glue-test-evil.txt")
    assert not list(tmp_path.rglob("evil.txt")) and not list(tmp_path.rglob("link"))
    assert not (out / "SST-2").exists() and not leftovers(out)


@pytest.mark.parametrize("task,drop,named", [
    ("SST-2", "SST-2/dev.tsv", "SST-2/dev.tsv"),
    ("MNLI", "MNLI/dev_mismatched.tsv", "MNLI/dev_mismatched.tsv"),
])
def test_archive_missing_expected_file(tmp_path, capsys, task, drop, named):
    files = {"SST-2": SST2, "MNLI": MNLI}[task]
    arc = tmp_path / "archives"
    arc.mkdir()
    data = make_zip(arc / f"{task}.zip", {k: v for k, v in files.items() if k != drop}).read_bytes()
    out = tmp_path / "out"
    rc, _out, err = run_main(capsys, "--out", out, "--tasks", task, "--archives", arc,
                             "--sha256", f"{task}={sha(data)}")
    assert rc == 2 and "Traceback" not in err
    assert f"lacks {named} " in err and f"{task}.zip" in err
    assert not (out / task).exists() and not leftovers(out)


def test_not_a_zip(tmp_path, capsys):
    arc = tmp_path / "archives"
    arc.mkdir()
    page = b"<html>404 page saved as an archive</html>\n"
    (arc / "SST-2.zip").write_bytes(page)
    rc, _out, err = run_main(capsys, "--out", tmp_path / "out", "--tasks", "SST-2",
                             "--archives", arc, "--sha256", f"SST-2={sha(page)}")
    assert rc == 2 and "not a readable zip archive" in err and "Traceback" not in err


def test_incomplete_task_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "train.tsv").write_text("sentence\tlabel\n")
    rc, _out, err = run_main(capsys, "--out", tmp_path, "--tasks", "SST-2",
                             "--mirror", f"http://127.0.0.1:{closed_port()}/")
    assert rc == 2 and "lacks dev.tsv" in err and "delete it" in err


@pytest.mark.parametrize("train,ids,message", [
    (mrpc_text(MRPC_TRAIN_ROWS + ["1\t5\tonly three fields"]), MRPC_DEV_IDS,
     "msr_paraphrase_train.txt:6: expected 5 tab-separated fields, found 3"),
    (mrpc_text(MRPC_TRAIN_ROWS), MRPC_DEV_IDS + "111\t222\n",
     "1 of the 3 id pairs in"),
], ids=["bad-row", "dev-id-not-in-train"])
def test_mrpc_errors_name_the_file(tmp_path, capsys, train, ids, message):
    arc = tmp_path / "archives"
    files = release_files(str(arc))
    (arc / "msr_paraphrase_train.txt").write_text(train, encoding="utf-8")
    (arc / "mrpc_dev_ids.tsv").write_text(ids, encoding="utf-8")
    files["msr_paraphrase_train.txt"] = train.encode("utf-8")
    files["mrpc_dev_ids.tsv"] = ids.encode("utf-8")
    keys = set(glue.MRPC_URLS)
    rc, _out, err = run_main(capsys, "--out", tmp_path / "out", "--tasks", "MRPC",
                             "--archives", arc, *sha_args(files, keys))
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "MRPC").exists() and not leftovers(tmp_path / "out")


# ---------------------------------------------------------------- offline and missing files


def test_offline_message(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/glue"
    p = run_cli("--out", tmp_path, "--tasks", "SST-2", "--mirror", url, "--timeout", "5")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "offline" in p.stderr and f"{url}/SST-2.zip" in p.stderr
    assert "--archives DIR" in p.stderr and "--mirror" in p.stderr and "GLUE_MIRROR" in p.stderr
    assert not (tmp_path / "SST-2").exists()


def test_mirror_without_the_file(mirror, unknown_sha256, tmp_path, capsys):
    del mirror.files["/glue/QQP-clean.zip"]
    rc, _out, err = run_main(capsys, "--out", tmp_path, "--tasks", "QQP", "--mirror", mirror.url)
    assert rc == 2 and "HTTP 404" in err and "Traceback" not in err
    assert f"{mirror.url}QQP.zip" in err and f"{mirror.url}QQP-clean.zip" in err
    assert "--archives" in err


# ---------------------------------------------------------------- tables and options


def test_tables_and_option_parsing():
    assert set(glue.TASK_URLS) == set(glue.TASKS) - {"MRPC"}
    assert len(glue.TASKS) == 10  # nine tasks and the diagnostic set
    urls = list(glue.TASK_URLS.values()) + list(glue.MRPC_URLS.values())
    assert all(u.startswith("https://dl.fbaipublicfiles.com/") for u in urls)
    assert glue.TASK_URLS["QQP"].endswith("/QQP-clean.zip")  # not the gist's swapped STS-B.zip
    assert glue.TASK_URLS["STS-B"].endswith("/STS-B.zip")
    keys = set(glue.TASK_URLS) | set(glue.MRPC_URLS)
    assert set(glue.KNOWN_SHA256) <= keys
    assert all(v is None or glue.normalise_sha256(v) == v for v in glue.KNOWN_SHA256.values())
    assert glue.task_sources("QQP")[0].names == ("QQP.zip", "QQP-clean.zip")
    assert glue.task_sources("diagnostic")[0].names == ("diagnostic.tsv", "AX.tsv")
    assert [s.key for s in glue.task_sources("MRPC")] == list(glue.MRPC_URLS)

    assert glue.parse_tasks("all") == list(glue.TASKS)
    assert glue.parse_tasks("sst,STS,ax,SST-2") == ["SST-2", "STS-B", "diagnostic"]
    with pytest.raises(glue.PrepareError, match="unknown task 'SNLI'"):
        glue.parse_tasks("CoLA,SNLI")
    h = "AB" * 32
    assert glue.parse_sha256([f"cola={h}", f"msr_paraphrase_test.txt={h}"]) == {
        "CoLA": h.lower(), "msr_paraphrase_test.txt": h.lower()}
    with pytest.raises(glue.PrepareError, match="one --sha256 per file"):
        glue.parse_sha256([f"MRPC={h}"])
    with pytest.raises(glue.PrepareError, match="not a sha256"):
        glue.parse_sha256(["CoLA=123"])
