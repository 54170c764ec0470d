"""Uploaded blobs (RFC 8620 §6.1), one store per user under ``<user dir>/uploads/``.

Layout, one directory (mode 0700) per user:

- ``U<32 chars>`` holds a blob's octets; its name is its blob id. The file exists only once
  the upload is complete: data is written to a ``.tmp-*`` file, synced, then renamed, so
  a blob id never names partial data, not even after a crash.
- ``U<32 chars>.type`` beside it holds the media type given at upload (UTF-8 text). It is
  renamed into place before the data file, so a visible blob always has its type.
- ``.tmp-*`` files are uploads in progress (or left by a crash).

A blob's upload time is its data file's modification time, set at commit from the store's
clock (injectable, for tests).

Ids are ``"U"`` plus ``secrets.token_urlsafe(24)``: 32 characters of ``[A-Za-z0-9_-]``,
unguessable and of fixed length (so a part suffix, ``_<section>``, splits off unambiguously),
and never equal to a message blob id, which starts with "B". The store of a user is reached
only through that user's directory, so another user's blob id is simply not found.

bridge tracks no references to uploads: a blob used by Email/set or Email/import becomes a
message upstream, with blob ids of its own. So every upload counts as unreferenced and is
deleted once it is older than an hour (RFC 8620 §6: "MUST NOT be deleted for at least 1
hour from the time of upload"); ``put`` does that sweep itself, at most once a minute.
Before then, only a user's upload quota (``make_room``) deletes blobs, oldest first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

log = logging.getLogger("bridge.store")

PREFIX = "U"
# token_urlsafe(24) encodes 24 random bytes as exactly 32 characters.
ID_LENGTH = 1 + 32
_ID = re.compile(r"U[A-Za-z0-9_-]{32}")
TYPE_SUFFIX = ".type"
TEMP_PREFIX = ".tmp-"
DEFAULT_TYPE = "application/octet-stream"
MAX_AGE = 3600.0
RECLAIM_INTERVAL = 60.0


def is_upload_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


class UploadedBlob(NamedTuple):
    blob_id: str
    type: str
    size: int


class StoredBlob(NamedTuple):
    path: Path
    type: str
    size: int


class UploadWriter:
    """One upload in progress: ``write`` chunks, then ``commit`` (or ``abort``). Used as a
    context manager it aborts unless committed, so an exception leaves no file behind."""

    def __init__(self, store: UploadStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=store.directory)
        self._path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self.size = 0
        self._done = False

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.size += len(chunk)

    def write_within(self, chunk: bytes, quota: int) -> bool:
        """``write``, once the store made room for the chunk in ``quota``; False (nothing
        written) when it could not."""
        if not self._store.make_room(len(chunk), quota):
            return False
        self.write(chunk)
        return True

    def commit(self, media_type: str) -> UploadedBlob:
        blob_id = PREFIX + secrets.token_urlsafe(24)
        target = self._store.directory / blob_id
        try:
            self._file.flush()
            # The upload's time, by the store's clock, is what reclaim compares with.
            now = self._store._clock()
            os.utime(self._file.fileno(), (now, now))
            # Synced before the rename: after a crash the id names all of the data or nothing.
            os.fsync(self._file.fileno())
            self._file.close()
            _write_atomically(target.with_name(blob_id + TYPE_SUFFIX), media_type.encode())
            os.rename(self._path, target)
        except BaseException:
            self.abort()
            with contextlib.suppress(FileNotFoundError):
                target.with_name(blob_id + TYPE_SUFFIX).unlink()
            raise
        self._done = True
        self._store._finished(self._path)
        self._store.maybe_reclaim()
        return UploadedBlob(blob_id, media_type, self.size)

    def abort(self) -> None:
        """Drop the partial data. Cheap (close and unlink), so callers may run it anywhere."""
        if self._done:
            return
        self._done = True
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        self._store._finished(self._path)

    def __enter__(self) -> UploadWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.abort()


def _write_atomically(path: Path, data: bytes) -> None:
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.rename(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


class UploadStore:
    """A user's uploaded blobs. Thread-safe; every method does blocking file I/O."""

    def __init__(self, directory: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        # Wall-clock time, since ages are compared with file modification times.
        self._clock = clock
        self._lock = threading.Lock()
        self._last_reclaim = float("-inf")
        self._writing: set[str] = set()
        self._room_lock = threading.Lock()

    def begin(self) -> UploadWriter:
        """Start an upload. The directory is made on first use: most users never upload."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        writer = UploadWriter(self)
        with self._lock:
            self._writing.add(writer._path.name)
        return writer

    def put(self, chunks: Iterable[bytes], media_type: str) -> UploadedBlob:
        with self.begin() as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.commit(media_type)

    def open(self, blob_id: str) -> StoredBlob | None:
        """Where the blob's data is, its type and size; None if there is no such blob (or
        it is being reclaimed right now). The data file never changes once visible."""
        if not is_upload_id(blob_id):
            return None
        path = self.directory / blob_id
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        try:
            media_type = path.with_name(blob_id + TYPE_SUFFIX).read_text("utf-8").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            media_type = ""
        return StoredBlob(path, media_type or DEFAULT_TYPE, size)

    def maybe_reclaim(self) -> None:
        """``reclaim`` unless it ran less than a minute ago: a sweep lists the directory."""
        now = self._clock()
        with self._lock:
            if now - self._last_reclaim < RECLAIM_INTERVAL:
                return
            self._last_reclaim = now
        try:
            self.reclaim()
        except OSError:
            # The upload that triggered the sweep is stored all the same.
            log.warning("could not reclaim uploads in %s", self.directory, exc_info=True)

    def reclaim(self, older_than_seconds: float = MAX_AGE) -> int:
        """Delete the blobs uploaded more than ``older_than_seconds`` ago, with their type
        files, and leftovers of crashed uploads as old; returns how many blobs went."""
        cutoff = self._clock() - older_than_seconds
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        with self._lock:
            writing = set(self._writing)
        names = {entry.name for entry in entries}
        removed = 0
        for entry in entries:
            name = entry.name
            if name in writing:
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            if is_upload_id(name):
                # Data first: once it is gone the blob is gone, whatever happens next.
                _unlink(entry.path)
                _unlink(entry.path + TYPE_SUFFIX)
                removed += 1
            elif name.startswith(TEMP_PREFIX) or (
                name.endswith(TYPE_SUFFIX) and name[: -len(TYPE_SUFFIX)] not in names
            ):
                _unlink(entry.path)
        if removed:
            log.debug("reclaimed %d uploads in %s", removed, self.directory)
        return removed

    def make_room(self, needed: int, quota: int) -> bool:
        """Whether ``needed`` more octets fit in ``quota`` with what is stored and being
        written; if not, the oldest blobs are deleted until they do (RFC 8620 §6: "the
        server MUST delete unreferenced blobs in date order, oldest first, until there is
        room for the new blob"). False, deleting nothing, if uploads in progress alone
        leave no room."""
        with self._room_lock:  # two uploads must not both count the same blob as freed
            blobs: list[tuple[float, int, str]] = []
            used = 0
            try:
                entries = list(os.scandir(self.directory))
            except FileNotFoundError:
                return needed <= quota
            for entry in entries:
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                used += stat.st_size
                if is_upload_id(entry.name):
                    blobs.append((stat.st_mtime, stat.st_size, entry.path))
            if used - sum(size for _, size, _ in blobs) + needed > quota:
                return False  # deleting every blob would not be enough: keep them
            blobs.sort()
            while used + needed > quota and blobs:
                _, size, path = blobs.pop(0)
                _unlink(path)
                _unlink(path + TYPE_SUFFIX)
                used -= size
                log.debug("deleted an upload of %d octets to make room", size)
            return used + needed <= quota

    def _finished(self, temp_path: Path) -> None:
        with self._lock:
            self._writing.discard(temp_path.name)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
