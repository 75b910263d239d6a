"""The preprocess/ scripts' expected failures, in a module of their own so that download.py and
archives.py both raise them without importing each other. The scripts import them from download."""


class PrepareError(Exception):
    """An expected failure (offline, bad checksum, bad archive...): main prints it, no traceback."""


class ChecksumError(PrepareError):
    """A file's sha256 is not the expected one."""


class NotFoundError(PrepareError):
    """HTTP 404 or 410: the file is not there (a mirror may hold it under another name)."""
