"""JMAP Email/query filters and sorts -> IMAP SEARCH and SORT (RFC 8621 §4.4). Pure, no I/O.

``plan_search`` turns a FilterCondition / FilterOperator tree into a ``SearchPlan``;
``plan_sort`` turns a list of Comparators into a ``SortPlan``. Every client-supplied string
reaches the criteria through ``quoting`` (quoted string or literal), so CR/LF can only travel
inside a literal and ``wire.split_literals`` accepts every command built here.

How a caller runs a SearchPlan (this is what makes the result exact):

1. If ``matches_nothing``: the answer is empty; nothing to send.
2. If ``needs_imap``: in each folder of ``mailbox_ids`` (``None``: every folder), less
   ``excluded_mailbox_ids``, send ``search_command()`` (or ``sort_command``) and map the UIDs
   to Emails; the union over folders is a superset of the answer. If not ``needs_imap``, every
   condition can be checked on the cache: start from the cached Emails in those folders (the
   IMAP round trip is optional then; it only narrows).
3. Keep the Emails for which ``plan.matches(email)`` holds: the ``post_filter``, checked on
   cached facts (``EmailFacts``): receivedAt, size, keywords, mailboxes, hasAttachment and the
   keywords of the Email's thread. It holds every top-level condition the cache can decide.

Decisions on RFC 8621 §4.4.1:

- Negation is pushed down to the conditions (De Morgan), and each negated condition stays
  exact: NOT after = before, NOT minSize = maxSize, NOT hasKeyword = notKeyword, NOT
  hasAttachment:b = hasAttachment:!b, NOT someInThread = noneInThread, NOT allInThread =
  "not all in thread". So NOT of several conditions goes out as ``NOT a NOT b`` (which is
  ``NOT (OR a b)``), NOT of one as ``NOT a``; AND [] and NOT [] match everything (``ALL``),
  OR [] nothing (``matches_nothing``). Constants fold: minSize 0 is true, maxSize 0 false.
- The tree is then cut into top-level conjuncts. A conjunct made only of conditions IMAP
  evaluates exactly (text, from, to, cc, bcc, subject, body, header, hasKeyword, notKeyword,
  minSize, maxSize) is left to IMAP; one made only of conditions the cache decides (the dates,
  sizes, keywords, hasAttachment, the thread keywords, inMailbox, inMailboxOtherThan) goes in
  the post-filter, with whatever superset IMAP can give still sent to narrow the search. A
  conjunct that mixes a text condition with a cache-only condition under OR (``OR subject
  after``, ``NOT (body AND hasAttachment)``, ...) raises UnsupportedFilter: there is no sound
  split of it, and a wrong result is never returned.
- before/after compare with receivedAt (INTERNALDATE). IMAP SINCE/BEFORE compare dates only,
  in a time zone the server picks, so they are sent widened to a safe superset for any zone
  within a day of UTC: after T -> ``SINCE (day of T - 1)``, before T -> ``BEFORE (day of T +
  2)`` (one day after is not enough east of UTC), and the exact test is in the post-filter.
  WITHIN (YOUNGER/OLDER) is not used: relative to the server's clock, it is no more exact.
- Sizes are exact in IMAP: minSize n -> ``LARGER n-1``, maxSize n -> ``SMALLER n``. IMAP
  sizes are 32-bit, so minSize above 2^32-1 matches nothing and maxSize above it everything.
- hasKeyword/notKeyword: $seen, $flagged, $answered, $draft become SEEN/UNSEEN, FLAGGED, ...;
  other keywords ``KEYWORD k`` / ``UNKEYWORD k`` (lower-cased, as bridge stores them; Dovecot
  matches keywords case-insensitively). IMAP reads the flags of the copy in the searched folder
  while an Email's keywords are the union over its copies: for a conjunct of keywords alone
  the post-filter restores the union's answer, but an Email whose copies disagree can be
  missed when the folder holding the flagged copy is outside the searched ones.
- Text: §4.4.1 asks that whitespace separate tokens that MUST all be present and that quoted
  text be a phrase. Each token or phrase becomes its own key, ANDed: ``text: 'a "b c"'`` ->
  ``TEXT "a" TEXT "b c"``. A quote starts a phrase only at the start of a token and only if it
  is closed (so "don't" is one token); inside a phrase ``\\`` escapes ``'``, ``"`` and ``\\``.
  A value with no token matches everything. ``text`` is IMAP TEXT (headers and body: a
  superset of From/To/Cc/Bcc/Subject/bodies, which §4.4.1 allows). The same rules apply to
  from/to/cc/bcc/subject/body and the header value.
- FUZZY (RFC 6203) is never sent: a fuzzy match may lack a token, and JMAP says all tokens
  MUST be present. ``capabilities`` is taken for symmetry with ``plan_sort``.
- header: [name] -> ``HEADER name ""`` (has the field); [name, value] -> ``HEADER name
  token`` per token; a third element "contains" is what IMAP does and is accepted, any other
  comparator raises UnsupportedFilter. The name must be an RFC 5322 field name.
- inMailbox / inMailboxOtherThan choose folders and are also checked in the post-filter
  (an Email may have copies in several folders). From the top-level conjuncts: inMailbox A,
  or an OR of inMailbox conditions, gives ``mailbox_ids``; NOT inMailbox A excludes A;
  inMailboxOtherThan X excludes X when no inMailbox scopes the search (the Email has a copy
  outside X, and that copy is searched). Elsewhere they are cache-only conditions (above).
- A property whose value is null counts as absent. Unknown properties and operators raise
  UnsupportedFilter; wrong types, bad dates, invalid keywords, ids or header names raise
  InvalidFilter; so does a string that is not valid Unicode. NUL cannot be sent to an IMAP
  server: UnsupportedFilter.
- OR of n conditions is folded into a balanced tree of binary ORs (depth log n, which keeps
  servers' parsers shallow); filters nested deeper than MAX_DEPTH raise UnsupportedFilter.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from bridge.imap import quoting
from bridge.imap.flags import KEYWORD_TO_SYSTEM
from bridge.mime.dates import parse_utc_date

MAX_DEPTH = 64
MAX_NUMBER = 2**32 - 1  # RFC 3501 number: what LARGER/SMALLER take
MAX_UNSIGNED_INT = 2**53 - 1  # RFC 8620 §1.3 UnsignedInt

# RFC 8620 §1.2 Id. (bridge.jmap.types has the same check; imap/ does not import jmap/.)
_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
# RFC 5322 §3.6.8 field-name: printable US-ASCII except ":".
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_QUOTES = "'\""

# $seen -> (b"SEEN", b"UNSEEN"), ...: IMAP has search keys of its own for system flags.
_SYSTEM_KEYS = {
    keyword: (flag[1:].upper().encode("ascii"), b"UN" + flag[1:].upper().encode("ascii"))
    for keyword, flag in KEYWORD_TO_SYSTEM.items()
}
_TEXT_KEYS = {
    "text": "TEXT",
    "from": "FROM",
    "to": "TO",
    "cc": "CC",
    "bcc": "BCC",
    "subject": "SUBJECT",
    "body": "BODY",
}


class InvalidFilter(Exception):
    """The filter is malformed (wrong types, bad dates, ...): JMAP invalidArguments."""


class UnsupportedFilter(Exception):
    """The filter is valid but bridge cannot evaluate it exactly: JMAP unsupportedFilter."""


class InvalidSort(Exception):
    """A Comparator is malformed: JMAP invalidArguments."""


class UnsupportedSort(Exception):
    """A Comparator names a property or collation bridge cannot sort by: unsupportedSort."""


class EmailFacts(Protocol):
    """What the post-filter reads about one Email, from the cache. Plain attributes or
    properties: ``has_attachment`` and ``thread_keywords`` are read only when a condition
    needs them (see ``SearchPlan.needs_has_attachment`` / ``thread_keyword_conditions``)."""

    @property
    def received_at(self) -> datetime: ...  # aware
    @property
    def size(self) -> int: ...
    @property
    def keywords(self) -> Collection[str]: ...  # lower-case JMAP keywords
    @property
    def mailbox_ids(self) -> Collection[str]: ...
    @property
    def has_attachment(self) -> bool: ...
    @property
    def thread_keywords(self) -> Iterable[Collection[str]]:
        """The keywords of every Email in this Email's thread, this one included."""
        ...


# -- the filter tree, in negation normal form ------------------------------------------------


class Node(abc.ABC):
    """A filter in negation normal form: AllOf / AnyOf of leaves (negated leaves are leaves)."""

    @abc.abstractmethod
    def negate(self) -> Node: ...

    @abc.abstractmethod
    def leaves(self) -> Iterator[Leaf]: ...

    @abc.abstractmethod
    def matches(self, email: EmailFacts) -> bool: ...


@dataclass(frozen=True)
class AllOf(Node):
    """AND; ``AllOf(())`` is true."""

    children: tuple[Node, ...]

    def negate(self) -> Node:
        return _any(child.negate() for child in self.children)

    def leaves(self) -> Iterator[Leaf]:
        for child in self.children:
            yield from child.leaves()

    def matches(self, email: EmailFacts) -> bool:
        return all(child.matches(email) for child in self.children)


@dataclass(frozen=True)
class AnyOf(Node):
    """OR; ``AnyOf(())`` is false."""

    children: tuple[Node, ...]

    def negate(self) -> Node:
        return _all(child.negate() for child in self.children)

    def leaves(self) -> Iterator[Leaf]:
        for child in self.children:
            yield from child.leaves()

    def matches(self, email: EmailFacts) -> bool:
        return any(child.matches(email) for child in self.children)


TRUE = AllOf(())
FALSE = AnyOf(())


class Leaf(Node):
    # IMAP evaluates it exactly / the cache can decide it.
    imap_exact: ClassVar[bool] = False
    local: ClassVar[bool] = True

    def leaves(self) -> Iterator[Leaf]:
        yield self

    def imap_key(self) -> bytes | None:
        """One IMAP search-key matching a superset of this leaf, or None (ALL)."""
        return None


@dataclass(frozen=True)
class TextMatch(Leaf):
    """One token or phrase of a text/from/to/cc/bcc/subject/body condition."""

    key: str  # TEXT, FROM, TO, CC, BCC, SUBJECT or BODY
    value: str
    negated: bool = False
    imap_exact: ClassVar[bool] = True
    local: ClassVar[bool] = False

    def negate(self) -> Node:
        return replace(self, negated=not self.negated)

    def imap_key(self) -> bytes:
        return _not(self.key.encode("ascii") + b" " + quoting.astring(self.value), self.negated)

    def matches(self, email: EmailFacts) -> bool:
        raise TypeError("text conditions are evaluated by the IMAP server")


@dataclass(frozen=True)
class HeaderMatch(Leaf):
    """A header field holding ``value`` (or, for "", merely present)."""

    name: str
    value: str
    negated: bool = False
    imap_exact: ClassVar[bool] = True
    local: ClassVar[bool] = False

    def negate(self) -> Node:
        return replace(self, negated=not self.negated)

    def imap_key(self) -> bytes:
        key = b"HEADER " + quoting.astring(self.name) + b" " + quoting.astring(self.value)
        return _not(key, self.negated)

    def matches(self, email: EmailFacts) -> bool:
        raise TypeError("header conditions are evaluated by the IMAP server")


@dataclass(frozen=True)
class KeywordIs(Leaf):
    """hasKeyword (present) / notKeyword (not present); ``keyword`` is lower-case."""

    keyword: str
    present: bool = True
    imap_exact: ClassVar[bool] = True

    def negate(self) -> Node:
        return replace(self, present=not self.present)

    def imap_key(self) -> bytes:
        system = _SYSTEM_KEYS.get(self.keyword)
        if system is not None:
            return system[0] if self.present else system[1]
        prefix = b"KEYWORD " if self.present else b"UNKEYWORD "
        return prefix + quoting.atom_keyword(self.keyword)

    def matches(self, email: EmailFacts) -> bool:
        return (self.keyword in email.keywords) == self.present


@dataclass(frozen=True)
class SizeAtLeast(Leaf):
    """minSize: size >= n, 1 <= n <= MAX_NUMBER."""

    n: int
    imap_exact: ClassVar[bool] = True

    def negate(self) -> Node:
        return SizeBelow(self.n)

    def imap_key(self) -> bytes:
        return b"LARGER %d" % (self.n - 1)

    def matches(self, email: EmailFacts) -> bool:
        return email.size >= self.n


@dataclass(frozen=True)
class SizeBelow(Leaf):
    """maxSize: size < n, 1 <= n <= MAX_NUMBER."""

    n: int
    imap_exact: ClassVar[bool] = True

    def negate(self) -> Node:
        return SizeAtLeast(self.n)

    def imap_key(self) -> bytes:
        return b"SMALLER %d" % self.n

    def matches(self, email: EmailFacts) -> bool:
        return email.size < self.n


@dataclass(frozen=True)
class ReceivedSince(Leaf):
    """after: receivedAt >= at. IMAP gets a date-granular superset."""

    at: datetime

    def negate(self) -> Node:
        return ReceivedBefore(self.at)

    def imap_key(self) -> bytes | None:
        try:
            day = self.at.date() - timedelta(days=1)
        except OverflowError:
            return None
        return b"SINCE " + _imap_date(day)

    def matches(self, email: EmailFacts) -> bool:
        return email.received_at >= self.at


@dataclass(frozen=True)
class ReceivedBefore(Leaf):
    """before: receivedAt < at. IMAP gets a date-granular superset."""

    at: datetime

    def negate(self) -> Node:
        return ReceivedSince(self.at)

    def imap_key(self) -> bytes | None:
        try:
            day = self.at.date() + timedelta(days=2)
        except OverflowError:
            return None
        return b"BEFORE " + _imap_date(day)

    def matches(self, email: EmailFacts) -> bool:
        return email.received_at < self.at


@dataclass(frozen=True)
class HasAttachment(Leaf):
    value: bool

    def negate(self) -> Node:
        return HasAttachment(not self.value)

    def matches(self, email: EmailFacts) -> bool:
        return email.has_attachment == self.value


Quantifier = Literal["all", "some", "none", "not_all"]
_NEGATED_QUANTIFIER: dict[Quantifier, Quantifier] = {
    "all": "not_all",
    "not_all": "all",
    "some": "none",
    "none": "some",
}


@dataclass(frozen=True)
class ThreadKeyword(Leaf):
    """all/some/noneInThreadHaveKeyword, and "not all" (the negation of all)."""

    keyword: str
    quantifier: Quantifier

    def negate(self) -> Node:
        return ThreadKeyword(self.keyword, _NEGATED_QUANTIFIER[self.quantifier])

    def matches(self, email: EmailFacts) -> bool:
        return self.matches_thread(email.thread_keywords)

    def matches_thread(self, thread_keywords: Iterable[Collection[str]]) -> bool:
        has = (self.keyword in keywords for keywords in thread_keywords)
        if self.quantifier == "all":
            return all(has)
        if self.quantifier == "some":
            return any(has)
        if self.quantifier == "none":
            return not any(has)
        return not all(has)


@dataclass(frozen=True)
class InMailbox(Leaf):
    """inMailbox (present) and its negation (the Email has no copy there)."""

    mailbox_id: str
    present: bool = True

    def negate(self) -> Node:
        return replace(self, present=not self.present)

    def matches(self, email: EmailFacts) -> bool:
        return (self.mailbox_id in email.mailbox_ids) == self.present


@dataclass(frozen=True)
class InMailboxOtherThan(Leaf):
    """inMailboxOtherThan: some copy outside ``mailbox_ids``; negated: every copy inside."""

    mailbox_ids: frozenset[str]
    present: bool = True

    def negate(self) -> Node:
        return replace(self, present=not self.present)

    def matches(self, email: EmailFacts) -> bool:
        outside = any(mailbox not in self.mailbox_ids for mailbox in email.mailbox_ids)
        return outside == self.present


def _all(children: Iterable[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        if isinstance(child, AllOf):
            flat.extend(child.children)
        elif child == FALSE:
            return FALSE
        else:
            flat.append(child)
    return flat[0] if len(flat) == 1 else AllOf(tuple(flat))


def _any(children: Iterable[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        if isinstance(child, AnyOf):
            flat.extend(child.children)
        elif child == TRUE:
            return TRUE
        else:
            flat.append(child)
    return flat[0] if len(flat) == 1 else AnyOf(tuple(flat))


def _not(key: bytes, negated: bool) -> bytes:
    return b"NOT " + key if negated else key


def _imap_date(day: date) -> bytes:
    """RFC 3501 date: ``1-Jan-2026`` (month names are not the locale's)."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year:04d}".encode("ascii")


# -- parsing -----------------------------------------------------------------------------


def parse_filter(filter: Any) -> Node:
    """The filter as a tree in negation normal form, constants folded.
    InvalidFilter / UnsupportedFilter as described in the module docstring."""
    if filter is None:
        return TRUE
    return _parse(filter, 0)


def _parse(obj: Any, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise UnsupportedFilter(f"filter nested deeper than {MAX_DEPTH} levels")
    if not isinstance(obj, Mapping):
        raise InvalidFilter("a filter must be a FilterOperator or FilterCondition object")
    if "operator" in obj or "conditions" in obj:
        return _operator(obj, depth)
    return _condition(obj)


def _operator(obj: Mapping[str, Any], depth: int) -> Node:
    extra = set(obj) - {"operator", "conditions"}
    if extra:
        raise InvalidFilter(f"a FilterOperator has no property {sorted(extra)[0]!r}")
    operator = obj.get("operator")
    conditions = obj.get("conditions")
    if not isinstance(operator, str):
        raise InvalidFilter("FilterOperator.operator must be a string")
    if not isinstance(conditions, list):
        raise InvalidFilter("FilterOperator.conditions must be a list")
    if operator not in ("AND", "OR", "NOT"):
        raise UnsupportedFilter(f"unsupported filter operator {operator!r}")
    children = [_parse(condition, depth + 1) for condition in conditions]
    if operator == "AND":
        return _all(children)
    if operator == "OR":
        return _any(children)
    return _all(child.negate() for child in children)  # NOT: none of them matches


def _condition(obj: Mapping[str, Any]) -> Node:
    parts: list[Node] = []
    for name, value in obj.items():
        if value is None:
            continue
        handler = _HANDLERS.get(name)
        if handler is None:
            raise UnsupportedFilter(f"unsupported filter property {name!r}")
        parts.append(handler(name, value))
    return _all(parts)


def _id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidFilter(f"{name}: not a valid Id")
    return value


def _unsigned(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidFilter(f"{name} must be an UnsignedInt")
    if not 0 <= value <= MAX_UNSIGNED_INT:
        raise InvalidFilter(f"{name} must be an UnsignedInt")
    return value


def _utc_date(name: str, value: Any) -> datetime:
    moment = parse_utc_date(value) if isinstance(value, str) else None
    if moment is None:
        raise InvalidFilter(f"{name} must be a UTCDate such as 2026-01-31T12:00:00Z")
    return moment


def _keyword(name: str, value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise InvalidFilter(f"{name} must be a keyword")
    try:
        quoting.atom_keyword(value)
    except ValueError as exc:
        raise InvalidFilter(f"{name}: {value!r} is not a valid keyword") from exc
    return value.lower()


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidFilter(f"{name} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidFilter(f"{name} is not valid Unicode") from exc
    if "\x00" in value:
        raise UnsupportedFilter(f"{name}: NUL cannot be searched for over IMAP")
    return value


def tokens(text: str) -> list[str]:
    """Whitespace-separated tokens and quoted phrases (RFC 8621 §4.4.1)."""
    found: list[str] = []
    i, end = 0, len(text)
    while i < end:
        if text[i].isspace():
            i += 1
            continue
        if text[i] in _QUOTES:
            phrase, after = _phrase(text, i)
            if after is not None:
                if phrase.strip():
                    found.append(phrase)
                i = after
                continue
        j = i
        while j < end and not text[j].isspace():
            j += 1
        found.append(text[i:j])
        i = j
    return found


def _phrase(text: str, start: int) -> tuple[str, int | None]:
    """The phrase opened by the quote at ``start`` and the index after its closing quote;
    None for that index when the quote is never closed."""
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in "'\"\\":
            chars.append(text[i + 1])
            i += 2
            continue
        if char == quote:
            return "".join(chars), i + 1
        chars.append(char)
        i += 1
    return "", None


def _in_mailbox(name: str, value: Any) -> Node:
    return InMailbox(_id(name, value))


def _in_mailbox_other_than(name: str, value: Any) -> Node:
    if not isinstance(value, list):
        raise InvalidFilter(f"{name} must be a list of Ids")
    ids = frozenset(_id(name, item) for item in value)
    # Every Email is in some mailbox, and none of them is in the empty list.
    return InMailboxOtherThan(ids) if ids else TRUE


def _before(name: str, value: Any) -> Node:
    return ReceivedBefore(_utc_date(name, value))


def _after(name: str, value: Any) -> Node:
    return ReceivedSince(_utc_date(name, value))


def _min_size(name: str, value: Any) -> Node:
    n = _unsigned(name, value)
    if n == 0:
        return TRUE
    return SizeAtLeast(n) if n <= MAX_NUMBER else FALSE


def _max_size(name: str, value: Any) -> Node:
    n = _unsigned(name, value)
    if n == 0:
        return FALSE
    return SizeBelow(n) if n <= MAX_NUMBER else TRUE


def _has_keyword(name: str, value: Any) -> Node:
    return KeywordIs(_keyword(name, value), name == "hasKeyword")


_THREAD_QUANTIFIERS: dict[str, Quantifier] = {
    "allInThreadHaveKeyword": "all",
    "someInThreadHaveKeyword": "some",
    "noneInThreadHaveKeyword": "none",
}


def _thread_keyword(name: str, value: Any) -> Node:
    return ThreadKeyword(_keyword(name, value), _THREAD_QUANTIFIERS[name])


def _has_attachment(name: str, value: Any) -> Node:
    if not isinstance(value, bool):
        raise InvalidFilter(f"{name} must be a boolean")
    return HasAttachment(value)


def _text_condition(name: str, value: Any) -> Node:
    key = _TEXT_KEYS[name]
    return _all(TextMatch(key, token) for token in tokens(_text(name, value)))


def _header(name: str, value: Any) -> Node:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 3
        or not all(isinstance(item, str) for item in value)
    ):
        raise InvalidFilter(f"{name} must be a list of one or two strings")
    field = value[0]
    if not _FIELD_NAME.fullmatch(field):
        raise InvalidFilter(f"{name}: {field!r} is not a header field name")
    if len(value) == 3 and value[2] != "contains":
        raise UnsupportedFilter(f"{name}: only substring matching is supported")
    if len(value) == 1:
        return HeaderMatch(field, "")
    found = tokens(_text(name, value[1]))
    if not found:
        return HeaderMatch(field, "")
    return _all(HeaderMatch(field, token) for token in found)


_HANDLERS = {
    "inMailbox": _in_mailbox,
    "inMailboxOtherThan": _in_mailbox_other_than,
    "before": _before,
    "after": _after,
    "minSize": _min_size,
    "maxSize": _max_size,
    "allInThreadHaveKeyword": _thread_keyword,
    "someInThreadHaveKeyword": _thread_keyword,
    "noneInThreadHaveKeyword": _thread_keyword,
    "hasKeyword": _has_keyword,
    "notKeyword": _has_keyword,
    "hasAttachment": _has_attachment,
    **dict.fromkeys(_TEXT_KEYS, _text_condition),
    "header": _header,
}


# -- rendering ---------------------------------------------------------------------------


def _imap(node: Node) -> list[bytes] | None:
    """Search keys (ANDed) matching a superset of ``node``; None for ALL."""
    if isinstance(node, Leaf):
        key = node.imap_key()
        return None if key is None else [key]
    if isinstance(node, AllOf):
        keys: list[bytes] = []
        for child in node.children:
            keys.extend(_imap(child) or ())
        return keys or None
    assert isinstance(node, AnyOf)
    operands: list[bytes] = []
    for child in node.children:
        child_keys = _imap(child)
        if child_keys is None:
            return None  # one side is ALL, so is the OR
        operands.append(child_keys[0] if len(child_keys) == 1 else _group(child_keys))
    return [_fold_or(operands)] if operands else [b"NOT ALL"]


def _group(keys: Sequence[bytes]) -> bytes:
    return b"(" + b" ".join(keys) + b")"


def _fold_or(operands: Sequence[bytes]) -> bytes:
    """IMAP OR is binary: a balanced tree of them, so nesting grows as log n."""
    if len(operands) == 1:
        return operands[0]
    middle = (len(operands) + 1) // 2
    return b"OR " + _fold_or(operands[:middle]) + b" " + _fold_or(operands[middle:])


# -- the plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchPlan:
    """How to run one Email/query filter; see the module docstring for the protocol."""

    criteria: bytes
    """Search keys for ``UID SEARCH [CHARSET UTF-8] <criteria>``, possibly with literals."""
    needs_utf8: bool
    """Some string is not ASCII: the command needs ``CHARSET UTF-8``."""
    mailbox_ids: frozenset[str] | None
    """Folders to search (every matching Email has a copy in one); None: every folder."""
    excluded_mailbox_ids: frozenset[str]
    """Folders that need not be searched (no matching Email needs a copy there searched)."""
    post_filter: Node | None
    """The conditions the caller checks on its cache; None: nothing to check."""
    needs_imap: bool
    """Some condition only the IMAP server can evaluate (text, header)."""
    matches_nothing: bool = False

    def matches(self, email: EmailFacts) -> bool:
        """The post-filter on one Email found by the search (or, without ``needs_imap``,
        one of the cached Emails in scope)."""
        return self.post_filter is None or self.post_filter.matches(email)

    @property
    def thread_keyword_conditions(self) -> tuple[ThreadKeyword, ...]:
        """The thread conditions in the post-filter: the caller needs the keywords of every
        Email in the thread (``EmailFacts.thread_keywords``) for these keywords."""
        return tuple(_leaves_of(self.post_filter, ThreadKeyword))

    @property
    def needs_has_attachment(self) -> bool:
        return any(True for _ in _leaves_of(self.post_filter, HasAttachment))

    def search_command(self, *, return_options: bytes = b"") -> bytes:
        """``UID SEARCH [RETURN (..)] [CHARSET UTF-8] criteria``; ``return_options`` is
        the caller's own ESEARCH ``RETURN (...)``, never client input."""
        command = b"UID SEARCH "
        if return_options:
            command += return_options + b" "
        if self.needs_utf8:
            command += b"CHARSET UTF-8 "
        return command + self.criteria

    def sort_command(self, sort: SortPlan, *, return_options: bytes = b"") -> bytes:
        """``UID SORT [RETURN (..)] (keys) charset criteria``; only for a SortPlan whose
        ``criteria`` is set (every key done by the server)."""
        if sort.criteria is None:
            raise ValueError("this sort cannot be done by IMAP SORT")
        command = b"UID SORT "
        if return_options:
            command += return_options + b" "
        charset = b"UTF-8" if self.needs_utf8 else b"US-ASCII"
        return command + sort.criteria + b" " + charset + b" " + self.criteria


L = TypeVar("L", bound=Leaf)

NOTHING = SearchPlan(
    criteria=b"NOT ALL",
    needs_utf8=False,
    mailbox_ids=frozenset(),
    excluded_mailbox_ids=frozenset(),
    post_filter=FALSE,
    needs_imap=False,
    matches_nothing=True,
)


def _leaves_of(node: Node | None, kind: type[L]) -> Iterator[L]:
    if node is not None:
        for leaf in node.leaves():
            if isinstance(leaf, kind):
                yield leaf


def plan_search(filter: dict[str, Any] | None, *, capabilities: frozenset[str]) -> SearchPlan:
    """Translate an Email/query ``filter`` (RFC 8621 §4.4.1) for an IMAP server with
    ``capabilities``. InvalidFilter / UnsupportedFilter as the module docstring says."""
    tree = parse_filter(filter)
    if tree == FALSE:
        return NOTHING
    conjuncts = tree.children if isinstance(tree, AllOf) else (tree,)
    keys: list[bytes] = []
    local: list[Node] = []
    needs_imap = False
    for conjunct in conjuncts:
        leaves = list(conjunct.leaves())
        exact = all(leaf.imap_exact for leaf in leaves)
        decidable = all(leaf.local for leaf in leaves)
        if not exact and not decidable:
            raise UnsupportedFilter(
                "a text or header condition cannot be combined under OR or NOT with "
                "date, attachment, thread or mailbox conditions"
            )
        keys.extend(_imap(conjunct) or ())
        if decidable:
            local.append(conjunct)
        else:
            needs_imap = True
    mailbox_ids, excluded = _scope(conjuncts)
    if mailbox_ids is not None and not mailbox_ids:
        return NOTHING
    criteria = b" ".join(keys) or b"ALL"
    return SearchPlan(
        criteria=criteria,
        needs_utf8=not criteria.isascii(),  # only literals carry non-ASCII bytes
        mailbox_ids=mailbox_ids,
        excluded_mailbox_ids=excluded,
        post_filter=_all(local) if local else None,
        needs_imap=needs_imap,
    )


def _scope(conjuncts: Sequence[Node]) -> tuple[frozenset[str] | None, frozenset[str]]:
    """(folders to search or None for all, folders to skip) from the top-level conditions.

    Each inMailbox conjunct (or OR of them) is a set one of the Email's copies must be in:
    searching any one of those sets finds it (the smallest is taken). NOT inMailbox A means
    no copy in A. inMailboxOtherThan X means some copy outside X, so X can be skipped, but
    only when no inMailbox set is searched (that set may lie inside X)."""
    required: list[frozenset[str]] = []
    absent: set[str] = set()
    outside: list[frozenset[str]] = []
    for conjunct in conjuncts:
        if isinstance(conjunct, InMailbox):
            if conjunct.present:
                required.append(frozenset({conjunct.mailbox_id}))
            else:
                absent.add(conjunct.mailbox_id)
        elif isinstance(conjunct, AnyOf):
            ids = [
                c.mailbox_id for c in conjunct.children if isinstance(c, InMailbox) and c.present
            ]
            if len(ids) == len(conjunct.children):
                required.append(frozenset(ids))
        elif isinstance(conjunct, InMailboxOtherThan) and conjunct.present:
            outside.append(conjunct.mailbox_ids)
    if required:
        smallest = min(required, key=lambda ids: (len(ids), sorted(ids)))
        return smallest - absent, frozenset(absent)
    widest = max(outside, key=lambda ids: (len(ids), sorted(ids)), default=frozenset())
    return None, frozenset(absent) | widest


# -- sorting -----------------------------------------------------------------------------

KEYWORD_SORTS = frozenset({"hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword"})
STRING_SORTS = frozenset({"from", "to", "subject"})
# What bridge advertises in collationAlgorithms (bridge.jmap.limits.DEFAULT_COLLATIONS).
COLLATIONS = frozenset({"i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"})
_SORT_KEYS = {"receivedAt": b"ARRIVAL", "sentAt": b"DATE", "size": b"SIZE", "subject": b"SUBJECT"}
_DISPLAY_SORT_KEYS = {"from": b"DISPLAYFROM", "to": b"DISPLAYTO"}


@dataclass(frozen=True)
class SortKey:
    """One Comparator. ``imap`` is its IMAP SORT key (``REVERSE ARRIVAL``, ...) when the
    server can sort by it with the same meaning, else None: the caller sorts by it from its
    cache (keyword sorts always; from/to without SORT=DISPLAY; a collation the server does
    not use; everything without SORT)."""

    property: str
    is_ascending: bool = True
    keyword: str | None = None  # lower-case; for the keyword sorts
    collation: str | None = None
    imap: bytes | None = None

    @property
    def thread_level(self) -> bool:
        return self.property in ("allInThreadHaveKeyword", "someInThreadHaveKeyword")


@dataclass(frozen=True)
class SortPlan:
    """The Comparators in order. IMAP SORT orders by all its keys at once and breaks ties
    by message number, so it is usable only whole: ``criteria`` is set when every key can be
    done upstream, and then only for a search in one folder (results from several folders
    must be merged on key values, i.e. sorted locally). Otherwise the caller sorts locally by
    ``keys`` (stable, last key first), with a fixed tie-breaker of its own."""

    keys: tuple[SortKey, ...]

    @property
    def criteria(self) -> bytes | None:
        """``(REVERSE ARRIVAL SUBJECT)``, or None if some key (or none at all) is local."""
        if not self.keys or any(key.imap is None for key in self.keys):
            return None
        return _group([key.imap for key in self.keys if key.imap is not None])

    @property
    def local_keys(self) -> tuple[SortKey, ...]:
        return tuple(key for key in self.keys if key.imap is None)


def plan_sort(sort: list[dict[str, Any]] | None, capabilities: Collection[str]) -> SortPlan:
    """Translate Email/query's ``sort`` (RFC 8621 §4.4.2). Comparators may carry extra
    properties (ignored). InvalidSort for malformed ones, UnsupportedSort for a property or
    collation bridge does not sort by.

    from/to sort by the first address's name, else its email (§4.4.2): that is RFC 5957's
    DISPLAYFROM/DISPLAYTO, whereas RFC 5256's FROM/TO use the mailbox part of the address, so
    without SORT=DISPLAY they are sorted locally. subject is RFC 5256's base subject, which
    §4.4.2 asks for. IMAP SORT compares strings with i;ascii-casemap, or with
    i;unicode-casemap on a server advertising I18NLEVEL (RFC 5255): a Comparator naming the
    other collation (or i;ascii-numeric) is sorted locally; with no collation the server's is
    used."""
    caps = {capability.upper() for capability in capabilities}
    server_sorts = "SORT" in caps
    display = "SORT=DISPLAY" in caps
    server_collation = (
        "i;unicode-casemap" if any(c.startswith("I18NLEVEL=") for c in caps) else "i;ascii-casemap"
    )
    if sort is None:
        return SortPlan(())
    if not isinstance(sort, list):
        raise InvalidSort("sort must be a list of Comparators")
    keys: list[SortKey] = []
    for comparator in sort:
        if not isinstance(comparator, Mapping):
            raise InvalidSort("a Comparator must be an object")
        name = comparator.get("property")
        if not isinstance(name, str):
            raise InvalidSort("Comparator.property must be a string")
        ascending = comparator.get("isAscending", True)
        if ascending is None:
            ascending = True
        if not isinstance(ascending, bool):
            raise InvalidSort("Comparator.isAscending must be a boolean")
        collation = comparator.get("collation")
        if collation is not None and not isinstance(collation, str):
            raise InvalidSort("Comparator.collation must be a string")
        keyword = None
        if name in KEYWORD_SORTS:
            keyword = _sort_keyword(comparator.get("keyword"))
            upstream = None
        elif name in _SORT_KEYS or name in _DISPLAY_SORT_KEYS:
            upstream = _SORT_KEYS.get(name) or (_DISPLAY_SORT_KEYS[name] if display else None)
        else:
            raise UnsupportedSort(f"cannot sort by {name!r}")
        if name in STRING_SORTS and collation is not None:
            if collation not in COLLATIONS:
                raise UnsupportedSort(f"unsupported collation {collation!r}")
            if collation != server_collation:
                upstream = None
        if upstream is not None and server_sorts:
            imap = upstream if ascending else b"REVERSE " + upstream
        else:
            imap = None
        keys.append(SortKey(name, ascending, keyword, collation, imap))
    return SortPlan(tuple(keys))


def _sort_keyword(value: Any) -> str:
    try:
        return _keyword("keyword", value)
    except InvalidFilter as exc:
        raise InvalidSort(f"keyword sorts need a valid keyword: {exc}") from exc
