"""Download the nine GLUE tasks and the diagnostic set, verify them and lay them out as GLUE does.

The layout is that of the well-known download_glue_data.py (nyu-mll/GLUE-baselines, W4ngatang's
gist).

Usage:
  python preprocess/download_glue_data.py --out DIR [--tasks all|CoLA,SST-2,...]
                                          [--mirror BASE_URL | --archives DIR]
                                          [--sha256 KEY=HEX ...] [--timeout S]

Tasks: CoLA SST-2 MRPC QQP STS-B MNLI QNLI RTE WNLI diagnostic (also accepted: SST, STS, AX).

Writes DIR/{TASK}/ with the task's TSV files: train.tsv, dev.tsv and test.tsv; MNLI has
dev_matched.tsv, dev_mismatched.tsv, test_matched.tsv and test_mismatched.tsv instead of dev/test;
the diagnostic set is DIR/diagnostic/diagnostic.tsv. Each of the eight zip tasks is its archive's
TASK/ folder as released (extras such as original/ included). MRPC is built from the SentEval copy
of the Microsoft corpus as that script does: the train pairs listed in mrpc_dev_ids.tsv become
dev.tsv, the others train.tsv, and test.tsv is msr_paraphrase_test.txt with an index column in
place of the label (differences: a byte-order mark is dropped, and malformed rows are errors).
Each task folder also gets SOURCES.txt (which files it came from, their sha256).

Where the files come from (first match wins):
  1. --archives DIR    local copies, read in place: DIR/{TASK}.zip (also accepted: the upstream
                       names QQP-clean.zip, QNLIv2.zip), DIR/diagnostic.tsv (or AX.tsv) and, for
                       MRPC, the plain files DIR/msr_paraphrase_train.txt,
                       DIR/msr_paraphrase_test.txt and DIR/mrpc_dev_ids.tsv (or dev_ids.tsv);
  2. --mirror BASE_URL the same names under BASE_URL (BASE_URL/{TASK}.zip, ...); where the upstream
                       name differs it is tried next, so a copy of dl.fbaipublicfiles.com/glue/data
                       works too;
  3. $GLUE_MIRROR      a base URL, as --mirror;
  4. TASK_URLS and MRPC_URLS below (dl.fbaipublicfiles.com).
Downloads go to DIR/download/ (resumed by a rerun; see preprocess/download.py). Each file's sha256
is checked against --sha256 KEY=HEX (KEY: the task, or for MRPC the file's name), else
KNOWN_SHA256, else the one an earlier download recorded (trust on first use).

Each task is built in DIR/{TASK}.tmp/ and renamed to DIR/{TASK} only when its files are all there,
so a DIR/{TASK} is always complete: a rerun skips it (delete it to rebuild).
"""
import argparse
import os
import shutil
import sys
import urllib.parse
from typing import NamedTuple

# download.py beside this script (Python puts a script's folder first on its path; the tests use
# pytest's pythonpath = preprocess)
from download import (
    DEFAULT_TIMEOUT, ChecksumError, NotFoundError, PrepareError, cli_main, fetch, normalise_sha256,
    verify_local,
)
from archives import safe_extract

from selfteach_pipeline import glue_format
from selfteach_pipeline.files import sha256_of_file

# GLUE's tasks; the AX diagnostic set's folder is diagnostic/, as in the original script
TASKS = tuple("diagnostic" if t == "AX" else t for t in glue_format.TASKS)
# Other spellings accepted by --tasks and --sha256 (lower case), e.g. the original script's names.
_TASK_ALIASES = {"sst": "SST-2", "sst2": "SST-2", "sts": "STS-B", "stsb": "STS-B",
                 "ax": "diagnostic", "qnliv2": "QNLI"}

_GLUE = "https://dl.fbaipublicfiles.com/glue/data"
_SENTEVAL = "https://dl.fbaipublicfiles.com/senteval/senteval_data"
# task -> URL of its file, as in the current version of the gist (whose table swaps the QQP and
# STS-B URLs: fixed here). The original Firebase URLs no longer answer. If these stop answering,
# use --mirror, GLUE_MIRROR or --archives rather than editing this table.
TASK_URLS = {
    "CoLA": f"{_GLUE}/CoLA.zip",
    "SST-2": f"{_GLUE}/SST-2.zip",
    "QQP": f"{_GLUE}/QQP-clean.zip",
    "STS-B": f"{_GLUE}/STS-B.zip",
    "MNLI": f"{_GLUE}/MNLI.zip",
    "QNLI": f"{_GLUE}/QNLIv2.zip",
    "RTE": f"{_GLUE}/RTE.zip",
    "WNLI": f"{_GLUE}/WNLI.zip",
    "diagnostic": f"{_GLUE}/AX.tsv",
}
# MRPC is not hosted by GLUE: the train/test files are SentEval's copy of the Microsoft corpus.
MRPC_URLS = {
    "msr_paraphrase_train.txt": f"{_SENTEVAL}/msr_paraphrase_train.txt",
    "msr_paraphrase_test.txt": f"{_SENTEVAL}/msr_paraphrase_test.txt",
    "mrpc_dev_ids.tsv": f"{_GLUE}/mrpc_dev_ids.tsv",
}

# KEY (task, or MRPC file) -> sha256 of the file at the URL above. Not computed here (this project's
# machines are offline): these are the checksums Hugging Face `datasets` recorded for these exact
# URLs and verified on every download of its `glue` dataset (datasets/glue/dataset_infos.json,
# download_checksums); CoLA, QQP, QNLI, WNLI and the two MRPC text files agree with a second,
# independent record. A mirror whose copy differs fails the check: pass --sha256 KEY=HEX if you
# trust it. None would mean "unknown" (trust on first use).
KNOWN_SHA256 = {
    "CoLA": "f212fcd832b8f7b435fb991f101abf89f96b933ab400603bf198960dfc32cbff",
    "SST-2": "d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa",
    "QQP": "40e7c862c04eb26ee04b67fd900e76c45c6ba8e6d8fab4f8f1f8072a1a3fbae0",
    "STS-B": "e60a6393de5a8b5b9bac5020a1554b54e3691f9d600b775bd131e613ac179c85",
    "MNLI": "e7c1d896d26ed6caf700110645df426cc2d8ebf02a5ab743d5a5c68ac1c83633",
    "QNLI": "e634e78627a29adaecd4f955359b22bf5e70f2cbd93b493f2d624138a0c0e5f5",
    "RTE": "6bf86de103ecd335f3441bd43574d23fef87ecc695977a63b82d5efb206556ee",
    "WNLI": "ae0e8e4d16f4d46d4a0a566ec7ecceccfd3fbfaa4a7a4b4e02848c0f2561ac46",
    "diagnostic": "0e13510b1bb14436ff7e2ee82338f0efb0133ecf2e73507a697dc210db3f05fd",
    "msr_paraphrase_train.txt": "60a9b09084528f0673eedee2b69cb941920f0b8cd0eeccefc464a98768457f89",
    "msr_paraphrase_test.txt": "a04e271090879aaba6423d65b94950c089298587d9c084bf9cd7439bd785f784",
    "mrpc_dev_ids.tsv": "971d7767d81b997fd9060ade0ec23c4fc31cbb226a55d1bd4a1bac474eb81dc7",
}

# A task folder is complete with the files glue_binarize needs (test files are kept when present);
# MRPC's test.tsv is made here, so it is always there.
REQUIRED_FILES = {folder: glue_format.required_files(task) for folder, task in zip(TASKS, glue_format.TASKS)}
REQUIRED_FILES["MRPC"] += ("test.tsv",)

# The end of the message when a file cannot be downloaded ({name}: the file's name).
FETCH_HINT = (
    "If you already have {name}, put it in a folder and pass that folder with:  --archives DIR\n"
    "or download it from a mirror with:  --mirror BASE_URL  or  GLUE_MIRROR=BASE_URL "
    "(the file is then BASE_URL/{name})"
)

_MRPC_COLUMNS = 5  # Quality, #1 ID, #2 ID, #1 String, #2 String
_MRPC_TEST_HEADER = "index\t#1 ID\t#2 ID\t#1 String\t#2 String"


class Source(NamedTuple):
    """One file a task is made from."""

    key: str  # its name for --sha256 and KNOWN_SHA256
    names: tuple  # its name in --archives and on a mirror, then other names accepted there
    url: str  # where it is by default


def _basename(url):
    return os.path.basename(urllib.parse.urlparse(url).path)


def task_sources(task):
    if task == "MRPC":
        return [Source(k, (k, "dev_ids.tsv") if k == "mrpc_dev_ids.tsv" else (k,), url)
                for k, url in MRPC_URLS.items()]
    url = TASK_URLS[task]
    name = "diagnostic.tsv" if task == "diagnostic" else f"{task}.zip"
    upstream = _basename(url)
    return [Source(task, (name, upstream) if upstream != name else (name,), url)]


def _canonical(name, valid, what):
    by_lower = {v.lower(): v for v in valid}
    found = by_lower.get(name.strip().lower()) or _TASK_ALIASES.get(name.strip().lower())
    if found not in valid:
        raise PrepareError(f"unknown {what} {name!r}; choose from: {', '.join(valid)}")
    return found


def parse_tasks(value):
    names = [n for n in value.split(",") if n.strip()]
    if not names:
        raise PrepareError("--tasks is empty")
    if any(n.strip().lower() == "all" for n in names):
        return list(TASKS)
    tasks = []
    for n in names:
        t = _canonical(n, TASKS, "task")
        if t not in tasks:
            tasks.append(t)
    return tasks


def parse_sha256(items):
    """['KEY=HEX', ...] -> {KEY: hex}; KEY is a task (not MRPC) or one of MRPC's files."""
    keys = [t for t in TASKS if t != "MRPC"] + list(MRPC_URLS)
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise PrepareError(f"--sha256 wants KEY=HEX, got {item!r}")
        if key.strip().lower() == "mrpc":
            raise PrepareError(f"MRPC is made of several files: give one --sha256 per file "
                               f"({', '.join(k + '=HEX' for k in MRPC_URLS)})")
        out[_canonical(key, keys, "--sha256 key")] = normalise_sha256(value)
    return out


def task_complete(task_dir, task):
    """True if task_dir holds a finished task. It only appears by renaming a complete build, so one
    with files missing was altered by hand: an error, not something to overwrite."""
    if not os.path.isdir(task_dir):
        return False
    missing = [n for n in REQUIRED_FILES[task] if not os.path.isfile(os.path.join(task_dir, n))]
    if missing:
        raise PrepareError(f"{task_dir} exists but lacks {', '.join(missing)}: "
                           "delete it and rerun")
    return True


# ---------------------------------------------------------------- getting the files


class _Origin(NamedTuple):
    path: str  # the local file
    where: str  # where it came from, for SOURCES.txt
    sha256: str


def _from_archives(src, folder, expected):
    for name in src.names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return _Origin(path, path, verify_local(path, expected))
    raise PrepareError(f"--archives {folder}: no {' or '.join(src.names)} there "
                       f"(needed for {src.key})")


def _download(src, urls, download_dir, expected, timeout):
    """The first of urls that the server has (404: try the next), fetched and verified."""
    # A file an earlier run already downloaded is tried first: no network is needed for it.
    urls = sorted(urls, key=lambda u: not os.path.exists(os.path.join(download_dir, _basename(u))))
    missing = []
    for url in urls:
        try:
            path = fetch(url, os.path.join(download_dir, _basename(url)), sha256=expected,
                         timeout=timeout, hint=FETCH_HINT)
        except NotFoundError:
            if len(urls) == 1:
                raise
            missing.append(url)
            continue
        return _Origin(path, url, sha256_of_file(path))
    raise PrepareError(f"none of {', '.join(missing)} is there (HTTP 404)\n"
                       + FETCH_HINT.format(name=src.names[0]))


def obtain(src, out, archives=None, mirror=None, overrides=None, timeout=DEFAULT_TIMEOUT):
    """The local copy of one source file, verified: an _Origin."""
    expected = (overrides or {}).get(src.key) or KNOWN_SHA256.get(src.key)
    try:
        if archives:
            return _from_archives(src, archives, expected)
        if mirror:
            base = mirror.rstrip("/")
            urls = [f"{base}/{urllib.parse.quote(n)}" for n in src.names]
        else:
            urls = [src.url]
        return _download(src, urls, os.path.join(out, "download"), expected, timeout)
    except ChecksumError as e:
        raise PrepareError(f"{e}\nIf you trust this file, pass --sha256 {src.key}=HEX "
                           "with its sha256") from None


# ---------------------------------------------------------------- building a task folder


def _read_rows(path, ncols, header):
    """(header line or None, [(line number, fields)]) of a UTF-8 TSV; malformed rows stop here."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise PrepareError(f"{path} is not UTF-8 ({e})") from None
    lines = text.split("\n")
    if lines and lines[-1].strip() == "":
        lines.pop()
    first = None
    if header:
        if not lines:
            raise PrepareError(f"{path} is empty")
        first = lines.pop(0).strip()
    rows = []
    for i, line in enumerate(lines, start=2 if header else 1):
        fields = line.strip().split("\t")  # strip(), as the original script does
        if len(fields) != ncols:
            raise PrepareError(f"{path}:{i}: expected {ncols} tab-separated fields, "
                               f"found {len(fields)}")
        rows.append((i, fields))
    return first, rows


def _write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def _build_mrpc(files, folder):
    os.makedirs(folder)
    train_path = files["msr_paraphrase_train.txt"].path
    test_path = files["msr_paraphrase_test.txt"].path
    ids_path = files["mrpc_dev_ids.tsv"].path
    _, id_rows = _read_rows(ids_path, 2, header=False)
    dev_ids = {tuple(fields) for _, fields in id_rows}
    header, rows = _read_rows(train_path, _MRPC_COLUMNS, header=True)
    train, dev, seen = [header], [header], set()
    for _, fields in rows:
        pair = (fields[1], fields[2])
        (dev if pair in dev_ids else train).append("\t".join(fields))
        seen.add(pair)
    if not dev_ids <= seen:
        absent = sorted(dev_ids - seen)
        raise PrepareError(
            f"{len(absent)} of the {len(dev_ids)} id pairs in {ids_path} are not in {train_path} "
            f"(first: {' '.join(absent[0])}): are these files from the same release?")
    _, test_rows = _read_rows(test_path, _MRPC_COLUMNS, header=True)
    test = [_MRPC_TEST_HEADER] + [
        "\t".join([str(i)] + fields[1:]) for i, (_, fields) in enumerate(test_rows)]
    _write_lines(os.path.join(folder, "train.tsv"), train)
    _write_lines(os.path.join(folder, "dev.tsv"), dev)
    _write_lines(os.path.join(folder, "test.tsv"), test)
    shutil.copyfile(ids_path, os.path.join(folder, "dev_ids.tsv"))
    return folder


def _task_folder(root, task):
    """The task's folder inside an extracted archive: TASK/, else its only top folder, else root."""
    if os.path.isdir(os.path.join(root, task)):
        return os.path.join(root, task)
    tops = [n for n in os.listdir(root) if n != "__MACOSX" and not n.startswith(".")]
    if len(tops) == 1 and os.path.isdir(os.path.join(root, tops[0])):
        return os.path.join(root, tops[0])
    return root


def _count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def build_task(task, out, files):
    """Make out/TASK from the task's files ({key: _Origin}); return its path."""
    final = os.path.join(out, task)
    work = final + ".tmp"
    if os.path.lexists(work):
        shutil.rmtree(work)  # left by an interrupted run
    os.makedirs(work)
    try:
        if task == "MRPC":
            folder = _build_mrpc(files, os.path.join(work, task))
        elif task == "diagnostic":
            folder = os.path.join(work, task)
            os.makedirs(folder)
            shutil.copyfile(files[task].path, os.path.join(folder, "diagnostic.tsv"))
        else:
            archive = files[task].path
            root = safe_extract(archive, os.path.join(work, "extract"), kind="zip")
            folder = _task_folder(root, task)
            missing = [n for n in REQUIRED_FILES[task]
                       if not os.path.isfile(os.path.join(folder, n))]
            if missing:
                inside = os.path.relpath(folder, root)
                shown = [n if inside == "." else f"{inside}/{n}" for n in missing]
                raise PrepareError(
                    f"{archive} lacks {', '.join(shown)} (GLUE's {task} needs "
                    f"{', '.join(REQUIRED_FILES[task])}); nothing written to {final}")
        info = [f"GLUE {task}, written by preprocess/download_glue_data.py from:"]
        info += [f"  {o.where}  sha256 {o.sha256}" for o in files.values()]
        _write_lines(os.path.join(folder, "SOURCES.txt"), info)
        os.rename(folder, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


# ---------------------------------------------------------------- command line


def _run(a):
    out = os.path.abspath(a.out)
    tasks = parse_tasks(a.tasks)
    overrides = parse_sha256(a.sha256)
    archives = os.path.abspath(a.archives) if a.archives else None
    mirror = None if archives else (a.mirror or os.environ.get("GLUE_MIRROR", "").strip() or None)
    if archives and not os.path.isdir(archives):
        raise PrepareError(f"--archives {archives} is not a folder")
    os.makedirs(out, exist_ok=True)
    for task in tasks:
        final = os.path.join(out, task)
        if task_complete(final, task):
            print(f"{task}: {final} is already complete; skipped (delete it to rebuild)")
            continue
        print(f"{task}:")
        files = {src.key: obtain(src, out, archives=archives, mirror=mirror,
                                 overrides=overrides, timeout=a.timeout)
                 for src in task_sources(task)}
        build_task(task, out, files)
        counts = ", ".join(f"{n} {_count_lines(os.path.join(final, n))} lines"
                           for n in REQUIRED_FILES[task])
        print(f"{task}: {counts} -> {final}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Source precedence: --archives > --mirror > $GLUE_MIRROR > the built-in URLs.",
    )
    p.add_argument("--out", required=True, help="output folder: OUT/{TASK}/, OUT/download/")
    p.add_argument("--tasks", default="all",
                   help=f"'all' or a comma list of: {','.join(TASKS)} (default: all)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--mirror", metavar="BASE_URL",
                     help="download BASE_URL/{TASK}.zip etc. instead (also: $GLUE_MIRROR)")
    src.add_argument("--archives", metavar="DIR",
                     help="use local copies: DIR/{TASK}.zip, DIR/diagnostic.tsv, the MRPC files")
    p.add_argument("--sha256", action="append", default=[], metavar="KEY=HEX",
                   help="expected sha256 of a file (KEY: a task, or an MRPC file name); "
                        "repeatable; overrides the known one")
    return cli_main(p, _run, argv)  # adds --timeout; errors are printed plainly, exit status 2


if __name__ == "__main__":
    sys.exit(main())
