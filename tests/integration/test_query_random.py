"""Email/query on random mail and random queries (seeded), checked two ways:

- against a straightforward evaluation of the same filter over the cache's rows, in
  Python sets (the way bridge answered before its queries ran in SQL), with the text
  conditions asked of the server's SEARCH in every folder, unrestricted: filters, sorts,
  collapseThreads, totals and pages;
- against the server itself: a query within one folder, of conditions IMAP can say, gives
  the UIDs of Dovecot's ``UID SEARCH``, in the order of its ``UID SORT``.

The mail has display names and subjects in several scripts and cases, RFC 2047 encoded
words (base64 and quoted-printable, UTF-8 and Latin-1), names in comments, quoted names
with punctuation, replies in threads, copies in a second folder and keywords: what the
header index (bridge.mail.header_text) must never narrow away.
"""

from __future__ import annotations

import base64
import importlib
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.imap.search import tokens
from bridge.mail.email_query import SHARED_MATCHES
from tests.integration.server import BridgeServer, JmapClient

FOLDERS = ("INBOX", "Archive", "Work")
PEOPLE = [
    ("Alice Smith", "alice@ex.test"), ("Bob O'Neil", "bob.oneil@corp.test"),
    ("Zoë Ångström", "zoe@ex.test"), ("Иван Петров", "ivan@ru.test"),
    ("José Müller", "jose.mueller@ex.test"), ("STRASSE Weiß", "weiss@de.test"),
    ("Doe, John", "jdoe@corp.test"), ("", "noname@ex.test"), ("Ωmega Team", "omega@ex.test"),
]  # fmt: skip
WORDS = ["Report", "budget", "Été", "naïve", "Quarterly", "meeting", "Über", "Привет", "lunch",
         "Invoice", "re-plan", "status", "ÆRØ", "don't", "100%", "Q3/Q4"]  # fmt: skip
KEYWORDS = ["$seen", "$flagged", "work", "$answered"]
START = datetime(2025, 3, 1, tzinfo=UTC)
COUNT = 110
QUERIES = 70
THREAD_CONDITIONS = ["someInThreadHaveKeyword", "noneInThreadHaveKeyword", "allInThreadHaveKeyword"]


def _b(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


def _q_latin1(text: str) -> str:
    encoded = "".join(
        ch if ch.isascii() and ch.isalnum() else "".join(f"={b:02X}" for b in ch.encode("latin-1"))
        for ch in text
    )
    return f"=?iso-8859-1?q?{encoded}?="


def _address(rng: random.Random) -> str:
    name, mailbox = rng.choice(PEOPLE)
    style = rng.randrange(6)
    if not name or style == 0:
        return mailbox
    if style == 1:
        return f"{mailbox} ({name})"
    if style == 2 or "," in name or "'" in name:
        return f'"{name}" <{mailbox}>'
    if style == 3 and not name.isascii():
        try:
            return f"{_q_latin1(name)} <{mailbox}>"
        except UnicodeEncodeError:
            return f"{_b(name)} <{mailbox}>"
    if not name.isascii():
        return f"{_b(name)} <{mailbox}>" if style == 4 else f"{name} <{mailbox}>"
    return f"{name} <{mailbox}>"


def _message(rng: random.Random, number: int) -> bytes:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
    subject = rng.choice(["", "Re: ", "Fwd: "]) + words
    lines = [f"Message-ID: <{number}@random.test>"]
    if number > 5 and rng.random() < 0.3:
        lines.append(f"In-Reply-To: <{rng.randrange(number)}@random.test>")
    lines.append("From: " + _address(rng))
    lines.append("To: " + ", ".join(_address(rng) for _ in range(rng.randint(1, 3))))
    if rng.random() < 0.4:
        lines.append("Cc: " + _address(rng))
    if rng.random() < 0.9:
        lines.append("Subject: " + (subject if subject.isascii() or rng.random() < 0.3
                                    else _b(subject)))  # fmt: skip
    body = "body text\r\n" * rng.randint(1, 40)
    if _has_attachment(number):
        return ("\r\n".join(lines) + '\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; '
                'boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
                + body + "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: "
                'attachment; filename="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
                "JVBERi0xLjQK\r\n--b--\r\n").encode()  # fmt: skip
    return ("\r\n".join(lines) + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
            ).encode()  # fmt: skip


def _has_attachment(number: int) -> bool:
    return number % 5 == 2  # decided apart from the random draws, which stay as they were


def _fill(other: IMAPClient, rng: random.Random) -> None:
    for folder in FOLDERS[1:]:
        other.create_folder(folder)
    for number in range(COUNT):
        folder = rng.choice(FOLDERS)
        flags = [k if not k.startswith("$") else "\\" + k[1:].capitalize()
                 for k in KEYWORDS if rng.random() < 0.35]  # fmt: skip
        arrival = (START + timedelta(minutes=7 * number)).replace(tzinfo=None)
        other.append(folder, _message(rng, number), flags=flags, msg_time=arrival)
    # Copies: the same Email in two folders, with the same flags.
    other.select_folder("INBOX")
    uids = other.search("ALL")
    other.copy(rng.sample(uids, min(10, len(uids))), "Work")


class Reference:
    """The cache's rows as Python sets, and the server's SEARCH for text."""

    def __init__(self, cache: Any, other: IMAPClient, mailboxes: dict[str, str]) -> None:
        with cache.sql() as conn:
            emails = conn.execute("SELECT id, thread_id, keywords, size, received_at FROM emails")
            self.facts = {e: (t, frozenset(k.split()), s, r) for e, t, k, s, r in emails}
            self.locations = conn.execute(
                "SELECT email_id, mailbox_id, uid FROM locations"
            ).fetchall()
        self.boxes: dict[str, set[str]] = {}
        self.by_uid: dict[str, dict[int, str]] = {}
        for email_id, mailbox_id, uid in self.locations:
            self.boxes.setdefault(email_id, set()).add(mailbox_id)
            self.by_uid.setdefault(mailbox_id, {})[uid] = email_id
        self.threads: dict[str, list[str]] = {}
        for email_id, (thread_id, *_) in self.facts.items():
            self.threads.setdefault(thread_id, []).append(email_id)
        self.universe = set(self.facts)
        self.other = other
        self.mailboxes = mailboxes  # name -> id
        # hasAttachment as the test wrote the messages, by their Message-ID.
        self.attached: set[str] = set()
        for name, mailbox_id in mailboxes.items():
            other.select_folder(name, readonly=True)
            item = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
            uids = other.search("ALL")
            fetched = other.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
            for uid, data in fetched.items():
                number = int(data[item].split(b"<", 1)[1].split(b"@", 1)[0])
                if _has_attachment(number) and uid in self.by_uid.get(mailbox_id, {}):
                    self.attached.add(self.by_uid[mailbox_id][uid])

    def where(self, test: Callable[[str], bool]) -> set[str]:
        return {e for e in self.universe if test(e)}

    def thread_has(self, email_id: str, keyword: str) -> list[bool]:
        return [keyword in self.facts[o][1] for o in self.threads[self.facts[email_id][0]]]

    def search(self, key: str, value: str) -> set[str]:
        found: set[str] = set()
        criteria: list[Any] = []
        for token in tokens(value):
            criteria += [key, token]
        for name, mailbox_id in self.mailboxes.items():
            self.other.select_folder(name, readonly=True)
            uids = self.other.search(criteria or ["ALL"], charset="UTF-8")
            held = self.by_uid.get(mailbox_id, {})
            found |= {held[uid] for uid in uids if uid in held}
        return found

    def evaluate(self, node: dict[str, Any]) -> set[str]:
        if "operator" in node:
            parts = [self.evaluate(child) for child in node["conditions"]]
            if node["operator"] == "AND":
                return set.intersection(self.universe, *parts)
            union = set().union(*parts)
            return union if node["operator"] == "OR" else self.universe - union
        result = set(self.universe)
        for name, value in node.items():
            if name in ("from", "to", "cc", "bcc", "subject"):
                result &= self.search(name.upper(), value)
            else:
                result = {e for e in result if self.holds(name, value, e)}
        return result

    def holds(self, name: str, value: Any, email_id: str) -> bool:
        _, keywords, size, received_at = self.facts[email_id]
        boxes = self.boxes.get(email_id, set())
        if name == "inMailbox":
            return value in boxes
        if name == "inMailboxOtherThan":
            return bool(boxes - set(value))
        if name in ("before", "after"):
            moment = int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
            return received_at < moment if name == "before" else received_at >= moment
        if name in ("minSize", "maxSize"):
            return size >= value if name == "minSize" else size < value
        if name in ("hasKeyword", "notKeyword"):
            return (value in keywords) == (name == "hasKeyword")
        if name == "hasAttachment":
            return (email_id in self.attached) == value
        in_thread = self.thread_has(email_id, value)
        if name == "someInThreadHaveKeyword":
            return any(in_thread)
        if name == "noneInThreadHaveKeyword":
            return not any(in_thread)
        return all(in_thread)

    def order(self, ids: set[str], sort: list[dict[str, Any]], collapse: bool) -> list[str]:
        facts = self.facts
        ordered = sorted(ids, key=lambda e: (facts[e][3], e), reverse=True)
        for comparator in reversed(sort):
            prop = comparator["property"]
            if prop == "receivedAt":
                key: Callable[[str], Any] = lambda e: facts[e][3]  # noqa: E731
            elif prop == "size":
                key = lambda e: facts[e][2]  # noqa: E731
            elif prop == "hasKeyword":
                key = lambda e, k=comparator["keyword"]: k in facts[e][1]  # noqa: E731
            else:
                key = lambda e, k=comparator["keyword"]: any(self.thread_has(e, k))  # noqa: E731
            ordered.sort(key=key, reverse=not comparator.get("isAscending", True))
        if not collapse:
            return ordered
        seen: set[str] = set()
        kept = []
        for email_id in ordered:
            if facts[email_id][0] not in seen:
                seen.add(facts[email_id][0])
                kept.append(email_id)
        return kept


def _header_token(rng: random.Random, reference: Reference) -> str:
    """Part of a name, an address or a subject word, in random case; sometimes absent."""
    source = rng.choice([
        *(n for n, _ in PEOPLE if n), *(a for _, a in PEOPLE), *WORDS, "zzq", "Smith <al",
        "ex.test", "o'n", "Weiss", "strasse",
    ])  # fmt: skip
    start = rng.randrange(len(source))
    piece = source[start : start + rng.randint(2, 8)].strip() or source
    if rng.random() < 0.5:
        piece = piece.swapcase() if rng.random() < 0.5 else piece.upper()
    if " " in piece and rng.random() < 0.5:
        return f'"{piece}"'
    return piece


def _condition(rng: random.Random, reference: Reference, ids: list[str]) -> dict[str, Any]:
    kind = rng.randrange(13)
    keyword = rng.choice(KEYWORDS)
    moment = START + timedelta(minutes=rng.randint(0, 7 * COUNT))
    date = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        lambda: {"inMailbox": rng.choice(ids)},
        lambda: {"inMailboxOtherThan": rng.sample(ids, rng.randint(1, 2))},
        lambda: {rng.choice(["before", "after"]): date},
        lambda: {rng.choice(["minSize", "maxSize"]): rng.randint(150, 700)},
        lambda: {rng.choice(["hasKeyword", "notKeyword"]): keyword},
        lambda: {rng.choice(THREAD_CONDITIONS): keyword},
        lambda: {"from": _header_token(rng, reference)},
        lambda: {"to": _header_token(rng, reference)},
        lambda: {"subject": _header_token(rng, reference)},
        lambda: {"cc": _header_token(rng, reference)},
        lambda: {"from": _header_token(rng, reference), "hasKeyword": keyword},
        lambda: {"inMailbox": rng.choice(ids), "subject": _header_token(rng, reference)},
        lambda: {"hasAttachment": rng.random() < 0.5, "inMailbox": rng.choice(ids)},
    ][kind]()


def _filter(rng: random.Random, reference: Reference, ids: list[str], depth: int = 0) -> Any:
    if depth < 2 and rng.random() < 0.35:
        operator = rng.choice(["AND", "OR", "NOT"])
        children = [_filter(rng, reference, ids, depth + 1) for _ in range(rng.randint(1, 3))]
        return {"operator": operator, "conditions": children}
    return _condition(rng, reference, ids)


def _sort(rng: random.Random) -> list[dict[str, Any]]:
    comparators = []
    for _ in range(rng.randint(0, 2)):
        prop = rng.choice(["receivedAt", "size", "hasKeyword", "someInThreadHaveKeyword"])
        comparator: dict[str, Any] = {"property": prop, "isAscending": rng.random() < 0.5}
        if prop not in ("receivedAt", "size"):
            comparator["keyword"] = rng.choice(KEYWORDS)
        comparators.append(comparator)
    return comparators


def test_random_queries_agree_with_the_reference_and_the_server(
    bridge: BridgeServer, jmap: JmapClient, other: IMAPClient, account: tuple[str, str]
) -> None:
    rng = random.Random(8621)
    _fill(other, rng)
    jmap.call("Email/query", {})  # syncs and indexes every folder
    mailboxes = {m["name"]: m["id"] for m in jmap.call("Mailbox/get", {"ids": None})["list"]}
    cache = bridge.bridge.users.get(account[0]).cache
    with cache.sql() as conn:  # the header index knows every Email: it narrows
        assert conn.execute("SELECT COUNT(*) FROM header_text WHERE subject_text IS NULL"
                            ).fetchone()[0] == 0  # fmt: skip
    reference = Reference(cache, other, {n: mailboxes[n] for n in FOLDERS})
    ids = [mailboxes[n] for n in FOLDERS]
    started = time.monotonic()
    nonempty = 0
    for _ in range(QUERIES):
        filter_ = _filter(rng, reference, ids)
        sort = _sort(rng)
        collapse = rng.random() < 0.3
        position, limit = rng.choice([(0, None), (0, 5), (3, 10), (50, 20)])
        args = {"filter": filter_, "sort": sort, "collapseThreads": collapse,
                "position": position, "calculateTotal": True}  # fmt: skip
        if limit is not None:
            args["limit"] = limit
        answer = jmap.call("Email/query", args)
        assert "error" not in answer, (filter_, answer)
        expected = reference.order(reference.evaluate(filter_), sort, collapse)
        assert answer["total"] == len(expected), filter_
        window = expected[position : None if limit is None else position + limit]
        assert answer["ids"] == window, (filter_, sort, collapse)
        nonempty += bool(expected)
    assert nonempty > QUERIES // 3  # the queries find something, not only nothing
    assert time.monotonic() - started < 60


def _server_criteria(rng: random.Random) -> tuple[dict[str, Any], list[Any]]:
    """A filter within one folder and the same criteria for the server's SEARCH."""
    jmap_filter: dict[str, Any] = {}
    criteria: list[Any] = []
    for name in rng.sample(["from", "to", "cc", "subject", "hasKeyword", "minSize"], 2)[
        : rng.randint(1, 2)
    ]:
        if name == "hasKeyword":
            keyword = rng.choice(KEYWORDS)
            jmap_filter[name] = keyword
            criteria += ["KEYWORD", keyword] if not keyword.startswith("$") else [keyword[1:]]
        elif name == "minSize":
            size = rng.randint(150, 700)
            jmap_filter[name] = size
            criteria += ["LARGER", str(size - 1)]
        else:
            source = rng.choice([*(n for n, _ in PEOPLE if n), *(a for _, a in PEOPLE), *WORDS])
            start = rng.randrange(len(source))
            token = source[start : start + rng.randint(2, 6)].strip(" \"'") or source
            token = token.split()[0] if token.split() else source
            token = token.swapcase() if rng.random() < 0.5 else token
            jmap_filter[name] = token
            criteria += [name.upper(), token]
    return jmap_filter, criteria


def test_queries_in_one_folder_give_the_servers_search_and_sort(
    bridge: BridgeServer, jmap: JmapClient, other: IMAPClient, account: tuple[str, str]
) -> None:
    rng = random.Random(5256)
    _fill(other, rng)
    jmap.call("Email/query", {})
    mailboxes = {m["name"]: m["id"] for m in jmap.call("Mailbox/get", {"ids": None})["list"]}
    cache = bridge.bridge.users.get(account[0]).cache
    matched = 0
    for _ in range(40):
        folder = rng.choice(FOLDERS)
        jmap_filter, criteria = _server_criteria(rng)
        ascending = rng.random() < 0.5
        # With a total, the header index's matches are found once for the page and the
        # total; without, the page looks them up itself: both ways are compared.
        counted = rng.random() < 0.7
        answer = jmap.call("Email/query", {
            "filter": {"inMailbox": mailboxes[folder], **jmap_filter},
            "sort": [{"property": "receivedAt", "isAscending": ascending}],
            "calculateTotal": counted,
        })  # fmt: skip
        other.select_folder(folder, readonly=True)
        uids = other.sort(["ARRIVAL" if ascending else "REVERSE ARRIVAL"], criteria, "UTF-8")
        located = cache.locations(mailboxes[folder])
        assert answer["ids"] == [located[uid].email_id for uid in uids], (folder, criteria)
        assert answer.get("total") == (len(uids) if counted else None)
        matched += bool(uids)
    assert matched > 10


def test_a_cache_from_before_the_header_index_answers_and_gets_it_filled(
    bridge: BridgeServer, jmap: JmapClient, other: IMAPClient, account: tuple[str, str]
) -> None:
    """Emails cached without header index rows (as migration 6 leaves them) are asked of
    the upstream meanwhile, and the background indexer fills the rows in."""
    rng = random.Random(2047)
    _fill(other, rng)
    jmap.call("Email/query", {})
    queries = [{"from": "smith"}, {"subject": "budget"}, {"to": "ivan"}, {"cc": "Zoë"},
               {"from": "Müller"}]  # fmt: skip
    before = [jmap.call("Email/query", {"filter": f})["ids"] for f in queries]
    assert all(before), [len(ids) for ids in before]
    user = bridge.bridge.users.get(account[0])
    with user.cache.sql() as conn:
        indexed = conn.execute("SELECT * FROM header_text ORDER BY email_id").fetchall()
        conn.execute("UPDATE header_text SET from_text = NULL, to_text = NULL, cc_text = NULL, "
                     "bcc_text = NULL, subject_text = NULL, inexact = NULL")  # fmt: skip
        conn.execute("INSERT INTO meta(key, value) VALUES ('header_backfill', '1')")
    assert [jmap.call("Email/query", {"filter": f})["ids"] for f in queries] == before
    assert user.indexer.wait(30)
    assert not user.cache.header_backfill_due()
    with user.cache.sql() as conn:
        assert conn.execute("SELECT * FROM header_text ORDER BY email_id").fetchall() == indexed
    assert [jmap.call("Email/query", {"filter": f})["ids"] for f in queries] == before


@pytest.mark.parametrize("shared", [SHARED_MATCHES, 1])
def test_a_word_most_emails_hold_is_counted_as_the_server_counts_it(
    bridge: BridgeServer,
    jmap: JmapClient,
    other: IMAPClient,
    account: tuple[str, str],
    shared: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A To word nearly every Email has: the total is the folder's count less the Emails
    without it (bridge.store.email_query, Clause.unmet). Beside it, Emails without the
    word, one whose To the server reads otherwise (a comment: the server decides), one
    the folder holds twice; total and page are the server's SEARCH, each Email once. A
    word few Emails hold is looked up once for the page and the total, or, past
    SHARED_MATCHES, by each."""
    # (bridge.mail's name email_query is the method's function: the module, by its path.)
    module = importlib.import_module("bridge.mail.email_query")
    monkeypatch.setattr(module, "SHARED_MATCHES", shared)
    tos = ["Alice Smith <alice@ex.test>"] * 14 + ["alice@ex.test (Alice)", "Bob <bob@ex.test>",
                                                  "Bob <bob@ex.test>"]  # fmt: skip
    for number, to in enumerate(tos):
        message = (f"Message-ID: <{number}@common.test>\r\nFrom: Carol <carol@ex.test>\r\n"
                   f"To: {to}\r\nSubject: note {number}\r\n\r\nbody\r\n")  # fmt: skip
        arrival = (START + timedelta(minutes=number)).replace(tzinfo=None)
        other.append("INBOX", message.encode(), msg_time=arrival)
    other.select_folder("INBOX")
    other.copy(other.search(["SUBJECT", "note 3"]), "INBOX")  # the same Email at two UIDs
    inbox = next(m["id"] for m in jmap.call("Mailbox/get", {"ids": None})["list"]
                 if m["role"] == "inbox")  # fmt: skip
    for token in ("alice", "ALIC", "ex.test", "bob"):
        answer = jmap.call("Email/query", {
            "filter": {"inMailbox": inbox, "to": token}, "calculateTotal": True,
            "sort": [{"property": "receivedAt", "isAscending": False}], "limit": 5,
        })  # fmt: skip
        uids = other.sort(["REVERSE ARRIVAL"], ["TO", token], "UTF-8")
        located = bridge.bridge.users.get(account[0]).cache.locations(inbox)
        expected = list(dict.fromkeys(located[uid].email_id for uid in uids))
        assert answer["total"] == len(expected), token
        assert answer["ids"] == expected[:5], token
