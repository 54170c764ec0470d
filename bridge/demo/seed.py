"""Put sample messages into a Dovecot account, fast.

Two routes with different trade-offs:

* ``write_maildir()`` writes the Maildir files Dovecot would have written itself. No
  server round trips, so it is the way to fill an account with tens of thousands of
  messages. It knows Dovecot's on-disk conventions (Maildir++ layout, modified UTF-7 folder
  names, the ``subscriptions`` and ``dovecot-keywords`` files) and nothing else.
* ``append_messages()`` goes through IMAP, so it works against any server and exercises
  the server's own parsing, at the price of speed.
"""

from __future__ import annotations

import itertools
import os
import socket
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from imapclient import IMAPClient, imap_utf7
from imapclient.exceptions import IMAPClientError

from bridge.demo.dovecot import Dovecot, mail_owner
from bridge.demo.sample import SampleMessage, demo_mailbox

__all__ = ["append_messages", "seed_demo", "write_maildir"]

# Maildir info letters for the IMAP system flags (\Recent is never stored).
_SYSTEM_FLAGS = {
    "\\draft": "D",
    "\\flagged": "F",
    "\\answered": "R",
    "\\seen": "S",
    "\\deleted": "T",
}
# Dovecot maps keywords to the letters a-z through dovecot-keywords: at most 26.
_MAX_KEYWORDS = 26
_MAILDIR_SUBDIRS = ("cur", "new", "tmp")
_SUBSCRIPTIONS_HEADER = b"V\t2\n\n"  # Dovecot 2.x format: version line, blank line
# Dovecot treats a dotlock as stale after this long (subscriptions: 30 s, uidlist: 2 min).
_LOCK_TIMEOUT = 30.0

# Filenames must be unique across calls and processes; a per-process counter orders
# messages that share an internal date the way they were written.
_sequence = itertools.count()


def write_maildir(mail_dir: Path, messages: Iterable[SampleMessage]) -> int:
    """Write ``messages`` as Maildir files under ``mail_dir`` (Dovecot, Maildir++ layout).

    ``mail_dir`` is the user's mail root (``Dovecot.mail_dir(user)``): INBOX lives in it
    directly, folder "A/B" in ``A/B/``. Flags become the Maildir info suffix, keywords go
    through ``dovecot-keywords`` (the 27th distinct keyword of a folder is dropped, as
    Maildir has no letter left for it), the internal date becomes the file's mtime.
    Every folder written to is subscribed. Works before Dovecot has ever seen the
    account and while it is running: new mail shows up on the next sync of the folder,
    new folders on the next login. Returns the number of messages written.
    """
    writer = _MaildirWriter(Path(mail_dir))
    for message in messages:
        writer.write(message)
    writer.subscribe_all()
    return writer.count


def append_messages(
    host: str,
    port: int,
    user: str,
    password: str,
    messages: Iterable[SampleMessage],
    batch: int = 100,
) -> int:
    """APPEND ``messages`` over IMAP (plain TCP), creating folders as needed.

    Uses MULTIAPPEND (RFC 3502) batches of up to ``batch`` messages when the server
    advertises it, one APPEND per message otherwise. Flags and internal dates are kept.
    Folder names use "/" and are translated to the server's personal namespace.
    Returns the number of messages appended.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    with IMAPClient(host, port, ssl=False, timeout=120) as client:
        # LITERAL+ lets imapclient stream a whole batch without waiting for the server,
        # in many small writes: without TCP_NODELAY Nagle's algorithm delays each one.
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.login(user, password)
        appender = _Appender(client, batch)
        for message in messages:
            appender.add(message)
        appender.flush()
        return appender.count


def seed_demo(dovecot: Dovecot, user: str) -> int:
    """Fill ``user``'s mailbox on ``dovecot`` with ``demo_mailbox()``."""
    return write_maildir(dovecot.mail_dir(user), demo_mailbox())


# --------------------------------------------------------------------------------------
# Maildir
# --------------------------------------------------------------------------------------


@dataclass
class _Folder:
    path: Path
    tmp: str
    cur: str
    subscription: str  # the line Dovecot keeps for this folder in "subscriptions"
    keywords: dict[str, str] | None = None  # lower-cased keyword -> Maildir letter
    full: set[str] = field(default_factory=set)  # keywords that found no free letter


class _MaildirWriter:
    def __init__(self, root: Path) -> None:
        uid, gid, _ = mail_owner()
        # chown is only needed (and only allowed) when we are not the mail owner: root.
        self.owner = None if (uid, gid) == (os.geteuid(), os.getegid()) else (uid, gid)
        self.root = root
        self.dir_mode = 0o700
        self._make_dir(root, parents=True)
        # Mirror the root's permissions, as Dovecot does for the folders it creates.
        self.dir_mode = stat.S_IMODE(root.stat().st_mode)
        self.file_mode = self.dir_mode & 0o666
        self.host = _maildir_host()
        self.unique = f"P{os.getpid()}R{os.urandom(4).hex()}"
        self.folders: dict[str, _Folder] = {}
        self.count = 0

    def write(self, message: SampleMessage) -> None:
        folder = self.folders.get(message.folder) or self._open_folder(message.folder)
        info = self._info(folder, message.flags)
        when = message.internal_date
        if when.tzinfo is None:
            raise ValueError("internal_date must be timezone-aware")
        seconds = int(when.timestamp())
        nanoseconds = seconds * 1_000_000_000 + when.microsecond * 1000
        raw = message.raw
        # W= is the size with CRLF line endings (RFC822.SIZE); giving it spares Dovecot
        # from reading the file to compute it.
        virtual = len(raw) + raw.count(b"\n") - raw.count(b"\r\n")
        # Dovecot assigns UIDs to new files sorted by the time, then the M<usecs> part
        # of the name: UID order follows internal date order.
        base = f"{seconds}.M{when.microsecond}{self.unique}Q{next(_sequence):09d}.{self.host}"
        temp = f"{folder.tmp}/{base}"
        # Write in tmp/ and rename, so a running Dovecot never sees a partial file.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, self.file_mode)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            if self.owner is not None:
                os.fchown(fd, *self.owner)
            # Dovecot's Maildir takes INTERNALDATE from the file's mtime.
            os.utime(fd, ns=(nanoseconds, nanoseconds))
        finally:
            os.close(fd)
        os.rename(temp, f"{folder.cur}/{base},S={len(raw)},W={virtual}:2,{info}")
        self.count += 1

    def subscribe_all(self) -> None:
        if not self.folders:
            return
        path = self.root / "subscriptions"
        with _dotlock(path, self.host) as lock:
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                current = b""
            if current.startswith(_SUBSCRIPTIONS_HEADER):
                header, body = _SUBSCRIPTIONS_HEADER, current[len(_SUBSCRIPTIONS_HEADER) :]
            elif current:
                # A version 1 file (names with the separator as is): keep its format.
                header, body = b"", current
            else:
                header, body = _SUBSCRIPTIONS_HEADER, b""
            known = set(body.decode("utf-8", "replace").splitlines())
            added = []
            for folder in self.folders.values():
                line = folder.subscription if header else folder.subscription.replace("\t", "/")
                if line not in known:
                    known.add(line)
                    added.append(line)
            if not added:
                return
            if body and not body.endswith(b"\n"):
                body += b"\n"
            content = header + body + "".join(f"{line}\n" for line in added).encode()
            # Dovecot's own protocol: the new content goes into the lock file, which is
            # then renamed over the original.
            lock.replace(content, self.owner, self.file_mode)

    def _open_folder(self, name: str) -> _Folder:
        parts = _storage_names(name)
        # Maildir++: every folder is one directory below the root, ".Work.Projects".
        path = self.root / ("." + ".".join(parts)) if parts else self.root
        self._make_dir(path)
        for sub in _MAILDIR_SUBDIRS:
            self._make_dir(path / sub)
        subscription = "\t".join(_tab_escape(p) for p in parts) if parts else "INBOX"
        folder = _Folder(path, os.fspath(path / "tmp"), os.fspath(path / "cur"), subscription)
        self.folders[name] = folder
        return folder

    def _make_dir(self, path: Path, parents: bool = False) -> None:
        if path.is_dir():
            return
        if parents and not path.parent.is_dir():
            self._make_dir(path.parent, parents=True)
        try:
            path.mkdir(mode=self.dir_mode)
        except FileExistsError:
            return  # someone (Dovecot) was faster; theirs is as good as ours
        if self.owner is not None:
            os.chown(path, *self.owner)

    def _info(self, folder: _Folder, flags: Iterable[str]) -> str:
        letters = set()
        for flag in flags:
            letter = _SYSTEM_FLAGS.get(flag.lower())
            if letter is not None:
                letters.add(letter)
            elif not flag.startswith("\\"):
                keyword_letter = self._keyword_letter(folder, flag)
                if keyword_letter is not None:
                    letters.add(keyword_letter)
        # Maildir wants the letters in ASCII order: system flags (upper) then keywords.
        return "".join(sorted(letters))

    def _keyword_letter(self, folder: _Folder, keyword: str) -> str | None:
        key = keyword.lower()  # Dovecot compares keywords case-insensitively
        if folder.keywords is None:
            folder.keywords = _read_keywords(folder.path)
        letter = folder.keywords.get(key)
        if letter is None and key not in folder.full:
            letter = self._add_keyword(folder, keyword)
        return letter

    def _add_keyword(self, folder: _Folder, keyword: str) -> str | None:
        # Dovecot only changes dovecot-keywords while holding the uidlist lock. The file
        # must list the letter before any file using it appears in cur/, or Dovecot
        # would invent an "unknown-N" keyword for it.
        path = folder.path / "dovecot-keywords"
        with _dotlock(folder.path / "dovecot-uidlist", self.host):
            keywords = _read_keywords(folder.path)
            folder.keywords = keywords
            letter = keywords.get(keyword.lower())
            if letter is not None:
                return letter
            used = set(keywords.values())
            free = [
                chr(ord("a") + i) for i in range(_MAX_KEYWORDS) if chr(ord("a") + i) not in used
            ]
            if not free:
                folder.full.add(keyword.lower())
                return None
            lines = _keyword_lines(path)
            lines[ord(free[0]) - ord("a")] = keyword
            content = "".join(f"{index} {name}\n" for index, name in sorted(lines.items()))
            try:
                old_mtime = int(path.stat().st_mtime)
            except FileNotFoundError:
                old_mtime = 0
            temp = folder.path / f"dovecot-keywords.{self.unique}.tmp"
            temp.write_bytes(content.encode())
            if self.owner is not None:
                os.chown(temp, *self.owner)
            # Dovecot re-reads the file only when its mtime (in whole seconds) changed.
            mtime = max(int(time.time()), old_mtime + 1)
            os.utime(temp, (mtime, mtime))
            os.rename(temp, path)
            keywords[keyword.lower()] = free[0]
            return free[0]


def _storage_names(folder: str) -> tuple[str, ...]:
    """Directory names for ``folder`` below the mail root (empty for INBOX)."""
    if folder.upper() == "INBOX":
        return ()
    parts = folder.split("/")
    if parts[0].upper() == "INBOX":
        # INBOX is the root itself; its children would need Dovecot's separate
        # INBOX=... path handling, which this writer does not mimic.
        raise ValueError(f"folders below INBOX are not supported: {folder!r}")
    for part in parts:
        if not part or "." in part or "\0" in part:
            raise ValueError(f"folder name cannot be stored in Maildir++: {folder!r}")
    # Dovecot 2.3 stores names in modified UTF-7 unless the location says UTF-8.
    return tuple(imap_utf7.encode(part).decode("ascii") for part in parts)


def _tab_escape(name: str) -> str:
    # Dovecot's str_tabescape(): the subscription file uses TAB as its separator.
    return (
        name.replace("\x01", "\x011")
        .replace("\t", "\x01t")
        .replace("\r", "\x01r")
        .replace("\n", "\x01n")
    )


def _keyword_lines(path: Path) -> dict[int, str]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return {}
    lines = {}
    for line in text.splitlines():
        index, _, name = line.partition(" ")
        if index.isdigit() and int(index) < _MAX_KEYWORDS and name:
            lines[int(index)] = name
    return lines


def _read_keywords(folder_path: Path) -> dict[str, str]:
    return {
        name.lower(): chr(ord("a") + index)
        for index, name in _keyword_lines(folder_path / "dovecot-keywords").items()
    }


def _maildir_host() -> str:
    # The Maildir spec reserves "/" and ":"; Dovecot also splits the name on ",".
    host = socket.gethostname() or "localhost"
    return host.replace("/", "\\057").replace(":", "\\072").replace(",", "\\054")


class _Lock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.replaced = False

    def replace(self, content: bytes, owner: tuple[int, int] | None, mode: int) -> None:
        target = self.path.with_name(self.path.name.removesuffix(".lock"))
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        view = memoryview(content)
        while view:
            view = view[os.write(self.fd, view) :]
        os.fchmod(self.fd, mode)
        if owner is not None:
            os.fchown(self.fd, *owner)
        os.rename(self.path, target)
        self.replaced = True


@contextmanager
def _dotlock(path: Path, host: str) -> Iterator[_Lock]:
    """Dovecot-compatible dotlock for ``path``: ``<path>.lock`` created exclusively."""
    lock_path = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + _LOCK_TIMEOUT
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            break
        except FileExistsError:
            with suppress(FileNotFoundError):
                if time.time() - lock_path.stat().st_mtime > _LOCK_TIMEOUT:
                    lock_path.unlink()  # stale: its owner died
                    continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not lock {path}") from None
            time.sleep(0.01)
    lock = _Lock(lock_path, fd)
    try:
        # Dovecot's format: it can tell a dead owner's lock is stale right away.
        os.write(fd, f"{os.getpid()}:{host}".encode())
        yield lock
    finally:
        os.close(fd)
        if not lock.replaced:
            with suppress(FileNotFoundError):
                lock_path.unlink()


# --------------------------------------------------------------------------------------
# IMAP
# --------------------------------------------------------------------------------------

# Keep one MULTIAPPEND command at a sane size even when messages are large.
_MAX_BATCH_BYTES = 16 * 1024 * 1024


class _Appender:
    def __init__(self, client: IMAPClient, batch: int) -> None:
        self.client = client
        self.batch = batch
        self.multiappend = client.has_capability("MULTIAPPEND")
        self.prefix, self.separator = "", "/"
        if client.has_capability("NAMESPACE"):
            personal = client.namespace().personal
            if personal:
                self.prefix, separator = personal[0]
                self.separator = separator or "/"
        self.existing = {name for _flags, _delimiter, name in client.list_folders()}
        self.folder: str | None = None
        self.pending: list[dict[str, object]] = []
        self.pending_bytes = 0
        self.count = 0

    def add(self, message: SampleMessage) -> None:
        folder = self._server_name(message.folder)
        if folder != self.folder:
            self.flush()
            self._ensure(folder)
            self.folder = folder
        flags = tuple(f for f in message.flags if f.lower() != "\\recent")
        if not self.multiappend:
            self.client.append(folder, message.raw, flags, msg_time=message.internal_date)
            self.count += 1
            return
        self.pending.append({"msg": message.raw, "flags": flags, "date": message.internal_date})
        self.pending_bytes += len(message.raw)
        if len(self.pending) >= self.batch or self.pending_bytes >= _MAX_BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        assert self.folder is not None
        # imapclient returns a NO from MULTIAPPEND instead of raising it.
        status, data = self.client.multiappend(self.folder, self.pending)
        if status != "OK":
            raise IMAPClientError(f"MULTIAPPEND to {self.folder!r} failed: {data!r}")
        self.count += len(self.pending)
        self.pending = []
        self.pending_bytes = 0

    def _server_name(self, folder: str) -> str:
        if folder.upper() == "INBOX":
            return "INBOX"
        name = folder.replace("/", self.separator) if self.separator != "/" else folder
        return name if name.startswith(self.prefix) else self.prefix + name

    def _ensure(self, folder: str) -> None:
        if folder == "INBOX" or folder in self.existing:
            return
        try:
            self.client.create_folder(folder)
        except IMAPClientError as exc:
            # Lost a race, or the name exists with different case rules: fine either way.
            if "exist" not in str(exc).lower():
                raise
        self.existing.add(folder)
