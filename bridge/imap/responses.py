"""Pure parsers: untagged responses in, typed results out. No I/O, so table-testable.

imapclient's lexer does the tokenising. Its atoms are loosely typed (an unquoted mailbox
called ``123`` comes back as an int, an atom ``NIL`` as None), so names and ids pass through
``_text``/``_mailbox`` before they become strings.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

from imapclient.exceptions import ProtocolError
from imapclient.response_parser import parse_fetch_response, parse_response

from bridge.imap.errors import UpstreamUnavailable
from bridge.imap.fastparse import parse_fetch_items
from bridge.imap.models import (
    MailboxListing,
    MailboxStatus,
    MessageMeta,
    QuotaResource,
    SelectResult,
)
from bridge.imap.quoting import decode_mailbox_name
from bridge.imap.wire import Reply, Untagged

log = logging.getLogger("bridge.imap")

# A VANISHED or ESEARCH set larger than this is not a real mailbox: refuse to expand it.
MAX_SET_SIZE = 10_000_000

# RFC 6154 and RFC 8457, keyed by the lower-case attribute as MailboxListing stores them.
SPECIAL_USES = {
    use.lower(): use
    for use in (
        "\\All",
        "\\Archive",
        "\\Drafts",
        "\\Flagged",
        "\\Junk",
        "\\Sent",
        "\\Trash",
        "\\Important",
    )
}


class ObjectIds(Enum):
    """Which stable message/folder ids a server offers."""

    OBJECTID = "objectid"  # RFC 8474: EMAILID, THREADID, MAILBOXID (Cyrus, ...)
    GMAIL = "gmail"  # X-GM-MSGID, X-GM-THRID
    DOVECOT = "dovecot"  # X-GUID for messages and folders

    @property
    def fetch_items(self) -> tuple[str, ...]:
        return {
            ObjectIds.OBJECTID: ("EMAILID", "THREADID"),
            ObjectIds.GMAIL: ("X-GM-MSGID", "X-GM-THRID"),
            ObjectIds.DOVECOT: ("X-GUID",),
        }[self]

    @property
    def status_item(self) -> str | None:
        return {ObjectIds.OBJECTID: "MAILBOXID", ObjectIds.DOVECOT: "X-GUID"}.get(self)

    @property
    def status_item_alone(self) -> bool:
        """Whether the folder id must be asked for in a STATUS of its own: Cyrus 3.6.1
        answers MAILBOXID asked beside other items with random bytes, different on every
        call; asked alone (in STATUS or LIST-STATUS), it answers right."""
        return self is ObjectIds.OBJECTID

    @property
    def extension(self) -> str:
        """The name a refusal of these ids is remembered by (Dovecot advertises none)."""
        return {
            ObjectIds.OBJECTID: "OBJECTID",
            ObjectIds.GMAIL: "X-GM-EXT-1",
            ObjectIds.DOVECOT: "X-GUID",
        }[self]


_MESSAGE_ID_ITEMS = {"EMAILID", "X-GM-MSGID", "X-GUID"}
_THREAD_ID_ITEMS = {"THREADID", "X-GM-THRID"}
_FOLDER_ID_ITEMS = {"MAILBOXID", "X-GUID"}


def _malformed(what: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"malformed {what} response")


def atoms(response: Untagged, what: str) -> tuple[Any, ...]:
    try:
        return parse_response(list(response.data))  # type: ignore[arg-type]
    except (ProtocolError, ValueError, IndexError) as exc:
        raise _malformed(what) from exc


def _text(value: Any) -> str:
    if value is None:
        return "NIL"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# RFC 8474 §4.1: an objectid is 1 to 255 characters of [A-Za-z0-9_-]. Gmail's ids are
# 64-bit numbers; Dovecot's X-GUID is a 32-digit hex number for mdbox and folders, the file's
# base name on Maildir (1796398562.M16045P29382.host,S=11,W=14): visible ASCII.
_RFC8474_ID = re.compile(rb"[A-Za-z0-9_-]{1,255}")
_OBJECT_ID_SYNTAX = {
    "EMAILID": _RFC8474_ID,
    "THREADID": _RFC8474_ID,
    "MAILBOXID": _RFC8474_ID,
    "X-GM-MSGID": re.compile(rb"[0-9]{1,20}"),
    "X-GM-THRID": re.compile(rb"[0-9]{1,20}"),
    "X-GUID": re.compile(rb"[!-~]{1,255}"),
}
_warned_bad_ids: set[str] = set()


def object_id(value: Any, item: str) -> str | None:
    """The id in an object-id item (``EMAILID (M123)``, ``X-GUID abc``, ``X-GM-MSGID 42``),
    or None when absent or not an id of that item's syntax: the one check every upstream id
    passes, since an id bridge takes is a key it keeps for good (Cyrus 3.6.1 can answer
    MAILBOXID with random bytes). A bad one is logged once per item name."""
    if isinstance(value, tuple):
        value = value[0] if len(value) == 1 else None
    if value is None:
        return None
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
    if _OBJECT_ID_SYNTAX[item].fullmatch(raw):
        return raw.decode("ascii")
    if item not in _warned_bad_ids:
        _warned_bad_ids.add(item)
        log.warning("upstream sent a malformed %s; treating it as absent", item)
    return None


def _mailbox(value: Any) -> str:
    raw = value if isinstance(value, bytes) else _text(value).encode("ascii", "replace")
    try:
        return decode_mailbox_name(raw)
    except ValueError:
        # A server that does not encode names in modified UTF-7: show the name as sent.
        log.warning("mailbox name from the server is not modified UTF-7")
        return raw.decode("utf-8", "replace")


def parse_capabilities(text: bytes | str) -> frozenset[str]:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    return frozenset(word.upper() for word in text.split())


# -- sequence sets ----------------------------------------------------------------------


def parse_sequence_set(text: bytes | str | int) -> list[int]:
    """``1:3,7,9:8`` -> [1, 2, 3, 7, 8, 9] (sorted, no duplicates). No ``*``."""
    if isinstance(text, int):
        return [text]
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    numbers: set[int] = set()
    for part in text.split(","):
        low, sep, high = part.partition(":")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError as exc:
            raise _malformed("sequence set") from exc
        first, last = min(first, last), max(first, last)
        if first < 1 or last - first + len(numbers) >= MAX_SET_SIZE:
            raise _malformed("sequence set")
        numbers.update(range(first, last + 1))
    return sorted(numbers)


def sequence_set_covers(text: str) -> Callable[[int], bool]:
    """Whether a number falls in a sequence set such as ``1:3,7,9:*``: ``*`` (the highest
    number in use) counts as open-ended, ``*`` alone as everything."""
    ranges: list[tuple[int, float]] = []
    for part in text.split(","):
        low, sep, high = part.partition(":")
        ends = [float("inf") if end == "*" else int(end) for end in (low, high if sep else low)]
        first = min(ends)
        ranges.append((1 if first == float("inf") else int(first), max(ends)))
    ranges.sort()
    starts = [first for first, _ in ranges]
    ends_so_far = list(itertools.accumulate((last for _, last in ranges), max))

    def covers(number: int) -> bool:
        index = bisect.bisect_right(starts, number) - 1
        return index >= 0 and number <= ends_so_far[index]

    return covers


def copied_uids(args: bytes | None) -> list[int]:
    """The destination UIDs of a COPYUID code, ``<uidvalidity> <source set> <dest set>``
    (RFC 4315 §3); empty if malformed."""
    words = (args or b"").split()
    if len(words) != 3:
        return []
    try:
        return parse_sequence_set(words[2])
    except UpstreamUnavailable:
        return []


def format_sequence_set(numbers: Iterable[int]) -> str:
    """The compact form of a set of numbers: [1, 2, 3, 7] -> "1:3,7"."""
    ordered = sorted(set(numbers))
    if not ordered:
        raise ValueError("an empty set has no sequence-set form")
    ranges: list[str] = []
    start = prev = ordered[0]
    for number in ordered[1:]:
        if number != prev + 1:
            ranges.append(f"{start}:{prev}" if start != prev else str(start))
            start = number
        prev = number
    ranges.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(ranges)


# -- LIST, LSUB, STATUS -----------------------------------------------------------------


class ListEntry:
    """One LIST/LSUB line, before STATUS and subscription data are joined to it."""

    __slots__ = ("attributes", "delimiter", "name")

    def __init__(self, name: str, delimiter: str | None, attributes: frozenset[str]) -> None:
        self.name = name
        self.delimiter = delimiter
        self.attributes = attributes

    def __repr__(self) -> str:
        return f"ListEntry({self.name!r}, {self.delimiter!r}, {sorted(self.attributes)!r})"


# The common shapes of LIST and STATUS lines, parsed without the general parser (which
# costs more than the server's answer on a warm sync). Anything else, literals and
# extended data included, falls back to it.
_QUOTED = rb'"(?:[^"\\\r\n]|\\.)*"'
_ASTRING = rb"(?:" + _QUOTED + rb'|[^\s(){}"\\]+)'
_LIST_LINE = re.compile(rb"\(([^()]*)\) (NIL|" + _QUOTED + rb") (" + _ASTRING + rb")")
_STATUS_LINE = re.compile(rb"(" + _ASTRING + rb") \(([^()]*)\)")
_UNESCAPE = re.compile(rb"\\(.)")


def _plain_line(response: Untagged) -> bytes | None:
    if len(response.data) == 1 and isinstance(response.data[0], bytes):
        return response.data[0].strip()
    return None


def _astring(value: bytes) -> bytes:
    if value.startswith(b'"'):
        return _UNESCAPE.sub(rb"\1", value[1:-1])
    return value


def _fast_list(response: Untagged) -> ListEntry | None:
    line = _plain_line(response)
    match = _LIST_LINE.fullmatch(line) if line is not None else None
    if match is None:
        return None
    flags, delimiter, name = match.groups()
    attributes = frozenset(flag.decode("ascii", "replace").lower() for flag in flags.split())
    separator = None if delimiter == b"NIL" else _astring(delimiter).decode("ascii", "replace")
    return ListEntry(_mailbox(_astring(name)), separator, attributes)


def _fast_status(response: Untagged) -> tuple[str, MailboxStatus] | None:
    line = _plain_line(response)
    match = _STATUS_LINE.fullmatch(line) if line is not None else None
    if match is None:
        return None
    words = match.group(2).split()
    if len(words) % 2:
        return None
    items: dict[str, Any] = {}
    for key, value in zip(words[::2], words[1::2], strict=True):
        items[key.decode("ascii", "replace").upper()] = (
            int(value) if value.isdigit() else value.decode("ascii", "replace")
        )
    return _mailbox(_astring(match.group(1))), status_from_items(items)


def parse_list(response: Untagged) -> ListEntry:
    fast = _fast_list(response)
    if fast is not None:
        return fast
    parts = atoms(response, "LIST")
    if len(parts) < 3 or not isinstance(parts[0], tuple):
        raise _malformed("LIST")
    attributes = frozenset(_text(a).lower() for a in parts[0])
    delimiter = None if parts[1] is None else _text(parts[1])
    return ListEntry(_mailbox(parts[2]), delimiter, attributes)


def parse_status(response: Untagged) -> tuple[str, MailboxStatus]:
    fast = _fast_status(response)
    if fast is not None:
        return fast
    parts = atoms(response, "STATUS")
    if len(parts) != 2 or not isinstance(parts[1], tuple) or len(parts[1]) % 2:
        raise _malformed("STATUS")
    items = {_text(parts[1][i]).upper(): parts[1][i + 1] for i in range(0, len(parts[1]), 2)}
    return _mailbox(parts[0]), status_from_items(items)


def status_from_items(items: Mapping[str, Any]) -> MailboxStatus:
    def number(key: str) -> int:
        value = items.get(key)
        return value if isinstance(value, int) else 0

    modseq = items.get("HIGHESTMODSEQ")
    guid = next((object_id(items[k], k) for k in _FOLDER_ID_ITEMS if k in items), None)
    return MailboxStatus(
        messages=number("MESSAGES"),
        unseen=number("UNSEEN"),
        uidnext=number("UIDNEXT"),
        uidvalidity=number("UIDVALIDITY"),
        highestmodseq=modseq if isinstance(modseq, int) else None,
        guid=guid,
    )


def special_use_of(attributes: Iterable[str]) -> str | None:
    uses = [SPECIAL_USES[a] for a in attributes if a in SPECIAL_USES]
    return min(uses, key=list(SPECIAL_USES.values()).index) if uses else None


def build_listings(
    entries: Sequence[ListEntry],
    statuses: Mapping[str, MailboxStatus],
    subscribed: Iterable[str] | None = None,
) -> list[MailboxListing]:
    """Join LIST entries with STATUS results and, without RETURN (SUBSCRIBED), LSUB names."""
    lsub = None if subscribed is None else set(subscribed)
    listings: list[MailboxListing] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            continue
        seen.add(entry.name)
        selectable = not entry.attributes & {"\\noselect", "\\nonexistent"}
        is_subscribed = "\\subscribed" in entry.attributes if lsub is None else entry.name in lsub
        listings.append(
            MailboxListing(
                name=entry.name,
                delimiter=entry.delimiter,
                attributes=entry.attributes,
                special_use=special_use_of(entry.attributes),
                subscribed=is_subscribed,
                selectable=selectable,
                status=statuses.get(entry.name) if selectable else None,
            )
        )
    return listings


# -- FETCH, VANISHED, SEARCH ------------------------------------------------------------


def fetch_items(response: Untagged) -> tuple[int, dict[str, Any]] | None:
    """A FETCH response's items by upper-case name; None when it has no UID (unsolicited)."""
    try:
        items = parse_fetch_items(response.data)
    except (ValueError, UnicodeDecodeError):
        items = _fetch_items_slowly(response)
    uid = items.pop("UID", None)
    return (uid, items) if isinstance(uid, int) else None


def fetch_uid_and_flags(response: Untagged) -> tuple[int | None, tuple[str, ...] | None]:
    """UID and FLAGS of any FETCH response, asked for or not; either may be absent."""
    try:
        items = parse_fetch_items(response.data)
    except (ValueError, UnicodeDecodeError):
        items = _fetch_items_slowly(response)
    uid = items.get("UID")
    flags = items.get("FLAGS")
    return (
        uid if isinstance(uid, int) else None,
        None if flags is None else tuple(_text(flag) for flag in flags),
    )


def _fetch_items_slowly(response: Untagged) -> dict[str, Any]:
    head = response.data[0] if response.data else b""
    number = b"%d " % (response.number or 0)
    first = (number + head[0], head[1]) if isinstance(head, tuple) else number + head
    try:
        parsed = parse_fetch_response(
            [first, *response.data[1:]],  # type: ignore[list-item]
            normalise_times=False,
            uid_is_key=False,
        )
    except (ProtocolError, ValueError, IndexError) as exc:
        raise _malformed("FETCH") from exc
    if len(parsed) != 1:
        raise _malformed("FETCH")
    (raw_items,) = parsed.values()
    items = {key.decode("ascii", "replace").upper(): value for key, value in raw_items.items()}
    items.pop("SEQ", None)
    return items


def meta_from_items(uid: int, items: Mapping[str, Any]) -> MessageMeta:
    rest = dict(items)
    flags = tuple(_text(flag) for flag in rest.pop("FLAGS", None) or ())
    modseq = rest.pop("MODSEQ", None)
    if isinstance(modseq, tuple):
        modseq = modseq[0] if modseq else None
    message_id = next((object_id(rest.pop(k), k) for k in list(rest) if k in _MESSAGE_ID_ITEMS),
                      None)  # fmt: skip
    thread_id = next((object_id(rest.pop(k), k) for k in list(rest) if k in _THREAD_ID_ITEMS),
                     None)  # fmt: skip
    return MessageMeta(
        uid=uid,
        flags=flags,
        modseq=modseq if isinstance(modseq, int) else None,
        object_id=message_id,
        thread_object_id=thread_id,
        raw=rest,
    )


def parse_fetch(response: Untagged) -> MessageMeta | None:
    found = fetch_items(response)
    return None if found is None else meta_from_items(*found)


def collect_fetches(responses: Iterable[Untagged]) -> dict[int, MessageMeta]:
    """All FETCH responses by UID. Several for one UID (the answer plus an unsolicited flag
    update) merge item by item, the later one winning: it is the newer state."""
    by_uid: dict[int, dict[str, Any]] = {}
    for response in responses:
        if response.kind != "FETCH":
            continue
        found = fetch_items(response)
        if found is not None:
            by_uid.setdefault(found[0], {}).update(found[1])
    return {uid: meta_from_items(uid, items) for uid, items in by_uid.items()}


def parse_vanished(response: Untagged) -> tuple[bool, list[int]]:
    """``VANISHED [(EARLIER)] set`` -> (earlier, uids)."""
    parts = atoms(response, "VANISHED")
    earlier = False
    if parts and isinstance(parts[0], tuple):
        earlier = any(_text(p).upper() == "EARLIER" for p in parts[0])
        parts = parts[1:]
    if len(parts) != 1:
        raise _malformed("VANISHED")
    return earlier, parse_sequence_set(parts[0])


def parse_search(response: Untagged) -> list[int]:
    """``SEARCH 1 2 3 [(MODSEQ n)]`` -> the numbers."""
    return [p for p in atoms(response, "SEARCH") if isinstance(p, int)]


def parse_esearch(response: Untagged) -> tuple[str | None, bool, dict[str, Any]]:
    """``ESEARCH (TAG "x") UID ALL 1:3 COUNT 3`` -> (tag, uid, {"ALL": ..., "COUNT": 3})."""
    parts = list(atoms(response, "ESEARCH"))
    tag = None
    if parts and isinstance(parts[0], tuple):
        correlator = parts.pop(0)
        if len(correlator) == 2 and _text(correlator[0]).upper() == "TAG":
            tag = _text(correlator[1])
    uid = bool(parts) and _text(parts[0]).upper() == "UID"
    if uid:
        parts.pop(0)
    if len(parts) % 2:
        raise _malformed("ESEARCH")
    return tag, uid, {_text(parts[i]).upper(): parts[i + 1] for i in range(0, len(parts), 2)}


def ordered_sequence(value: Any) -> list[int]:
    """A sequence-set kept in its given order, as ESORT's PARTIAL returns it (RFC 5267
    §4.4): "9,7:5" -> [9, 7, 6, 5]."""
    numbers: list[int] = []
    for piece in _text(value).split(","):
        first, _, last = piece.partition(":")
        if not first.isdigit() or (last and not last.isdigit()):
            raise _malformed("sequence-set")
        start, end = int(first), int(last or first)
        step = 1 if end >= start else -1
        numbers.extend(range(start, end + step, step))
    return numbers


# -- the rest -----------------------------------------------------------------------------


def parse_namespace_delimiter(response: Untagged) -> str | None:
    """The hierarchy delimiter of the first personal namespace."""
    parts = atoms(response, "NAMESPACE")
    personal = parts[0] if parts else None
    if not isinstance(personal, tuple) or not personal or not isinstance(personal[0], tuple):
        return None
    first = personal[0]
    return None if len(first) < 2 or first[1] is None else _text(first[1])


def parse_id(response: Untagged) -> dict[str, str]:
    parts = atoms(response, "ID")
    fields = parts[0] if parts and isinstance(parts[0], tuple) else ()
    return {
        _text(fields[i]).lower(): _text(fields[i + 1])
        for i in range(0, len(fields) - 1, 2)
        if fields[i + 1] is not None
    }


def parse_myrights(response: Untagged) -> tuple[str, str]:
    parts = atoms(response, "MYRIGHTS")
    if len(parts) != 2:
        raise _malformed("MYRIGHTS")
    return _mailbox(parts[0]), _text(parts[1])


def parse_quotaroot(response: Untagged) -> tuple[str, list[str]]:
    """``QUOTAROOT INBOX "User quota"`` -> ("INBOX", ["User quota"]) (RFC 9208 §7.2)."""
    parts = atoms(response, "QUOTAROOT")
    if not parts or isinstance(parts[0], tuple):
        raise _malformed("QUOTAROOT")
    if any(isinstance(part, tuple) for part in parts[1:]):
        raise _malformed("QUOTAROOT")
    return _mailbox(parts[0]), [_quota_root_name(part) for part in parts[1:]]


def parse_quota(response: Untagged) -> tuple[str, list[QuotaResource]]:
    """``QUOTA "User quota" (STORAGE 10 512 MESSAGE 1 100)`` -> the root and its resources
    (RFC 9208 §7.1), names upper-case, numbers as the server sent them (STORAGE in KiB)."""
    parts = atoms(response, "QUOTA")
    if len(parts) != 2 or isinstance(parts[0], tuple) or not isinstance(parts[1], tuple):
        raise _malformed("QUOTA")
    items = parts[1]
    if len(items) % 3:
        raise _malformed("QUOTA")
    resources = []
    for i in range(0, len(items), 3):
        name, usage, limit = items[i : i + 3]
        if not isinstance(usage, int) or not isinstance(limit, int) or isinstance(name, tuple):
            raise _malformed("QUOTA")
        resources.append(QuotaResource(name=_text(name).upper(), usage=usage, limit=limit))
    return _quota_root_name(parts[0]), resources


def _quota_root_name(value: Any) -> str:
    # A root name is an astring, not a mailbox name: no modified UTF-7 decoding. An empty
    # string is a valid root (many servers use ""), a bare NIL is not expected but harmless.
    if value is None:
        return ""
    return _text(value)


def _code_number(args: bytes | None) -> int | None:
    try:
        return int(args) if args is not None else None
    except ValueError:
        return None


def select_result(name: str, reply: Reply, readonly: bool) -> SelectResult:
    """Everything a SELECT/EXAMINE said, including QRESYNC's VANISHED and FETCHes."""
    uidvalidity = uidnext = 0
    highestmodseq: int | None = None
    nomodseq = False
    permanent: frozenset[str] = frozenset()
    for code, args in reply.codes():
        if code == "UIDVALIDITY":
            uidvalidity = _code_number(args) or 0
        elif code == "UIDNEXT":
            uidnext = _code_number(args) or 0
        elif code == "HIGHESTMODSEQ":
            highestmodseq = _code_number(args)
        elif code == "NOMODSEQ":
            nomodseq = True
        elif code == "PERMANENTFLAGS" and args:
            permanent = frozenset(args.decode("utf-8", "replace").strip("()").split())
        elif code == "READ-ONLY":
            readonly = True
        elif code == "READ-WRITE":
            readonly = False
    exists = 0
    vanished: set[int] = set()
    for response in reply.untagged:
        if response.kind == "EXISTS" and response.number is not None:
            exists = response.number
        elif response.kind == "VANISHED":
            vanished.update(parse_vanished(response)[1])
    return SelectResult(
        name=name,
        uidvalidity=uidvalidity,
        uidnext=uidnext,
        exists=exists,
        highestmodseq=None if nomodseq else highestmodseq,
        permanent_flags=permanent,
        readonly=readonly,
        vanished=frozenset(vanished),
        changed=collect_fetches(reply.untagged),
    )
