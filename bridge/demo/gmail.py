"""A Gmail-shaped IMAP server for tests: a real Dovecot holds the mail, a small front on
127.0.0.1 speaks the part of Gmail's dialect bridge meets.

Google documents the dialect in "IMAP Extensions" (developers.google.com/gmail/imap/
imap-extensions): the X-GM-EXT-1 capability, SPECIAL-USE folders under ``[Gmail]/``,
X-GM-MSGID and X-GM-THRID (64-bit numbers, in FETCH and SEARCH), X-GM-LABELS (FETCH, STORE,
SEARCH) and SEARCH X-GM-RAW (Gmail's web search syntax).

How the front maps Gmail's model onto Dovecot
- Dovecot holds ``[Gmail]/All Mail`` (\\All) with every message that is neither in the Trash
  nor in Spam, once; each label is a folder holding a copy (INBOX for \\Inbox,
  ``[Gmail]/Sent Mail``, ``[Gmail]/Drafts``, ``[Gmail]/Important``, ``[Gmail]/Starred`` and
  user labels by name). ``[Gmail]/Trash`` and ``[Gmail]/Spam`` hold a message alone.
  Dovecot's X-GUID survives COPY, so the copies of one message share it.
- X-GM-MSGID: 63 bits of SHA-256 over the X-GUID; the same in every folder, stable.
- X-GM-THRID: the X-GM-MSGID of the oldest message (lowest All Mail UID) of its thread, as
  Dovecot's THREAD=REFERENCES (RFC 5256: references, then base subject) groups All Mail;
  as on Gmail, a thread is named after its first message. A message in Trash or Spam is
  its own thread here.
- X-GM-LABELS: the folders holding a copy, All Mail left out: \\Inbox, \\Sent, \\Drafts,
  \\Important, \\Starred, \\Trash, \\Spam as atoms, user labels by their (modified UTF-7)
  folder name, quoted unless an atom, as in the document's example
  ``(\\Inbox \\Sent Important "Muy Importante")``.
- STORE +X-GM-LABELS copies into the label's folder (creating it for a new user label),
  -X-GM-LABELS expunges the copy there, X-GM-LABELS (no sign) does both. \\Starred is the
  \\Flagged flag: adding or removing it sets or clears \\Flagged on every copy, and a flag
  STORE that changes \\Flagged puts the message in or out of ``[Gmail]/Starred``.
- STORE +FLAGS / -FLAGS apply to every copy (Gmail's flags belong to the message), except
  \\Deleted, which belongs to the folder: expunging from a label folder removes that label.
- Expunging from All Mail, the last folder that shows a message here, does what Gmail's
  ImapSettings.expungeBehavior "trash" does (the other choices are "archive" and
  "deleteForever"): the message moves to the Trash and its labels go. From Trash or Spam
  it is deleted for ever; from ``[Gmail]/Starred`` it clears \\Flagged.
- COPY or MOVE to a label folder adds the label (no second copy when it is there already);
  to the Trash or Spam it removes every other label and All Mail; out of the Trash or Spam
  it comes back to All Mail. MOVE from a label folder also removes that label; MOVE from
  All Mail does not take it out of All Mail.
- APPEND to a label folder puts the message in All Mail too.
- SEARCH X-GM-MSGID n, X-GM-THRID n, X-GM-LABELS label and X-GM-RAW "query", each as the
  whole search (after an optional CHARSET). X-GM-RAW knows from:, to:, cc:, subject:,
  label:, in:inbox, is:unread, is:read, is:starred, quoted phrases and plain words, all
  ANDed; anything else (OR, -, has:, after:, ...) is answered BAD.

Commands that pass through (SELECT, STATUS, plain FETCH and SEARCH, ...) are Dovecot's
answers: its own items (X-GUID, PREVIEW, SAVEDATE) are not hidden when a client asks.
APPEND to ``[Gmail]/Starred`` does not set \\Flagged.

Not emulated (answered BAD or left out of CAPABILITY): IDLE, XLIST, COMPRESS, UTF8=ACCEPT,
AUTHENTICATE, STARTTLS, STORE FLAGS without a sign, X-GM criteria mixed with other search
keys, Gmail's settings (auto-expunge, "move to Trash" on delete), Gmail's own
conversation rules, sent mail arriving by SMTP. It is test infrastructure: every label query reads
all folders, fine for dozens of messages, not for thousands.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from imapclient import IMAPClient, imap_utf7

from bridge.demo.dovecot import Dovecot
from bridge.imap.responses import format_sequence_set

ALL_MAIL = "[Gmail]/All Mail"
TRASH = "[Gmail]/Trash"
SPAM = "[Gmail]/Spam"
STARRED = "[Gmail]/Starred"
BINS = {TRASH, SPAM}
# The folders Dovecot creates at login, with their SPECIAL-USE attribute.
GMAIL_FOLDERS = {
    ALL_MAIL: "\\All",
    "[Gmail]/Sent Mail": "\\Sent",
    "[Gmail]/Drafts": "\\Drafts",
    TRASH: "\\Trash",
    SPAM: "\\Junk",
    STARRED: "\\Flagged",
    "[Gmail]/Important": "\\Important",
}
# X-GM-LABELS names of the system labels and the folders that hold them.
SYSTEM_LABELS = {
    "\\Inbox": "INBOX",
    "\\Sent": "[Gmail]/Sent Mail",
    "\\Drafts": "[Gmail]/Drafts",
    "\\Important": "[Gmail]/Important",
    "\\Starred": STARRED,
    "\\Trash": TRASH,
    "\\Spam": SPAM,
}
_LABEL_OF_FOLDER = {folder: label for label, folder in SYSTEM_LABELS.items()}
# What the front serves end to end: Gmail's list less IDLE, XLIST, COMPRESS=DEFLATE,
# UTF8=ACCEPT and APPENDLIMIT (Dovecot does not enforce Gmail's limit).
CAPABILITIES = (
    b"IMAP4rev1 UNSELECT NAMESPACE QUOTA ID CHILDREN X-GM-EXT-1 UIDPLUS ENABLE MOVE "
    b"CONDSTORE ESEARCH LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE"
)
GREETING = b"* OK Gimap ready for requests from 127.0.0.1 (bridge test front)\r\n"
_PASSED_THROUGH = {
    b"NOOP", b"LOGOUT", b"ENABLE", b"SELECT", b"EXAMINE", b"CREATE", b"SUBSCRIBE",
    b"UNSUBSCRIBE", b"LSUB", b"STATUS", b"CHECK", b"UNSELECT", b"NAMESPACE",
    b"GETQUOTA", b"GETQUOTAROOT",
}  # fmt: skip
_LITERAL_END = re.compile(rb"\{(\d+)(\+?)\}\r\n$")
_CAPABILITY_CODE = re.compile(rb"\[CAPABILITY [^\]]*\]")
_FETCH_START = re.compile(rb"^\* (\d+) FETCH \(")
_GM_ITEM = re.compile(rb" ?\bX-GM-(MSGID|THRID|LABELS)\b", re.IGNORECASE)
# RFC 3501 §9 ATOM-CHAR: no "(", ")", "{", space, "%", "*", '"', "\\" or "]".
_ATOM = re.compile(r"[!#$&'+\-./0-9:;<=>?@A-Z^_`a-z|}~\[]+")
_RAW_TERM = re.compile(r'(?:(\w+):)?(?:"([^"]*)"|(\S+))')


class Refused(Exception):
    """A command the emulation does not serve: answered BAD with this text."""


def gm_id(guid: str) -> int:
    """A stable 63-bit number for a Dovecot X-GUID (Gmail's ids are unsigned 64-bit)."""
    return int.from_bytes(hashlib.sha256(guid.encode()).digest()[:8], "big") >> 1


def gmail_dovecot(users: dict[str, str]) -> Dovecot:
    """A Dovecot with Gmail's folders (not started)."""
    return Dovecot(users, special_folders=dict(GMAIL_FOLDERS))


def normalized(folders: set[str]) -> set[str]:
    """Gmail's invariant: Trash or Spam hold a message alone, else All Mail holds it."""
    for bin_folder in (TRASH, SPAM):
        if bin_folder in folders:
            return {bin_folder}
    return folders | {ALL_MAIL}


# -- the wire -------------------------------------------------------------------------


def read_unit(stream: BinaryIO, on_literal: Callable[[], None] | None = None) -> bytes:
    """One response, or (with ``on_literal``, called before each synchronizing literal is
    read) one client command whose literals become ``{n+}``, for Dovecot's LITERAL+."""
    parts: list[bytes] = []
    while True:
        line = stream.readline(1 << 20)
        if not line:
            raise EOFError
        match = _LITERAL_END.search(line)
        if match is None:
            parts.append(line)
            return b"".join(parts)
        if on_literal is not None:
            if not match.group(2):
                on_literal()
            line = line[: match.start()] + b"{%d+}\r\n" % int(match.group(1))
        parts.append(line)
        parts.append(stream.read(int(match.group(1))))


def tokens(data: bytes) -> list[Any]:
    """IMAP arguments: bytes for atoms, strings and literals, lists for parentheses."""
    stack: list[list[Any]] = [[]]
    pos = 0
    while pos < len(data):
        char = data[pos : pos + 1]
        if char in b" \r\n":
            pos += 1
        elif char == b"(":
            stack.append([])
            pos += 1
        elif char == b")":
            if len(stack) == 1:
                raise Refused("unbalanced parentheses")
            inner = stack.pop()
            stack[-1].append(inner)
            pos += 1
        elif char == b'"':
            end = pos + 1
            value = bytearray()
            while end < len(data) and data[end : end + 1] != b'"':
                if data[end : end + 1] == b"\\":
                    end += 1
                value += data[end : end + 1]
                end += 1
            stack[-1].append(bytes(value))
            pos = end + 1
        elif char == b"{":
            match = re.match(rb"\{(\d+)\+?\}\r\n", data[pos:])
            if match is None:
                raise Refused("bad literal")
            start = pos + match.end()
            stack[-1].append(data[start : start + int(match.group(1))])
            pos = start + int(match.group(1))
        else:
            match = re.match(rb"[^ ()\r\n]+", data[pos:])
            assert match is not None
            stack[-1].append(match.group())
            pos += match.end()
    if len(stack) != 1:
        raise Refused("unbalanced parentheses")
    return stack[0]


def folder_name(raw: bytes) -> str:
    name = imap_utf7.decode(raw)
    return "INBOX" if name.upper() == "INBOX" else name


def label_folder(label: bytes) -> str:
    for name, folder in SYSTEM_LABELS.items():
        if label.decode("utf-8", "replace").lower() == name.lower():
            return folder
    return folder_name(label)


def label_atom(folder: str) -> bytes:
    if folder in _LABEL_OF_FOLDER:
        return _LABEL_OF_FOLDER[folder].encode()
    encoded = imap_utf7.encode(folder)
    if _ATOM.fullmatch(encoded.decode("ascii")):
        return encoded
    return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def labels_item(folders: Iterable[str]) -> bytes:
    labels = sorted(label_atom(f) for f in folders if f != ALL_MAIL)
    return b"X-GM-LABELS (" + b" ".join(labels) + b")"


@dataclass
class Row:
    """One message of the selected folder, as the front looked it up."""

    seq: int
    uid: int
    guid: str
    flags: list[bytes] = field(default_factory=list)


# -- the index: where each message is, and its thread ---------------------------------


class Index:
    """A second Dovecot session of the same user: reads every folder, copies, expunges."""

    def __init__(self, dovecot: Dovecot, user: str, password: str) -> None:
        self.client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
        self.client.login(user, password)
        self._threads: dict[str, int] = {}
        self._threads_key: tuple[int, ...] = ()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.logout()

    def folders(self) -> list[str]:
        return [
            "INBOX" if name.upper() == "INBOX" else name
            for flags, _, name in self.client.list_folders()
            if not {f.lower() for f in flags} & {b"\\noselect", b"\\nonexistent"}
        ]

    def guids(self, folder: str) -> dict[str, int]:
        """X-GUID -> UID in one folder."""
        self.client.select_folder(folder, readonly=True)
        uids = self.client.search("ALL")
        if not uids:
            return {}
        found = self.client.fetch(uids, ["X-GUID"])
        return {data[b"X-GUID"].decode(): uid for uid, data in found.items()}

    def locations(self) -> dict[str, dict[str, int]]:
        """X-GUID -> {folder: UID} over every folder."""
        where: dict[str, dict[str, int]] = {}
        for folder in self.folders():
            for guid, uid in self.guids(folder).items():
                where.setdefault(guid, {})[folder] = uid
        return where

    def thread_ids(self) -> dict[str, int]:
        """X-GUID -> X-GM-THRID for All Mail, recomputed when All Mail changed."""
        # A new SELECT, not STATUS: Dovecot answers STATUS of the selected folder from the
        # session's own view, which may be stale.
        opened = self.client.select_folder(ALL_MAIL, readonly=True)
        key = tuple(int(opened.get(item, 0)) for item in (b"UIDVALIDITY", b"UIDNEXT", b"EXISTS"))
        if key != self._threads_key:
            guid_of = {uid: guid for guid, uid in self.guids(ALL_MAIL).items()}
            threads: dict[str, int] = {}
            for thread in self.client.thread("REFERENCES", "ALL") if guid_of else ():
                uids = list(_flatten(thread))
                root = gm_id(guid_of[min(uids)])
                threads.update({guid_of[uid]: root for uid in uids if uid in guid_of})
            self._threads, self._threads_key = threads, key
        return self._threads

    def settle(self, wanted: dict[str, set[str]]) -> None:
        """Copy and expunge until each message is in exactly the folders wanted."""
        where = self.locations()
        known = set(self.folders())
        copies: dict[tuple[str, str], dict[str, int]] = {}
        removals: dict[str, list[int]] = {}
        for guid, folders in wanted.items():
            here = where.get(guid, {})
            if not here:
                continue
            source = ALL_MAIL if ALL_MAIL in here else min(here)
            for target in sorted(folders - here.keys()):
                copies.setdefault((source, target), {})[guid] = here[source]
            for folder in here.keys() - folders:
                removals.setdefault(folder, []).append(here[folder])
        # Copies first: a message is never in no folder, even if a step fails.
        for (source, target), moved in copies.items():
            if target not in known:
                self.client.create_folder(target)
                known.add(target)
            self.client.select_folder(source, readonly=True)
            self.client.copy(list(moved.values()), target)
            self.undelete(target, set(moved))
        for folder, uids in removals.items():
            self.client.select_folder(folder)
            self.client.add_flags(uids, [b"\\Deleted"], silent=True)
            self.client.expunge(uids)

    def undelete(self, folder: str, guids: set[str]) -> None:
        """Copies made from a message marked \\Deleted (expunged from All Mail) must not
        carry the mark into their new folder."""
        uids = [uid for guid, uid in self.guids(folder).items() if guid in guids]
        if uids:
            self.client.select_folder(folder)
            self.client.remove_flags(uids, [b"\\Deleted"], silent=True)

    def set_flags(self, guids: Iterable[str], flags: list[bytes], add: bool) -> None:
        """Add or remove ``flags`` on every copy of the messages."""
        wanted = set(guids)
        for folder in self.folders():
            uids = [uid for guid, uid in self.guids(folder).items() if guid in wanted]
            if uids:
                self.client.select_folder(folder)
                if add:
                    self.client.add_flags(uids, flags, silent=True)
                else:
                    self.client.remove_flags(uids, flags, silent=True)

    def uidvalidity(self, folder: str) -> int:
        return int(self.client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])


def _flatten(thread: Any) -> Iterable[int]:
    if isinstance(thread, int):
        yield thread
        return
    for item in thread:
        yield from _flatten(item)


# -- one client session ---------------------------------------------------------------


class _Session(socketserver.StreamRequestHandler):
    server: GmailFront

    def setup(self) -> None:
        super().setup()
        dovecot = self.server.dovecot
        self.upstream = socket.create_connection((dovecot.host, dovecot.port))
        # Small writes both ways: without NODELAY, Nagle and delayed ACKs add 40 ms a turn.
        for sock in (self.upstream, self.connection):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.up = self.upstream.makefile("rb")
        read_unit(self.up)  # Dovecot's greeting: the client gets Gmail's
        self.index: Index | None = None
        self.selected: str | None = None
        self.tags = 0

    def finish(self) -> None:
        if self.index is not None:
            self.index.close()
        with contextlib.suppress(OSError):
            self.upstream.close()
        super().finish()

    def handle(self) -> None:
        self.wfile.write(GREETING)
        while True:
            try:
                command = read_unit(self.rfile, self._continue)
            except (EOFError, OSError):
                return
            tag, _, rest = command.partition(b" ")
            try:
                if self._run(tag, rest):
                    return
            except Refused as exc:
                text = " ".join(str(exc).split()).encode("utf-8", "replace")
                self._send(tag + b" BAD " + text + b"\r\n")
            except (EOFError, OSError):
                return

    def _continue(self) -> None:
        self._send(b"+ go ahead\r\n")
        # imaplib sends a literal and its closing CRLF in two writes: Nagle holds the CRLF
        # back until the literal is ACKed, which a delayed ACK puts off by 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def _send(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    # -- dispatch ------------------------------------------------------------------------

    def _run(self, tag: bytes, rest: bytes) -> bool:
        """Serve one command; True when the session is over."""
        name, _, args = rest.partition(b" ")
        verb = name.upper().strip()
        uid = verb == b"UID"
        if uid:
            sub, _, args = args.partition(b" ")
            verb = sub.upper().strip()
        if verb == b"CAPABILITY":
            self._send(b"* CAPABILITY " + CAPABILITIES + b"\r\n" + tag + b" OK Success\r\n")
        elif verb == b"ID":
            self._send(
                b'* ID ("name" "GImap" "vendor" "Google, Inc." "support-url" '
                b'"http://mail.google.com/support")\r\n' + tag + b" OK Success\r\n"
            )
        elif verb == b"LOGIN" and not uid:
            self._login(tag, rest, args)
        elif self.index is None:
            raise Refused("log in first (LOGIN is the only mechanism emulated)")
        elif verb == b"LIST" and not uid:
            self._list(tag, rest, args)
        elif verb in _PASSED_THROUGH and not uid:
            reply = self._forward(tag + b" " + rest)
            self._track_selection(verb, args, reply)
            return verb == b"LOGOUT"
        elif verb in (b"DELETE", b"RENAME") and not uid:
            self._rename_or_delete(tag, rest, args)
        elif verb == b"FETCH":
            self._fetch(tag, rest, args, uid)
        elif verb == b"STORE":
            self._store(tag, rest, args, uid)
        elif verb in (b"COPY", b"MOVE"):
            self._copy(tag, args, uid, move=verb == b"MOVE")
        elif verb == b"SEARCH":
            self._search(tag, rest, args, uid)
        elif verb in (b"EXPUNGE", b"CLOSE"):
            self._expunge(tag, rest, args if uid else None)
            if verb == b"CLOSE":
                self.selected = None
        elif verb == b"APPEND" and not uid:
            self._append(tag, rest, args)
        else:
            raise Refused(f"{rest.split()[0].decode('ascii', 'replace')} is not emulated")
        return False

    # -- talking to Dovecot --------------------------------------------------------------

    def _forward(self, command: bytes, inject: Callable[[int], bytes] | None = None) -> bytes:
        """Send the client's command to Dovecot, relay its answer; the tagged line."""
        self.upstream.sendall(command)
        tag = command.partition(b" ")[0]
        while True:
            unit = _CAPABILITY_CODE.sub(b"[CAPABILITY " + CAPABILITIES + b"]", read_unit(self.up))
            if unit.startswith(b"* CAPABILITY "):
                unit = b"* CAPABILITY " + CAPABILITIES + b"\r\n"
            match = _FETCH_START.match(unit)
            extra = inject(int(match.group(1))) if match and inject is not None else b""
            if match and extra:
                unit = unit[: match.end()] + extra + b" " + unit[match.end() :]
            self._send(unit)
            if unit.startswith(tag + b" "):
                return unit

    def _side(self, command: bytes, keep: Callable[[bytes], bool]) -> tuple[list[bytes], bytes]:
        """A command of the front's own: the untagged units ``keep`` claims, and the tagged
        line; other untagged units (EXPUNGE, EXISTS, flag changes) go on to the client."""
        self.tags += 1
        tag = b"gm%d" % self.tags
        self.upstream.sendall(tag + b" " + command + b"\r\n")
        kept: list[bytes] = []
        while True:
            unit = read_unit(self.up)
            if unit.startswith(tag + b" "):
                return kept, unit
            if keep(unit):
                kept.append(unit)
            else:
                self._send(unit)

    def _rows(self, sequence: bytes, uid: bool) -> list[Row]:
        """The messages a sequence (or UID) set names in the selected folder."""
        prefix = b"UID " if uid else b""
        units, done = self._side(
            prefix + b"FETCH " + sequence + b" (UID X-GUID FLAGS)",
            lambda unit: _FETCH_START.match(unit) is not None and b"X-GUID" in unit,
        )
        if b" OK " not in done:
            raise Refused(done.partition(b" ")[2].decode("ascii", "replace").strip())
        rows = []
        for unit in units:
            seq = int(_FETCH_START.match(unit).group(1))  # type: ignore[union-attr]
            uid_match = re.search(rb"\bUID (\d+)", unit)
            guid_match = re.search(rb'X-GUID "?([^" )]+)', unit)
            flags_match = re.search(rb"FLAGS \(([^)]*)\)", unit)
            assert uid_match and guid_match and flags_match
            flags = flags_match.group(1).split()
            rows.append(Row(seq, int(uid_match.group(1)), guid_match.group(1).decode(), flags))
        return rows

    def _deleted(self, uids: bytes | None) -> list[Row]:
        """The messages marked \\Deleted (among ``uids``) in the selected folder."""
        criteria = b"DELETED" + (b" UID " + uids if uids else b"")
        units, _ = self._side(b"UID SEARCH " + criteria, lambda unit: unit.startswith(b"* SEARCH"))
        found = [int(n) for unit in units for n in unit.split()[2:]]
        return self._rows(format_sequence_set(found).encode(), uid=True) if found else []

    def _catch_up(self) -> None:
        """Let Dovecot tell the client what the front changed (EXPUNGE, EXISTS, FETCH)."""
        self._side(b"NOOP", lambda unit: False)

    @property
    def _index(self) -> Index:
        assert self.index is not None
        return self.index

    # -- commands ------------------------------------------------------------------------

    def _login(self, tag: bytes, rest: bytes, args: bytes) -> None:
        parts = tokens(args)
        if len(parts) != 2 or not all(isinstance(p, bytes) for p in parts):
            raise Refused("LOGIN needs a user name and a password")
        reply = self._forward(tag + b" " + rest)
        if reply.split(b" ")[1:2] == [b"OK"]:
            user, password = (p.decode() for p in parts)
            self.index = Index(self.server.dovecot, user, password)

    def _track_selection(self, verb: bytes, args: bytes, reply: bytes) -> None:
        if verb in (b"SELECT", b"EXAMINE"):
            ok = reply.split(b" ")[1:2] == [b"OK"]
            self.selected = folder_name(tokens(args)[0]) if ok else None
        elif verb == b"UNSELECT":
            self.selected = None

    def _list(self, tag: bytes, rest: bytes, args: bytes) -> None:
        """LIST as Dovecot answers it, plus the ``[Gmail]`` parent Gmail lists and Maildir++
        has no folder for (only for a plain LIST "" of "*" or "%")."""
        parts = tokens(args)
        if len(parts) >= 2 and parts[0] == b"" and parts[1] in (b"*", b"%"):
            self._send(b'* LIST (\\HasChildren \\Noselect) "/" "[Gmail]"\r\n')
        self._forward(tag + b" " + rest)

    def _rename_or_delete(self, tag: bytes, rest: bytes, args: bytes) -> None:
        name = folder_name(tokens(args)[0])
        if name in GMAIL_FOLDERS or name == "INBOX":
            self._send(tag + b" NO [CANNOT] System labels cannot be changed\r\n")
            return
        self._forward(tag + b" " + rest)

    def _fetch(self, tag: bytes, rest: bytes, args: bytes, uid: bool) -> None:
        wanted = {m.group(1).upper() for m in _GM_ITEM.finditer(args)}
        if not wanted:
            self._forward(tag + b" " + rest)
            return
        sequence, _, items = args.partition(b" ")
        rows = {row.seq: row for row in self._rows(sequence, uid)}
        where = self._index.locations() if b"LABELS" in wanted else {}
        threads = self._index.thread_ids() if b"THRID" in wanted else {}

        def gmail_items(seq: int) -> bytes:
            row = rows.get(seq)
            if row is None:
                return b""
            parts = []
            if b"MSGID" in wanted:
                parts.append(b"X-GM-MSGID %d" % gm_id(row.guid))
            if b"THRID" in wanted:
                parts.append(b"X-GM-THRID %d" % threads.get(row.guid, gm_id(row.guid)))
            if b"LABELS" in wanted:
                parts.append(labels_item(where.get(row.guid, {})))
            return b" ".join(parts)

        remaining = _GM_ITEM.sub(b"", items).replace(b"( ", b"(")
        if remaining.strip() in (b"()", b""):
            for row in rows.values():
                own_uid = b" UID %d" % row.uid if uid else b""
                self._send(b"* %d FETCH (%s%s)\r\n" % (row.seq, gmail_items(row.seq), own_uid))
            self._send(tag + b" OK Success\r\n")
            return
        prefix = b"UID " if uid else b""
        self._forward(tag + b" " + prefix + b"FETCH " + sequence + b" " + remaining, gmail_items)

    def _store(self, tag: bytes, rest: bytes, args: bytes, uid: bool) -> None:
        parts = tokens(args)
        if len(parts) < 3 or not isinstance(parts[1], bytes):
            raise Refused("STORE needs a set, an item and a value")
        sequence, item = parts[0], parts[1].upper()
        values = parts[2] if isinstance(parts[2], list) else parts[2:]
        sign = item[:1] if item[:1] in (b"+", b"-") else b""
        silent = item.endswith(b".SILENT")
        base = item.lstrip(b"+-").removesuffix(b".SILENT")
        if base == b"X-GM-LABELS":
            self._store_labels(tag, sequence, sign, values, uid, silent)
        elif base == b"FLAGS" and sign:
            self._store_flags(tag, rest, sequence, sign == b"+", values, uid)
        else:
            raise Refused("STORE without + or - is not emulated")

    def _store_flags(
        self, tag: bytes, rest: bytes, sequence: bytes, add: bool, flags: list[bytes], uid: bool
    ) -> None:
        reply = self._forward(tag + b" " + rest)
        if reply.split(b" ")[1:2] != [b"OK"]:
            return
        rows = self._rows(sequence, uid)
        shared = [f for f in flags if f.lower() not in (b"\\deleted", b"\\recent")]
        guids = {row.guid for row in rows}
        if shared:
            self._index.set_flags(guids, shared, add)
        if b"\\flagged" in {f.lower() for f in flags}:
            where = self._index.locations()
            self._index.settle(
                {g: (set(where[g]) | {STARRED} if add else set(where[g]) - {STARRED})
                 for g in guids if g in where and not set(where[g]) & BINS}
            )  # fmt: skip
        self._catch_up()

    def _store_labels(
        self, tag: bytes, sequence: bytes, sign: bytes, labels: list[Any], uid: bool, silent: bool
    ) -> None:
        if not all(isinstance(label, bytes) for label in labels):
            raise Refused("X-GM-LABELS takes a list of labels")
        rows = self._rows(sequence, uid)
        named = {label_folder(label) for label in labels}
        where = self._index.locations()
        wanted: dict[str, set[str]] = {}
        for row in rows:
            current = set(where.get(row.guid, {}))
            if sign == b"+":
                new = (current - BINS if not named & BINS else current) | named
            elif sign == b"-":
                new = current - named
            else:
                new = set(named)
            wanted[row.guid] = normalized(new)
        self._index.settle(wanted)
        for guid, folders in wanted.items():
            before = set(where.get(guid, {}))
            if (STARRED in folders) != (STARRED in before):
                self._index.set_flags([guid], [b"\\Flagged"], STARRED in folders)
        if not silent:
            where = self._index.locations()
            for row in rows:
                own_uid = b" UID %d" % row.uid if uid else b""
                item = labels_item(where.get(row.guid, {}))
                self._send(b"* %d FETCH (%s%s)\r\n" % (row.seq, item, own_uid))
        self._catch_up()
        self._send(tag + b" OK Success\r\n")

    def _copy(self, tag: bytes, args: bytes, uid: bool, move: bool) -> None:
        parts = tokens(args)
        if len(parts) != 2 or self.selected is None:
            raise Refused("COPY needs a set and a folder, in a selected folder")
        target = folder_name(parts[1])
        if target not in self._index.folders():
            self._send(tag + b" NO [TRYCREATE] No folder " + parts[1] + b"\r\n")
            return
        rows = self._rows(parts[0], uid)
        where = self._index.locations()
        wanted: dict[str, set[str]] = {}
        for row in rows:
            current = set(where.get(row.guid, {}))
            if target in BINS:
                new = {target}
            else:
                new = (current - BINS) | {target}
                if move and self.selected not in (ALL_MAIL, target):
                    new.discard(self.selected)
            wanted[row.guid] = normalized(new)
        self._index.settle(wanted)
        for row in rows:
            if (STARRED in wanted[row.guid]) != (STARRED in where.get(row.guid, {})):
                self._index.set_flags([row.guid], [b"\\Flagged"], STARRED in wanted[row.guid])
        placed = self._index.guids(target)
        copied = [(row.uid, placed[row.guid]) for row in rows if row.guid in placed]
        code = b""
        if copied:
            sources = format_sequence_set([s for s, _ in copied]).encode()
            targets = ",".join(str(t) for _, t in copied).encode()
            validity = self._index.uidvalidity(target)
            code = b"[COPYUID %d %s %s] " % (validity, sources, targets)
        if move:
            self._send(b"* OK " + code + b"Moved\r\n")
            code = b""
        self._catch_up()
        self._send(tag + b" OK " + code + b"Success\r\n")

    def _expunge(self, tag: bytes, rest: bytes, uids: bytes | None) -> None:
        folder = self.selected
        doomed = self._deleted(uids) if folder in (ALL_MAIL, STARRED) else []
        if doomed and folder == ALL_MAIL:
            # Gmail keeps what leaves the last folder that showed it: the Trash takes it.
            self._index.settle({row.guid: {TRASH} for row in doomed})
        elif doomed:
            self._index.set_flags({row.guid for row in doomed}, [b"\\Flagged"], add=False)
        self._forward(tag + b" " + rest)

    def _append(self, tag: bytes, rest: bytes, args: bytes) -> None:
        target = folder_name(tokens(args)[0])
        reply = self._forward(tag + b" " + rest)
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", reply)
        if match is None or target in BINS or target == ALL_MAIL:
            return
        self._index.client.select_folder(target, readonly=True)
        self._index.client.copy([int(match.group(1))], ALL_MAIL)

    def _search(self, tag: bytes, rest: bytes, args: bytes, uid: bool) -> None:
        parts = tokens(args)
        if not any(isinstance(p, bytes) and p.upper().startswith(b"X-GM-") for p in parts):
            self._forward(tag + b" " + rest)
            return
        if len(parts) >= 2 and parts[0].upper() == b"CHARSET":
            parts = parts[2:]
        if len(parts) != 2 or not isinstance(parts[1], bytes) or self.selected is None:
            raise Refused("an X-GM search key must be the whole search, in a selected folder")
        key, value = parts[0].upper(), parts[1]
        if key == b"X-GM-RAW":
            criteria, only = self._raw_criteria(value.decode("utf-8", "replace"))
        elif key == b"X-GM-LABELS":
            criteria, only = [], self._in_label(label_folder(value))
        elif key in (b"X-GM-MSGID", b"X-GM-THRID") and value.isdigit():
            criteria, only = [], self._with_id(key, int(value))
        else:
            raise Refused(f"{key.decode('ascii', 'replace')} is not emulated")
        if only is not None:
            if not only:
                self._send(b"* SEARCH\r\n" + tag + b" OK Success\r\n")
                return
            criteria.append(b"UID " + format_sequence_set(only).encode())
        prefix = b"UID " if uid else b""
        command = b"SEARCH CHARSET UTF-8 " + b" ".join(criteria or [b"ALL"])
        self._forward(tag + b" " + prefix + command + b"\r\n")

    def _uids_here(self, keep: Callable[[str], bool]) -> list[int]:
        assert self.selected is not None
        return sorted(uid for guid, uid in self._index.guids(self.selected).items() if keep(guid))

    def _in_label(self, folder: str) -> list[int]:
        members = set(self._index.guids(folder)) if folder in self._index.folders() else set()
        return self._uids_here(lambda guid: guid in members)

    def _with_id(self, key: bytes, number: int) -> list[int]:
        if key == b"X-GM-MSGID":
            return self._uids_here(lambda guid: gm_id(guid) == number)
        threads = self._index.thread_ids()
        return self._uids_here(lambda guid: threads.get(guid, gm_id(guid)) == number)

    def _raw_criteria(self, query: str) -> tuple[list[bytes], list[int] | None]:
        """Gmail's search words as Dovecot SEARCH keys, and the UIDs label: allows."""
        criteria: list[bytes] = []
        only: set[int] | None = None
        simple = {"from": b"FROM", "to": b"TO", "cc": b"CC", "subject": b"SUBJECT"}
        states = {"unread": b"UNSEEN", "read": b"SEEN", "starred": b"FLAGGED"}
        for match in _RAW_TERM.finditer(query):
            operator, phrase, word = match.group(1), match.group(2), match.group(3)
            value = phrase if phrase is not None else word
            if operator is None and (value.upper() == "OR" or value.startswith(("-", "{", "("))):
                raise Refused(f"X-GM-RAW: {value!r} is not emulated")
            operator = (operator or "").lower()
            if operator in simple:
                criteria.append(simple[operator] + b" " + _quoted(value))
            elif operator == "is" and value.lower() in states:
                criteria.append(states[value.lower()])
            elif operator in ("label", "in") and (operator == "label" or value.lower() == "inbox"):
                folder = "INBOX" if value.lower() == "inbox" else label_folder(value.encode())
                found = set(self._in_label(folder))
                only = found if only is None else only & found
            elif operator == "":
                criteria.append(b"TEXT " + _quoted(value))
            else:
                raise Refused(f"X-GM-RAW: {operator}: is not emulated")
        return criteria, None if only is None else sorted(only)


def _quoted(text: str) -> bytes:
    data = text.encode("utf-8")
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class GmailFront(socketserver.ThreadingTCPServer):
    """The front: listens on 127.0.0.1, one Dovecot session (and one index) per client."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, dovecot: Dovecot) -> None:
        self.dovecot = dovecot
        super().__init__(("127.0.0.1", 0), _Session)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> GmailFront:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> GmailFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
