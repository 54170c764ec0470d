"""What one session with a folder open has been told about it since it last read the folder
whole: on a server without CONDSTORE, the delta a full flag scan would otherwise find.

A server tells every session that has a folder selected about the changes other sessions
make to it (RFC 3501 §5.2 and §7.4.1, RFC 9051 §7.5): a flag change as an unsolicited
``* n FETCH (FLAGS ...)``, an expunge as ``* n EXPUNGE``, new mail as ``* n EXISTS``, sent
with the answer to any command (NOOP, IDLE included). Sequence numbers are the UIDs in
ascending order (RFC 3501 §2.3.1.2): an EXPUNGE takes its number out and renumbers those
above it, new mail takes the numbers after the last. So a session that has held the folder
open without a break since a full scan, and has read every response since, knows the
folder exactly, provided nothing it was told is thrown away: the wire hands every reply's
untagged responses to ``observe`` (``Wire.observer``), whatever command they came with.

The rules:
- Until ``rebase`` (the UIDs of a full scan whose reply carried nothing unasked for) the
  view only counts what it sees (``events``), so the caller can tell a clean scan.
- FETCH n with FLAGS: new flags of ``uids[n-1]``; a UID sent along must agree, or the view
  is lost. FETCH past the known numbers is new mail: mapped when it carries its UID and
  takes the next number; otherwise left to the caller's fetch of new mail, which reads
  flags later than the response did.
- EXPUNGE n: ``uids[n-1]`` is gone (past the known numbers: new mail never seen).
- EXISTS n: the count; ``exists > len(uids)`` means new mail still to fetch.
- VANISHED, a number out of range, a UID out of order: lost. A lost view is never used
  again: the next sync scans the folder whole and rebases a new one.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.imap.responses import fetch_uid_and_flags, parse_vanished
from bridge.imap.wire import Untagged

_COUNTED = frozenset({"FETCH", "EXPUNGE", "EXISTS", "VANISHED"})


class ViewChanges:
    """What a view was told since it was last drained: flags by UID, expunged UIDs, and the
    highest UID the cache knew at the last drain (new mail is above it)."""

    __slots__ = ("expunged", "flags", "known_up_to")

    def __init__(
        self, flags: dict[int, tuple[str, ...]], expunged: set[int], known_up_to: int
    ) -> None:
        self.flags = flags
        self.expunged = expunged
        self.known_up_to = known_up_to


class FolderView:
    """One selected folder as this session has been told about it. Fed by the connection."""

    def __init__(self, name: str, uidvalidity: int, exists: int) -> None:
        self.name = name
        self.uidvalidity = uidvalidity
        self.exists = exists
        self.events = 0  # FETCH, EXPUNGE, EXISTS and VANISHED responses seen, ever
        self.lost = False
        self._uids: list[int] | None = None  # by sequence number - 1, once based
        self._flags: dict[int, tuple[str, ...]] = {}
        self._expunged: set[int] = set()
        self._known_up_to = 0
        # With QRESYNC: UIDs an unsolicited VANISHED named (this session's own expunges
        # among them), until ``take_vanished``. A server need not repeat them in a later
        # VANISHED (EARLIER): Cyrus, after this session's own UID MOVE, at times did not.
        self._vanished: set[int] = set()

    @property
    def based(self) -> bool:
        return self._uids is not None and not self.lost

    @property
    def mapped(self) -> int:
        """How many sequence numbers the view can name the UID of."""
        return len(self._uids or ())

    @property
    def known_up_to(self) -> int:
        """The highest UID mapped at the last drain or rebase: new mail since is above it."""
        return self._known_up_to

    @property
    def last_uid(self) -> int:
        return self._uids[-1] if self._uids else 0

    @property
    def quiet(self) -> bool:
        """Nothing told since the last drain: no flags, no expunge, no new mail."""
        return (
            not self._flags
            and not self._expunged
            and self.exists == self.mapped
            and self.last_uid == self._known_up_to
        )

    def rebase(self, uids: Iterable[int]) -> None:
        """Start over from a full scan the cache now holds: ``uids`` are every UID in the
        folder, and nothing before this counts any longer."""
        self._uids = sorted(uids)
        self._flags.clear()
        self._expunged.clear()
        self._known_up_to = self.last_uid
        self.lost = len(self._uids) != self.exists

    def drain(self) -> ViewChanges:
        """What changed since the last drain (or rebase); the caller brings the cache level
        with it and the view then counts from here. Fetch new mail first, so that it is
        mapped: the next drain names new mail from the highest UID mapped now."""
        changes = ViewChanges(self._flags, self._expunged, self._known_up_to)
        self._flags, self._expunged = {}, set()
        self._known_up_to = self.last_uid
        return changes

    def take_vanished(self) -> set[int]:
        """The UIDs unsolicited VANISHED responses named since the last call."""
        vanished, self._vanished = self._vanished, set()
        return vanished

    def observe(self, responses: Iterable[Untagged]) -> None:
        for response in responses:
            if response.kind not in _COUNTED:
                continue
            self.events += 1
            if response.kind == "VANISHED":
                earlier, uids = parse_vanished(response)
                if not earlier:
                    self._vanished.update(uids)
            if response.kind == "EXISTS" and response.number is not None:
                self.exists = response.number
            elif response.kind == "EXPUNGE":
                self.exists -= 1
                if self._uids is not None and not self.lost:
                    self._expunge(self._uids, response.number)
            elif self._uids is None or self.lost:
                continue  # only counted, until rebase
            elif response.kind == "FETCH":
                self._fetched(self._uids, response)
            else:
                self.lost = True  # VANISHED: QRESYNC is not in use on this path

    def _expunge(self, uids: list[int], number: int | None) -> None:
        if number is None or number < 1:
            self.lost = True
        elif number <= len(uids):
            uid = uids.pop(number - 1)
            self._expunged.add(uid)
            self._flags.pop(uid, None)

    def _fetched(self, uids: list[int], response: Untagged) -> None:
        number = response.number
        if number is None or number < 1:
            self.lost = True
            return
        if not any(b"FLAGS" in _line(record) or b"UID" in _line(record)
                   for record in response.data):  # fmt: skip
            return  # neither flags nor a UID: nothing the view keeps
        uid, flags = fetch_uid_and_flags(response)
        if number <= len(uids):
            if uid is not None and uid != uids[number - 1]:
                self.lost = True
                return
            if flags is not None:
                self._flags[uids[number - 1]] = flags
        elif number == len(uids) + 1 and uid is not None and uid > self.last_uid:
            uids.append(uid)
            if flags is not None:
                self._flags[uid] = flags


def _line(record: bytes | tuple[bytes, bytes]) -> bytes:
    return record[0] if isinstance(record, tuple) else record
