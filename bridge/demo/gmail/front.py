"""The front: a small IMAP server on 127.0.0.1 that passes most commands to Dovecot and
serves Gmail's own (see the package's docstring for the scope)."""

from __future__ import annotations

import contextlib
import re
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.demo.dovecot import Dovecot
from bridge.demo.gmail.index import Index
from bridge.demo.gmail.model import (
    ALL_MAIL,
    BINS,
    GMAIL_FOLDERS,
    LABELS_CHANGED,
    STARRED,
    TRASH,
    folder_name,
    gm_id,
    label_folder,
    labels_item,
    normalized,
)
from bridge.demo.gmail.wire import Refused, quoted, read_unit, tokens
from bridge.imap.responses import format_sequence_set

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
_CAPABILITY_CODE = re.compile(rb"\[CAPABILITY [^\]]*\]")
_FETCH_START = re.compile(rb"^\* (\d+) FETCH \(")
_GM_ITEM = re.compile(rb" ?\bX-GM-(MSGID|THRID|LABELS)\b", re.IGNORECASE)
_RAW_TERM = re.compile(r'(?:(\w+):)?(?:"([^"]*)"|(\S+))')
# The front's own keyword (model.LABELS_CHANGED) wherever Dovecot lists flags.
_LABELS_CHANGED = re.compile(
    rb"(?<=\()" + re.escape(LABELS_CHANGED) + rb" ?| " + re.escape(LABELS_CHANGED)
)


def _without_own_keyword(unit: bytes) -> bytes:
    return _LABELS_CHANGED.sub(b"", unit) if LABELS_CHANGED in unit else unit


@dataclass(frozen=True)
class Served:
    """One command a client sent: whose session, the folder it was about (the one named
    by SELECT, EXAMINE or STATUS, else the one selected) and its verb (FETCH for UID FETCH)."""

    user: str | None
    folder: str | None
    verb: str


@dataclass
class Row:
    """One message of the selected folder, as the front looked it up."""

    seq: int
    uid: int
    guid: str
    flags: list[bytes] = field(default_factory=list)


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
        self.user: str | None = None
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
        self._note(verb, args)
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

    def _note(self, verb: bytes, args: bytes) -> None:
        folder = self.selected
        if verb in (b"SELECT", b"EXAMINE", b"STATUS"):
            with contextlib.suppress(Refused, IndexError):
                folder = folder_name(tokens(args)[0])
        self.server.served.append(Served(self.user, folder, verb.decode("ascii", "replace")))

    # -- talking to Dovecot --------------------------------------------------------------

    def _forward(self, command: bytes, inject: Callable[[int], bytes] | None = None) -> bytes:
        """Send the client's command to Dovecot, relay its answer; the tagged line."""
        self.upstream.sendall(command)
        tag = command.partition(b" ")[0]
        while True:
            unit = _CAPABILITY_CODE.sub(b"[CAPABILITY " + CAPABILITIES + b"]", read_unit(self.up))
            unit = _without_own_keyword(unit)
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
                self._send(_without_own_keyword(unit))

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
            self.user = user

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
        doomed = self._deleted(uids) if folder is not None and folder not in BINS else []
        if doomed and folder == ALL_MAIL:
            # Gmail keeps what leaves the last folder that showed it: the Trash takes it.
            self._index.settle({row.guid: {TRASH} for row in doomed})
        elif doomed and folder == STARRED:
            self._index.set_flags({row.guid for row in doomed}, [b"\\Flagged"], add=False)
        self._forward(tag + b" " + rest)
        if doomed and folder != ALL_MAIL:
            # Expunged from a label folder: that label is off the message.
            self._index.labels_changed({row.guid for row in doomed})

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
        returning = b""
        if len(parts) >= 2 and parts[0].upper() == b"RETURN" and isinstance(parts[1], list):
            returning = b"RETURN (" + b" ".join(parts[1]) + b") "
            parts = parts[2:]
        if len(parts) >= 2 and parts[0].upper() == b"CHARSET":
            parts = parts[2:]
        if len(parts) != 2 or not isinstance(parts[1], bytes) or self.selected is None:
            raise Refused("an X-GM search key must be the whole search, in a selected folder")
        key, value = parts[0].upper(), parts[1]
        if key == b"X-GM-RAW":
            query = value.decode("utf-8", "replace")
            self.server.raw_queries.append(query)
            criteria, only = self._raw_criteria(query)
        elif key == b"X-GM-LABELS":
            criteria, only = [], self._in_label(label_folder(value))
        elif key in (b"X-GM-MSGID", b"X-GM-THRID") and value.isdigit():
            criteria, only = [], self._with_id(key, int(value))
        else:
            raise Refused(f"{key.decode('ascii', 'replace')} is not emulated")
        if only is not None:
            # None of them: Dovecot still answers, in the form (SEARCH or ESEARCH) asked.
            criteria.append(b"UID " + format_sequence_set(only).encode() if only else b"NOT ALL")
        prefix = b"UID " if uid else b""
        command = b"SEARCH " + returning + b"CHARSET UTF-8 " + b" ".join(criteria or [b"ALL"])
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
        simple = {"from": b"FROM", "cc": b"CC", "bcc": b"BCC", "subject": b"SUBJECT"}
        states = {"unread": b"UNSEEN", "read": b"SEEN", "starred": b"FLAGGED"}
        for match in _RAW_TERM.finditer(query):
            operator, phrase, word = match.group(1), match.group(2), match.group(3)
            value = phrase if phrase is not None else word
            if operator is None and (value.upper() == "OR" or value.startswith(("-", "{", "("))):
                raise Refused(f"X-GM-RAW: {value!r} is not emulated")
            operator = (operator or "").lower()
            if operator == "to":
                # Google: to: finds a recipient, and Gmail counts Cc and Bcc ones too.
                text = quoted(value)
                criteria.append(b"OR TO " + text + b" OR CC " + text + b" BCC " + text)
            elif operator in simple:
                criteria.append(simple[operator] + b" " + quoted(value))
            elif operator == "is" and value.lower() in states:
                criteria.append(states[value.lower()])
            elif operator in ("label", "in") and (operator == "label" or value.lower() == "inbox"):
                folder = "INBOX" if value.lower() == "inbox" else label_folder(value.encode())
                found = set(self._in_label(folder))
                only = found if only is None else only & found
            elif operator == "":
                criteria.append(b"TEXT " + quoted(value))
            else:
                raise Refused(f"X-GM-RAW: {operator}: is not emulated")
        return criteria, None if only is None else sorted(only)


class GmailFront(socketserver.ThreadingTCPServer):
    """The front: listens on 127.0.0.1, one Dovecot session (and one index) per client."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, dovecot: Dovecot) -> None:
        self.dovecot = dovecot
        # Every command served, in order: what tests count (list.append is atomic).
        self.served: list[Served] = []
        # Every X-GM-RAW query served, in order: what a test reads to see what was asked.
        self.raw_queries: list[str] = []
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
