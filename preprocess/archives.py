"""Safe extraction of .tgz / .zip archives, shared by the preprocess/ downloaders: every member is
checked first, and absolute paths, `..` components, links and devices are refused (naming the member)
before anything is extracted. Failures raise PrepareError (prepare_errors.py)."""
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib

from prepare_errors import PrepareError


def archive_kind(path):
    """'zip', 'tgz' or None (not an archive), from the file's name."""
    name = os.path.basename(path).lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tgz", ".tar.gz")):
        return "tgz"
    return None


_TAR_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error,
               NotImplementedError)
_WHAT = {"tgz": "gzip-compressed tar archive", "zip": "zip archive"}


class _Archive:
    """A .tgz or .zip opened for reading, with its members listed (which reads the whole tar, so
    a truncated one fails here). Every failure is a PrepareError naming the archive."""

    def __init__(self, path, kind):
        self.path, self.kind = path, kind
        errors = _ZIP_ERRORS if kind == "zip" else _TAR_ERRORS
        self.handle = None
        try:
            if kind == "zip":
                self.handle = zipfile.ZipFile(path)
                self.members = self.handle.infolist()
            else:
                self.handle = tarfile.open(path, "r:gz")
                self.members = self.handle.getmembers()
        except FileNotFoundError:
            raise PrepareError(f"archive not found: {path}") from None
        except errors as e:
            if self.handle is not None:
                self.handle.close()
            raise PrepareError(f"{path} is not a readable {_WHAT[kind]} ({e})") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def test(self):
        """Read every byte (a zip's CRCs are checked; a tar was read when it was listed)."""
        if self.kind == "zip":
            try:
                bad = self.handle.testzip()
            except _ZIP_ERRORS as e:
                raise PrepareError(f"{self.path} is not a readable zip archive ({e})") from None
            if bad is not None:
                raise PrepareError(
                    f"{self.path} is not a readable zip archive (bad CRC in {bad!r})"
                )

    def name(self, m):
        return m.filename if self.kind == "zip" else m.name

    def unsafe_reason(self, m, dest_real):
        name = self.name(m)
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            return "absolute path"
        if ".." in parts:
            return "'..' in its path"
        if self.kind == "zip":
            # Unix zips keep the file type in the high 16 bits of external_attr (0: not recorded).
            mode = m.external_attr >> 16
            if stat.S_ISLNK(mode):
                try:
                    target = self.handle.read(m)[:200].decode("utf-8", "replace")
                except _ZIP_ERRORS:
                    target = "?"
                return f"symbolic link to {target!r}"
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                return "device or other special file"
        else:
            if m.issym():
                return f"symbolic link to {m.linkname!r}"
            if m.islnk():
                return f"hard link to {m.linkname!r}"
            if not (m.isfile() or m.isdir()):
                return "device or other special file"
        target = os.path.realpath(os.path.join(dest_real, name))
        if target != dest_real and not target.startswith(dest_real + os.sep):
            return "path leads outside the extraction folder"
        return None

    def extract_all(self, dest):
        if self.kind == "zip":
            self.handle.extractall(dest, members=self.members)
        else:
            # The 'data' filter (Python >= 3.11.4) repeats the checks and drops odd permission bits.
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            self.handle.extractall(dest, members=self.members, **kwargs)


def check_readable(path, kind=None, delete=False):
    """Raise PrepareError unless the archive at path opens and reads (kind None: by its name;
    a file that is not an archive by its name passes). With delete, a bad file is removed."""
    kind = kind or archive_kind(path)
    if kind is None:
        return
    try:
        with _Archive(path, kind) as a:
            a.test()
    except PrepareError:
        if delete:
            os.remove(path)
            raise PrepareError(f"{path} is not a readable {_WHAT[kind]} (deleted it)") from None
        raise


def safe_extract(archive, dest, kind=None):
    """Extract a .tgz or .zip (kind None: by its name, a .tgz unless it ends in .zip) into dest,
    via dest + '.tmp' renamed when complete, and return dest.

    Every member is checked before anything is written: an absolute path, a '..' component, a
    symbolic or hard link or a device/special file gets the whole archive refused (PrepareError
    naming the member). An existing dest is replaced.
    """
    kind = kind or archive_kind(archive) or "tgz"
    dest = os.path.abspath(dest)
    tmp = dest + ".tmp"
    with _Archive(archive, kind) as a:
        for m in a.members:
            reason = a.unsafe_reason(m, os.path.realpath(tmp))
            if reason:
                raise PrepareError(
                    f"refusing to extract {archive}: member {a.name(m)!r}: {reason}"
                )
        if os.path.lexists(tmp):
            shutil.rmtree(tmp)  # left by an interrupted run
        os.makedirs(tmp)
        try:
            a.extract_all(tmp)
        except (_ZIP_ERRORS if kind == "zip" else _TAR_ERRORS) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise PrepareError(f"could not extract {archive} ({e})") from None
    if os.path.lexists(dest):
        shutil.rmtree(dest)
    os.rename(tmp, dest)
    return dest


def extract_member(archive, suffix, dest):
    """The regular-file member of the .tgz `archive` whose path ends with `suffix` (after a "/"),
    copied to dest (via dest + '.tmp', renamed when complete); returns its name in the archive, or None
    when there is no such member. Only that member is read out: the rest of the archive is listed, not
    extracted."""
    with _Archive(archive, "tgz") as a:
        found = [m for m in a.members if a.name(m) == suffix or a.name(m).endswith("/" + suffix)]
        if not found:
            return None
        member = found[0]
        if not member.isfile():
            raise PrepareError(f"refusing to extract {archive}: member {a.name(member)!r} is not a regular file")
        tmp = dest + ".tmp"
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        try:
            with a.handle.extractfile(member) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
        except _TAR_ERRORS as e:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise PrepareError(f"could not extract {a.name(member)} from {archive} ({e})") from None
        os.replace(tmp, dest)
        return a.name(member)
