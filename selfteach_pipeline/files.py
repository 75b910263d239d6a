"""The small file helpers the plugin, the pipelines, the report and preprocess/ share: sha256 of a file,
atomic writes (a temporary file beside the target, renamed when whole), staged output folders, the
umask, and telling a full disk from other errors. It imports neither torch nor fairseq (atomic_torch_save,
which needs torch, is fairseq_selfteach/core/checkpoint_io.py's)."""
import contextlib
import errno
import hashlib
import os
import shutil
import tempfile

from selfteach_pipeline.errors import disk_full


def sha256_of_file(path: str, chunk_size: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


def is_disk_full(error: BaseException) -> bool:
    """An OSError for a full device (ENOSPC, or EDQUOT: over quota), also where torch.save wraps it in a
    RuntimeError of its zip writer."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(error, RuntimeError) and "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def written_beside(path: str, suffix: str = ""):
    """A temporary file beside path, yielded as (fd, name), renamed onto path when the block ends well;
    on any error it is removed, and a full device becomes one DiskFullError naming path (whose previous
    version, if any, is then untouched)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    existed = os.path.exists(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    try:
        yield fd, tmp
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if is_disk_full(e):
            raise disk_full(path, existed) from e
        raise


def current_umask() -> int:
    """The process's umask (os.umask can only be read by setting it, so it is set back at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def usual_file_mode() -> int:
    """0666 less the umask: what open() would give; mkstemp's temporary files are private (0600)."""
    return 0o666 & ~current_umask()


def atomic_write_text(path: str, text: str) -> None:
    """Write text to a temporary file beside path, then rename it: path is whole or absent. The file
    gets the usual permissions (0666 less the umask), not mkstemp's private 0600."""
    with written_beside(path) as (fd, tmp):
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, usual_file_mode())


def atomic_copy(source: str, path: str) -> None:
    """Copy source to a temporary file beside path, then rename it: path is whole or absent."""
    with written_beside(path, ".pt") as (fd, tmp):
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(tmp, usual_file_mode())


# output folders: filled privately beside the final name, then renamed into place whole


def publish_dir(tmp, final):
    """Make the complete folder tmp (made by mkdtemp beside final, so private) the folder final, with
    the usual permissions. An older final is replaced only once the new one is complete, then removed."""
    os.chmod(tmp, 0o777 & ~current_umask())
    if os.path.lexists(final):
        old = tempfile.mkdtemp(prefix=os.path.basename(final) + ".old-", dir=os.path.dirname(final))
        os.replace(final, os.path.join(old, "replaced"))
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def staged_dir(final):
    """A private temporary folder beside final to fill in the with block; it becomes final
    (publish_dir) when the block ends without error, and is removed when it does not."""
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(final) + ".tmp-", dir=parent)
    try:
        yield tmp
        publish_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
