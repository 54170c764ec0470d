"""Deterministic sample mail for the demo account, the tests and the benchmarks.

Two generators share one message type:

* ``demo_mailbox()`` builds a small account a person would enjoy clicking through:
  conversations, a newsletter, attachments, non-ASCII names, nested folders. It uses the
  ``email`` package because correctness matters more than speed for ~60 messages.
* ``bulk_messages()`` produces tens of thousands of plausible messages for benchmarks.
  It fills byte templates instead of building ``EmailMessage`` objects, which would be
  two orders of magnitude slower.

Everything is driven by a seeded ``random.Random`` and fixed dates: the same seed gives
the same bytes on every machine, so test expectations and benchmark inputs never drift.
All output is 7-bit ASCII with CRLF line endings, i.e. valid RFC 5322 that any IMAP
server accepts verbatim.
"""

# Non-ASCII look-alike letters (Cyrillic, Greek, dashes) are the point of this sample data.
# ruff: noqa: RUF001

from __future__ import annotations

import base64
import itertools
import random
import struct
import time
import unicodedata
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.quoprimime import body_encode as _qp_encode
from functools import cache
from typing import NamedTuple

__all__ = ["DEMO_ADDRESS", "DEMO_NAME", "SampleMessage", "bulk_messages", "demo_mailbox"]

DEMO_NAME = "Alice Martin"
DEMO_ADDRESS = "alice@example.org"

# Fixed anchors keep the output independent of the clock.
_DEMO_END = datetime(2025, 3, 14, 16, 30, tzinfo=UTC)
_BULK_START = datetime(2023, 1, 2, 8, 0, tzinfo=UTC)

# cte_type="7bit" makes the email package pick quoted-printable/base64 for non-ASCII
# bodies and RFC 2047 for headers, so the raw bytes stay plain ASCII.
_POLICY = policy.default.clone(linesep="\r\n", cte_type="7bit")


@dataclass(frozen=True)
class SampleMessage:
    """One message as it should end up in a mailbox."""

    folder: str  # IMAP name with "/" as the hierarchy separator
    raw: bytes  # RFC 5322, CRLF line endings
    flags: tuple[str, ...]  # IMAP flags and keywords, e.g. "\\Seen", "$Forwarded"
    internal_date: datetime  # aware, UTC


# --------------------------------------------------------------------------------------
# Demo mailbox
# --------------------------------------------------------------------------------------


class _Contact(NamedTuple):
    name: str
    email: str
    tz_hours: int = 1

    @property
    def address(self) -> Address:
        return Address(self.name, addr_spec=self.email)

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


_ME = _Contact(DEMO_NAME, DEMO_ADDRESS)
_ZOE = _Contact("Zoë Ångström", "zoe.angstrom@example.com")
_YUKO = _Contact("田中 優子", "yuko.tanaka@tokyo.example", 9)
_BJORN = _Contact("Björn Müller", "bjorn.mueller@example.net")
_PRIYA = _Contact("Priya Raman", "priya.raman@example.org", 0)
_SAM = _Contact("Sam O'Neil", "sam.oneil@example.org", -5)
_JOSE = _Contact("José Álvarez", "jose.alvarez@example.net")
_OLGA = _Contact("Ольга Смирнова", "olga.smirnova@example.net", 3)
_NEWS = _Contact("The Weekly Byte", "issues@weeklybyte.example", 0)
_CI = _Contact("Bridge CI", "ci@builds.example.com", 0)
_SHOP = _Contact("Nordlys Outdoor", "orders@nordlys.example")
_AIR = _Contact("Skylark Air", "no-reply@skylark-air.example", 0)
_PEOPLE = _Contact("People Team", "people@example.org")
_BANK = _Contact("Harbour Bank", "statements@harbourbank.example")


@dataclass
class _Turn:
    sender: _Contact
    text: str
    unread: bool = False
    flagged: bool = False
    attachments: Sequence[tuple[bytes, str, str, str]] = ()  # data, maintype, subtype, name


@dataclass
class _Ref:
    """What a reply needs to know about its parent."""

    message_id: str
    references: tuple[str, ...]
    subject: str
    sender: _Contact
    recipients: tuple[_Contact, ...]
    index: int | None = None  # position in the output, None for the user's own mail


@dataclass
class _DemoBuilder:
    rng: random.Random
    out: list[SampleMessage] = field(default_factory=list)
    _boundaries: int = 0

    def message_id(self, sender: _Contact) -> str:
        return f"<{self.rng.getrandbits(64):016x}.{len(self.out)}@{sender.domain}>"

    def boundary(self) -> str:
        # Deterministic (the email package would use a random one) and never valid
        # base64 or quoted-printable content.
        self._boundaries += 1
        return f"=_{self.rng.getrandbits(48):012x}.{self._boundaries}"

    def compose(
        self,
        sender: _Contact,
        to: Sequence[_Contact],
        subject: str,
        sent_at: datetime,
        text: str,
        *,
        cc: Sequence[_Contact] = (),
        parent: _Ref | None = None,
        html: str | None = None,
        attachments: Sequence[tuple[bytes, str, str, str]] = (),
        forward: EmailMessage | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> tuple[EmailMessage, _Ref]:
        msg = EmailMessage(policy=_POLICY)
        local = sent_at.astimezone(timezone(timedelta(hours=sender.tz_hours)))
        message_id = self.message_id(sender)
        msg["Date"] = local
        msg["From"] = sender.address
        msg["To"] = [c.address for c in to]
        if cc:
            msg["Cc"] = [c.address for c in cc]
        msg["Subject"] = subject
        msg["Message-ID"] = message_id
        references: tuple[str, ...] = ()
        if parent is not None:
            references = (*parent.references, parent.message_id)
            msg["In-Reply-To"] = parent.message_id
            msg["References"] = " ".join(references)
        for name, value in headers:
            msg[name] = value
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        for data, maintype, subtype, filename in attachments:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        if forward is not None:
            msg.add_attachment(forward)
        for part in msg.walk():
            if part.get_content_maintype() == "multipart" and part.get_boundary() is None:
                part.set_boundary(self.boundary())
        ref = _Ref(message_id, references, subject, sender, tuple(to) + tuple(cc))
        return msg, ref

    def add(self, folder: str, msg: EmailMessage, flags: Sequence[str], when: datetime) -> int:
        self.out.append(SampleMessage(folder, msg.as_bytes(), tuple(flags), when))
        return len(self.out) - 1

    def received(self, sent_at: datetime) -> datetime:
        # Delivery takes a moment: INTERNALDATE is a little after the Date header.
        return (sent_at + timedelta(seconds=self.rng.randint(3, 90))).astimezone(UTC)

    def later(self, when: datetime, low_minutes: int, high_minutes: int) -> datetime:
        return when + timedelta(
            minutes=self.rng.randint(low_minutes, high_minutes), seconds=self.rng.randint(0, 59)
        )

    def single(
        self,
        folder: str,
        sender: _Contact,
        subject: str,
        sent_at: datetime,
        text: str,
        flags: Sequence[str] = ("\\Seen",),
        *,
        to: Sequence[_Contact] = (_ME,),
        html: str | None = None,
        attachments: Sequence[tuple[bytes, str, str, str]] = (),
        forward: EmailMessage | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> tuple[EmailMessage, _Ref]:
        msg, ref = self.compose(
            sender,
            to,
            subject,
            sent_at,
            text,
            html=html,
            attachments=attachments,
            forward=forward,
            headers=headers,
        )
        when = sent_at if sender is _ME else self.received(sent_at)
        ref.index = self.add(folder, msg, flags, when)
        return msg, ref

    def date_of(self, ref: _Ref) -> datetime:
        assert ref.index is not None
        return self.out[ref.index].internal_date

    def thread(
        self,
        folder: str,
        subject: str,
        start: datetime,
        first_to: Sequence[_Contact],
        turns: Sequence[_Turn],
        cc: Sequence[_Contact] = (),
    ) -> list[_Ref]:
        """A conversation: others' messages land in ``folder``, the user's in Sent."""
        refs: list[_Ref] = []
        when = start
        for position, turn in enumerate(turns):
            parent = refs[-1] if refs else None
            if parent is None:
                to, copy, title = list(first_to), list(cc), subject
            else:
                # Reply-all: answer the previous sender, copy everyone else.
                to = [parent.sender]
                others = {c.email: c for c in (parent.sender, *parent.recipients)}
                copy = [c for e, c in others.items() if e not in (turn.sender.email, to[0].email)]
                title = subject if subject.startswith("Re: ") else f"Re: {subject}"
                when = self.later(when, 12, 16 * 60)
            msg, ref = self.compose(
                turn.sender,
                to,
                title,
                when,
                turn.text,
                cc=copy,
                parent=parent,
                attachments=turn.attachments,
            )
            if turn.sender is _ME:
                ref.index = self.add("Sent", msg, ("\\Seen",), when)
            else:
                replied = position + 1 < len(turns) and turns[position + 1].sender is _ME
                flags = [] if turn.unread else ["\\Seen"]
                if replied:
                    flags.append("\\Answered")
                if turn.flagged:
                    flags.append("\\Flagged")
                ref.index = self.add(folder, msg, flags, self.received(when))
            refs.append(ref)
        return refs

    def when(self, days_ago_high: int, days_ago_low: int) -> datetime:
        """A plausible sending time: daytime, some days before the demo's "now"."""
        day = _DEMO_END - timedelta(days=self.rng.randint(days_ago_low, days_ago_high))
        return day.replace(
            hour=self.rng.randint(7, 18),
            minute=self.rng.randint(0, 59),
            second=self.rng.randint(0, 59),
        )


def demo_mailbox(seed: int = 1) -> list[SampleMessage]:
    """A small, pleasant demo account (~60 messages), ordered by internal date."""
    b = _DemoBuilder(random.Random(seed))
    _demo_inbox(b)
    _demo_work(b)
    _demo_work_more(b)
    _demo_archive(b)
    _demo_drafts_and_trash(b)
    return _distinct_dates(sorted(b.out, key=lambda m: m.internal_date))


def _distinct_dates(messages: list[SampleMessage]) -> list[SampleMessage]:
    # INTERNALDATE has one-second resolution; distinct seconds per folder keep the
    # server's date order (and so UID order) unambiguous.
    used: set[tuple[str, datetime]] = set()
    result = []
    for msg in messages:
        when = msg.internal_date.replace(microsecond=0)
        while (msg.folder, when) in used:
            when += timedelta(seconds=1)
        used.add((msg.folder, when))
        result.append(SampleMessage(msg.folder, msg.raw, msg.flags, when))
    return result


def _demo_inbox(b: _DemoBuilder) -> None:
    b.thread(
        "INBOX",
        "Lunch on Friday?",
        b.when(6, 5),
        [_ME],
        [
            _Turn(
                _ZOE,
                "Hi Alice,\n\nAre you free for lunch on Friday? The Lebanese place on "
                "Harbour Street finally opened and I hear the falafel is excellent.\n\nZoë\n",
            ),
            _Turn(_ME, "Hi Zoë,\n\nFriday works! 12:30? I'll book a table for two.\n\nAlice\n"),
            _Turn(_ZOE, "12:30 is perfect. See you there!\n\nZ.\n", unread=True),
        ],
    )
    b.thread(
        "INBOX",
        "Q3 planning offsite",
        b.when(12, 9),
        [_ME],
        cc=[_SAM, _BJORN],
        turns=[
            _Turn(
                _PRIYA,
                "Hi all,\n\nIt's time to plan the Q3 offsite. I'm thinking two days in "
                "late June, somewhere reachable by train. Could you each send me the dates "
                "that do NOT work for you?\n\nThanks,\nPriya\n",
            ),
            _Turn(
                _SAM, "June 23-27 is out for me (family wedding). Anything else is fine.\n\nSam\n"
            ),
            _Turn(
                _ME,
                "I'm away June 9-13. A place with a lake would be lovely, just saying.\n\nAlice\n",
            ),
            _Turn(_BJORN, "No constraints here. +1 to the lake, I'll bring the kayak.\n\nBjörn\n"),
            _Turn(
                _PRIYA,
                "Great, then June 17-18 it is. I'll look for venues near a lake and "
                "share a shortlist next week.\n\nPriya\n",
                flagged=True,
            ),
        ],
    )
    b.thread(
        "INBOX",
        "会議のお知らせ",
        b.when(4, 3),
        [_ME],
        [
            _Turn(
                _YUKO,
                "アリスさん\n\nお疲れ様です。来週の火曜日 10:00 (JST) にプロジェクト定例会議を"
                "行います。議題は添付の資料をご覧ください。\n\nよろしくお願いいたします。\n田中\n",
                flagged=True,
            ),
            _Turn(
                _ME,
                "田中さん\n\nご連絡ありがとうございます。参加します。\n"
                "(Thanks, Yuko! I'll be there.)\n\nAlice\n",
            ),
        ],
    )
    b.thread(
        "INBOX",
        "Flat viewing on Saturday",
        b.when(9, 7),
        [_ME],
        [
            _Turn(
                _BJORN,
                "Hey Alice,\n\nThe landlord confirmed the viewing for Saturday at 11. "
                "Do you still want to come along and give a second opinion?\n\nBjörn\n",
            ),
            _Turn(_ME, "Absolutely. Send me the address and I'll meet you there.\n\nA.\n"),
            _Turn(
                _BJORN, "Kastanienallee 12, third floor, no lift (sorry). Bring coffee?\n\nBjörn\n"
            ),
            _Turn(_ME, "Two flat whites coming up. See you at 10:55.\n\nA.\n"),
        ],
    )
    b.thread(
        "INBOX",
        "Book club: what's next?",
        b.when(11, 10),
        [_ME, _JOSE],
        [
            _Turn(
                _ZOE,
                'Hi bookworms,\n\nWe finished "The Left Hand of Darkness". Suggestions for '
                "next month? I'd vote for something shorter, my holiday is coming up.\n\nZoë\n",
            ),
            _Turn(
                _JOSE,
                'How about "Cien años de soledad"? Not short, I admit. Otherwise "Piranesi"'
                " - short and strange.\n\nJosé\n",
            ),
            _Turn(_ME, "Piranesi gets my vote. My place on the 28th? I'll make tea.\n\nAlice\n"),
            _Turn(_ZOE, "Piranesi it is! See you on the 28th.\n\nZoë\n"),
        ],
    )
    b.thread(
        "INBOX",
        "José's paella, as promised",
        b.when(20, 15),
        [_ME],
        [
            _Turn(
                _JOSE,
                "Alice,\n\nHere it is: the secret is the sofrito. Cook the onion, "
                "pepper and tomato slowly for at least 20 minutes, then add the rice and "
                "do not stir again. Saffron, rosemary, and patience.\n\n¡Buen provecho!\n"
                "José\n",
            ),
            _Turn(
                _ME, "Thank you! Trying it this weekend. I'll report back (with photos).\n\nAlice\n"
            ),
        ],
    )

    pdf_name = "Präsentation Q3 – Übersicht.pdf"
    slides, slides_ref = b.single(
        "INBOX",
        _BJORN,
        "Slides for Thursday",
        b.when(3, 2),
        "Hi Alice,\n\nAttached are the slides for Thursday's review. Page 4 still needs "
        "the final numbers; everything else should be good to go.\n\nBjörn\n",
        flags=("\\Seen", "\\Flagged", "$Forwarded"),
        attachments=[
            (_pdf("Q3 overview", "Draft for Thursday's review"), "application", "pdf", pdf_name)
        ],
    )
    b.single(
        "Sent",
        _ME,
        "Fwd: Slides for Thursday",
        b.later(b.date_of(slides_ref), 20, 90),
        "Priya, FYI: Björn's slides for Thursday, forwarded as is.\n\nAlice\n",
        to=(_PRIYA,),
        forward=slides,
    )
    b.single(
        "INBOX",
        _ZOE,
        "Photos from Ålesund",
        b.when(2, 1),
        "Alice!\n\nThe light up here is unreal. Here's the harbour at sunset, more photos "
        "when I'm back home.\n\nHugs,\nZoë\n",
        flags=(),
        attachments=[(_png(96, 64), "image", "png", "alesund-harbour.png")],
    )
    for issue, (days, seen) in enumerate(((15, True), (8, True), (1, False)), start=111):
        b.single(
            "INBOX",
            _NEWS,
            _newsletter_subject(issue),
            b.when(days, days),
            _newsletter_text(issue),
            flags=("\\Seen",) if seen else (),
            html=_newsletter_html(issue),
            headers=_LIST_HEADERS,
        )
    for run, (days, status) in enumerate(((5, "passed"), (2, "failed"), (1, "passed")), start=480):
        b.single(
            "INBOX",
            _CI,
            f"[bridge] Build #{run} {status} on main",
            b.when(days, days),
            f"Build #{run} {status}.\n\nBranch: main\nDuration: {b.rng.randint(2, 9)}m "
            f"{b.rng.randint(0, 59)}s\nTests: {b.rng.randint(400, 450)} passed"
            + (", 2 failed" if status == "failed" else "")
            + "\n",
            flags=("\\Seen",) if days > 1 else (),
        )
    b.single(
        "INBOX",
        _SHOP,
        "Your order #10482 has shipped",
        b.when(6, 6),
        "Good news! Your order is on its way.\n\n  1 x Merino base layer, size M\n"
        "  1 x Trail socks (3-pack)\n\nExpected delivery: Tuesday.\n\nNordlys Outdoor\n",
    )
    b.single(
        "INBOX",
        _PEOPLE,
        "Welcome to the new mail setup",
        b.when(30, 30),
        "Hello,\n\nYour mailbox has been moved to the new server. Folders, flags and "
        "filters came along; if anything looks odd, just reply to this message.\n\n"
        "The People Team\n",
    )


def _demo_work(b: _DemoBuilder) -> None:
    b.thread(
        "Work",
        "Weekly status",
        b.when(7, 7),
        [_ME],
        cc=[_PRIYA],
        turns=[
            _Turn(
                _SAM,
                "Status for this week:\n\n- importer: CSV fixes merged\n- search: "
                "benchmark numbers in the wiki\n- next: flaky login test\n\nSam\n",
            ),
            _Turn(
                _ME,
                "Thanks Sam. Could you add the benchmark machine specs to the wiki page "
                "too?\n\nAlice\n",
            ),
            _Turn(_SAM, "Done, and I linked the raw results.\n\nSam\n"),
        ],
    )
    b.single(
        "Work",
        _PEOPLE,
        "Office closed on Monday",
        b.when(10, 10),
        "Hi everyone,\n\nThe office is closed on Monday for the floor renovation. "
        "Please work from home.\n\nThe People Team\n",
    )
    b.single(
        "Work",
        _OLGA,
        "Перевод интерфейса: готово",
        b.when(11, 11),
        "Привет, Алиса!\n\nПеревод интерфейса на русский готов, файлы в репозитории. "
        "Посмотри, пожалуйста, раздел настроек.\n\nОльга\n",
        flags=("\\Seen", "\\Flagged"),
    )
    b.single(
        "Work",
        _PEOPLE,
        "Expense report approved",
        b.when(16, 16),
        "Your expense report EXP-2231 (train tickets, 84.50 EUR) has been approved.\n",
    )

    kickoff = b.thread(
        "Work/Projects",
        "Project Aurora: kickoff",
        b.when(25, 22),
        [_ME, _SAM],
        turns=[
            _Turn(
                _PRIYA,
                "Hi both,\n\nAurora is green-lit. Goal: JMAP access for every legacy "
                "mailbox by the end of Q3. Kickoff on Wednesday, agenda below.\n\n1. Scope\n"
                "2. Milestones\n3. Who does what\n\nPriya\n",
            ),
            _Turn(
                _SAM, "Looking forward to it. I'll prepare a short demo of the IMAP side.\n\nSam\n"
            ),
            _Turn(_ME, "Great news! I'll bring the draft architecture diagram.\n\nAlice\n"),
            _Turn(_PRIYA, "Perfect, see you Wednesday.\n\nPriya\n"),
        ],
    )
    b.thread(
        "Work/Projects",
        "Bug in the CSV importer",
        b.later(b.date_of(kickoff[-1]), 60 * 24 * 3, 60 * 24 * 5),
        [_ME],
        turns=[
            _Turn(
                _SAM,
                "Alice, the importer chokes on semicolon-separated files (Excel export "
                "with a German locale). Stack trace attached.\n\nSam\n",
                attachments=[(_TRACE, "text", "plain", "traceback.txt")],
            ),
            _Turn(
                _ME,
                "Good catch. Sniffing the dialect with csv.Sniffer should do; I'll open a "
                "PR.\n\nAlice\n",
            ),
            _Turn(
                _SAM,
                "Tested the PR, works with all three sample files. Approved!\n\nSam\n",
                unread=True,
            ),
        ],
    )


def _demo_work_more(b: _DemoBuilder) -> None:
    b.thread(
        "Work",
        "Naming: mailbox or folder?",
        b.when(14, 13),
        [_ME, _PRIYA],
        [
            _Turn(
                _OLGA,
                'Quick question for the UI strings: do we say "mailbox" (like JMAP) or '
                '"folder" (like most mail apps)? The translations differ a lot.\n\nOlga\n',
            ),
            _Turn(
                _ME,
                '"Folder" in the UI, "mailbox" in the API docs. Users think in folders.\n\nAlice\n',
            ),
            _Turn(_PRIYA, "Agreed. Olga, please add it to the glossary.\n\nPriya\n"),
        ],
    )
    b.single(
        "Work",
        _PEOPLE,
        "Reminder: security training due Friday",
        b.when(4, 4),
        "Friendly reminder: the yearly security training is due this Friday. It takes about "
        "25 minutes.\n\nThe People Team\n",
        flags=(),
    )


def _demo_archive(b: _DemoBuilder) -> None:
    b.thread(
        "Archive",
        "Moving boxes",
        b.when(110, 100),
        [_ME],
        [
            _Turn(_BJORN, "Do you still have those moving boxes? Need about ten.\n\nBjörn\n"),
            _Turn(_ME, "Twelve, flat-packed in the basement. Come by any evening.\n\nA.\n"),
            _Turn(_BJORN, "Picked them up, thanks! I owe you a beer.\n\nBjörn\n"),
        ],
    )
    b.single(
        "Archive",
        _AIR,
        "Booking confirmation SKL-7Q2XK: Berlin - Oslo",
        b.when(90, 90),
        "Dear Alice Martin,\n\nThank you for flying with Skylark Air.\n\n"
        "  SK 2207  Berlin (BER) 07:40 -> Oslo (OSL) 09:35\n  SK 2210  Oslo (OSL) "
        "18:20 -> Berlin (BER) 20:15\n\nBooking reference: SKL-7Q2XK\n",
    )
    b.single(
        "Archive",
        _SHOP,
        "Your receipt for order #9921",
        b.when(75, 75),
        "Thanks for shopping with us!\n\n  1 x Down jacket, size M     189.00 EUR\n"
        "  Shipping                       0.00 EUR\n  Total                        189.00 EUR\n",
    )
    b.single(
        "Archive",
        _BANK,
        "Your statement for January is ready",
        b.when(70, 70),
        "Your monthly statement is ready. For your security it is only available "
        "after logging in to online banking.\n",
    )
    b.single(
        "Archive",
        _NEWS,
        _newsletter_subject(100),
        b.when(100, 100),
        _newsletter_text(100),
        html=_newsletter_html(100),
        headers=_LIST_HEADERS,
    )
    b.single(
        "Archive",
        _ZOE,
        "Tax documents 2024",
        b.when(80, 80),
        "Hi Alice, the accountant needs the signed form by the end of the month. "
        "I've filled in my part.\n\nZoë\n",
        attachments=[
            (
                _pdf("Tax form 2024", "Signed: Zoe Angstrom"),
                "application",
                "pdf",
                "tax-form-2024.pdf",
            )
        ],
    )


def _demo_drafts_and_trash(b: _DemoBuilder) -> None:
    b.single(
        "Drafts",
        _ME,
        "Ideas for the team retreat",
        b.when(1, 1),
        "Priya,\n\nSome ideas for the retreat:\n\n- a morning hike\n- lightning talks\n- \n",
        flags=("\\Seen", "\\Draft"),
        to=(_PRIYA,),
    )
    b.single(
        "Trash",
        _SHOP,
        "Last chance: 20% off everything",
        b.when(12, 12),
        "Our winter sale ends tonight. Use code FROST20 at checkout.\n",
    )
    b.single(
        "Trash",
        _CI,
        "[bridge] Build #455 failed on main",
        b.when(40, 40),
        "Build #455 failed.\n\nBranch: main\nTests: 401 passed, 1 failed\n",
    )
    b.single(
        "Trash",
        _PEOPLE,
        "Meeting moved to 3pm",
        b.when(18, 18),
        "The all-hands moved to 3pm. (Update: it is back at 2pm, ignore this.)\n",
    )


_LIST_HEADERS = (
    ("List-Id", "The Weekly Byte <weekly.weeklybyte.example>"),
    ("List-Unsubscribe", "<https://weeklybyte.example/unsubscribe/a1b2c3>"),
    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
)

_STORIES = (
    (
        "Ship the boring version first",
        "A short essay on why the first release should be dull, reliable and easy to delete.",
    ),
    (
        "grep is still undefeated",
        "Ten everyday searches, timed against three newer tools. The results may surprise you.",
    ),
    (
        "The case for plain-text email",
        "Smaller, faster, readable everywhere, and kinder to screen readers.",
    ),
    ("A tiny HTTP server in 40 lines", "Build one, then never use it in production."),
    (
        "Reading RFCs for fun",
        "Where to start, what to skip, and why RFC 5322 has a section on obsolete syntax.",
    ),
)


def _newsletter_subject(issue: int) -> str:
    return f"The Weekly Byte #{issue}: {_STORIES[issue % len(_STORIES)][0]}"


def _newsletter_text(issue: int) -> str:
    lines = [f"THE WEEKLY BYTE - issue #{issue}", "", "This week:", ""]
    for n in range(3):
        title, blurb = _STORIES[(issue + n) % len(_STORIES)]
        lines += [f"* {title}", f"  {blurb}", ""]
    lines += [
        "You receive this because you subscribed at weeklybyte.example.",
        "Unsubscribe: https://weeklybyte.example/unsubscribe/a1b2c3",
        "",
    ]
    return "\n".join(lines)


def _newsletter_html(issue: int) -> str:
    items = "".join(
        f'<h2 style="font-size:18px;margin:16px 0 4px">{title}</h2>'
        f'<p style="margin:0;color:#444">{blurb}</p>'
        for title, blurb in (_STORIES[(issue + n) % len(_STORIES)] for n in range(3))
    )
    return (
        '<!DOCTYPE html>\n<html><body style="font-family:sans-serif;max-width:600px">\n'
        f'<h1 style="color:#1a5fb4">The Weekly Byte <small>#{issue}</small></h1>\n'
        f'{items}\n<hr><p style="font-size:12px;color:#888">You receive this because you '
        'subscribed. <a href="https://weeklybyte.example/unsubscribe/a1b2c3">Unsubscribe'
        "</a></p>\n</body></html>\n"
    )


_TRACE = (
    b"Traceback (most recent call last):\n"
    b'  File "importer.py", line 88, in load\n'
    b"    row = next(reader)\n"
    b"ValueError: expected 7 fields, saw 1\n"
)


def _pdf(title: str, subtitle: str) -> bytes:
    """A minimal but valid one-page PDF, so viewers can actually open the attachment."""
    text = f"BT /F1 28 Tf 72 760 Td ({title}) Tj /F1 14 Tf 0 -32 Td ({subtitle}) Tj ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(text)} >>\nstream\n{text}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def _png(width: int, height: int) -> bytes:
    """A small sunset gradient as a real PNG."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            sea = y > height * 0.62
            r = 40 + (60 if sea else 215) * (height - y) // height
            g = 30 + (70 if sea else 120) * (height - y) // height + x % 3
            blue = 90 + (140 if sea else 60) * y // height
            rows += bytes((min(r, 255), min(g, 255), min(blue, 255)))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------
# Bulk messages
# --------------------------------------------------------------------------------------

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_FIRST = (
    "Anna",
    "Ben",
    "Chloé",
    "David",
    "Elif",
    "Farid",
    "Grace",
    "Hiro",
    "Inès",
    "Jonas",
    "Kavya",
    "Liam",
    "Maja",
    "Noah",
    "Oskar",
    "Paula",
    "Quinn",
    "Rosa",
    "Søren",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoë",
)
_LAST = (
    "Andersen",
    "Becker",
    "Costa",
    "Dubois",
    "Eriksson",
    "Fischer",
    "García",
    "Hughes",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "López",
    "Mäkinen",
    "Novak",
    "O'Brien",
    "Petrov",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Ünal",
    "Vogel",
    "Wójcik",
    "Yilmaz",
    "Zhang",
)
_DOMAINS = (
    "example.com",
    "example.net",
    "example.org",
    "mail.example.com",
    "corp.example",
    "lists.example.net",
)
# Seconds east of UTC, weighted towards Europe.
_OFFSETS = (0, 0, 3600, 3600, 7200, -18000, -28800, 19800, 32400, 36000)
_TOPICS = (
    "budget",
    "roadmap",
    "release 2.4",
    "onboarding",
    "the quarterly report",
    "vendor contract",
    "design review",
    "team dinner",
    "server migration",
    "customer feedback",
    "hiring plan",
    "conference talk",
    "security audit",
    "API deprecation",
    "office move",
    "sprint 42",
    "the backup job",
    "translations",
)
_SUBJECTS = (
    "Question about {t}",
    "Update on {t}",
    "{T}: next steps",
    "Notes from the {t} call",
    "Draft: {t}",
    "Quick sync on {t}?",
    "{T} - action items",
    "Re-scheduling {t}",
    "FYI: {t}",
    "Thoughts on {t}",
    "[{n}] {T} checklist",
    "Invoice {n} for {t}",
)
_SUBJECTS_INTL = (
    "Rückfrage zu {t}",
    "Réunion : {t}",
    "会議のお知らせ ({n})",
    "Отчёт по {t}",
    "Café & {t} ☕",
    "Προθεσμία για {t}",
    "Año nuevo, {t} nuevo",
)

_SENTENCES = (
    "Thanks for sending this over so quickly.",
    "I had a look at the numbers and they mostly line up with what we expected.",
    "Could you double-check the figures in the second table before Friday?",
    "Let's discuss the open points in our next meeting.",
    "I've attached the latest version; changes are highlighted.",
    "The deadline moved by a week, which gives us some breathing room.",
    "Please let me know if anything is unclear.",
    "We should loop in the legal team before signing anything.",
    "I'm out of the office on Thursday but reachable by phone.",
    "The test environment is back up after this morning's maintenance.",
    "Two customers reported the same issue, so it is probably not a fluke.",
    "I agree with the proposal, with one small change to the timeline.",
    "Can we move the call to 3pm? Something came up.",
    "The draft looks good to me; only minor comments inline.",
    "I'll prepare a summary for the steering committee.",
    "Good catch, I fixed the typo in the shared document.",
    "Lunch is on me next time.",
    "We're still waiting for the vendor to confirm the delivery date.",
    "Happy to help with the review if you need a second pair of eyes.",
    "The migration finished overnight without any errors.",
)
_SENTENCES_INTL = (
    "Vielen Dank für die schnelle Rückmeldung, die Änderungen sind übernommen.",
    "Merci pour le compte rendu, je relis ça demain matin.",
    "資料を確認しました。特に問題はありません。",
    "Спасибо, всё получили, отвечу до пятницы.",
    "¿Podemos revisar el presupuesto la próxima semana?",
    "Tack för hjälpen, det fungerar nu.",
)
_SIGNOFFS = ("Best,", "Thanks,", "Cheers,", "Regards,", "Talk soon,", "--")


_ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//bridge//sample//EN\r
BEGIN:VEVENT\r
UID:sample-event-1@example.org\r
DTSTAMP:20230101T090000Z\r
DTSTART:20230110T140000Z\r
DTEND:20230110T150000Z\r
SUMMARY:Planning meeting\r
END:VEVENT\r
END:VCALENDAR\r
"""


class _BulkPool(NamedTuple):
    # From header value, domain, UTC offset, first name as plain text and quoted-printable.
    senders: tuple[tuple[str, str, int, str, str], ...]
    paragraphs: tuple[str, ...]
    quoted: tuple[str, ...]
    intl_paragraphs: tuple[str, ...]  # already quoted-printable encoded
    attachments: tuple[tuple[str, str, str], ...]  # content type, filename, base64 body


@cache
def _bulk_pool() -> _BulkPool:
    # Fixed seed: the pool is shared scenery, the caller's seed picks from it.
    rng = random.Random(20230102)
    senders = []
    for _ in range(80):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        local = _ascii_local_part(f"{first}.{last}")
        domain = rng.choice(_DOMAINS)
        name = f"{first} {last}"
        header = f"{_phrase(name)} <{local}@{domain}>"
        senders.append((header, domain, rng.choice(_OFFSETS), first, _qp(first)))
    paragraphs = tuple(
        _wrap(" ".join(rng.sample(_SENTENCES, rng.randint(2, 5)))) for _ in range(60)
    )
    quoted = tuple("\r\n".join("> " + line for line in p.split("\r\n")) for p in paragraphs)
    intl = tuple(
        _qp(_wrap(" ".join(rng.sample(_SENTENCES_INTL, rng.randint(1, 3))))) for _ in range(20)
    )
    attachments = []
    for ctype, name, size in (
        ("application/pdf", "report.pdf", 6000),
        ("image/png", "screenshot.png", 3000),
        ("text/csv", "export.csv", 1500),
        ("application/octet-stream", "backup.bin", 12000),
        ("text/calendar", "invite.ics", 0),
    ):
        if ctype == "application/pdf":
            data = _pdf("Report", "Generated for the benchmark")
            data += b"%" + rng.randbytes(max(0, size - len(data)))
        elif ctype == "image/png":
            data = _png(40, 30)
        elif ctype == "text/calendar":
            data = _ICS.encode()
        elif ctype == "text/csv":
            data = "".join(
                f"{i},{rng.choice(_TOPICS)},{rng.randint(1, 999)}\r\n" for i in range(size // 20)
            ).encode()
        else:
            data = rng.randbytes(size)
        attachments.append((ctype, name, base64.encodebytes(data).decode().replace("\n", "\r\n")))
    return _BulkPool(tuple(senders), paragraphs, quoted, intl, tuple(attachments))


def _ascii_local_part(name: str) -> str:
    # "Søren.Mäkinen" -> "soren.makinen": strip accents, map the letters NFKD keeps.
    decomposed = unicodedata.normalize("NFKD", name.lower().translate(_ASCII_FOLD))
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c == "."))


_ASCII_FOLD = str.maketrans({"ø": "o", "æ": "ae", "ß": "ss", "ł": "l"})


def _wrap(text: str, width: int = 72) -> str:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n".join(lines)


def _qp(text: str) -> str:
    # quoprimime encodes code points < 256 one by one: feed it the UTF-8 bytes as latin-1.
    data = text.replace("\r\n", "\n").encode().decode("latin-1")
    return _qp_encode(data, 76, eol="\r\n")


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 B-encoded words, each within the 75-character limit."""
    words, chunk = [], b""
    for char in text:
        data = char.encode()
        if len(chunk) + len(data) > 45:  # 45 bytes -> 60 base64 characters
            words.append(chunk)
            chunk = b""
        chunk += data
    words.append(chunk)
    return [f"=?UTF-8?B?{base64.b64encode(w).decode()}?=" for w in words]


def _phrase(name: str) -> str:
    if name.isascii():
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return " ".join(_encoded_words(name))


def _unstructured(text: str) -> str:
    # Encoded words are folded one per line so no header line exceeds 78 characters.
    return text if text.isascii() else _FOLD.join(_encoded_words(text))


def _date(t: int, offset: int) -> str:
    tm = time.gmtime(t + offset)
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return (
        f"{_DAYS[tm.tm_wday]}, {tm.tm_mday:02d} {_MONTHS[tm.tm_mon - 1]} {tm.tm_year} "
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} {sign}{hours:02d}{minutes:02d}"
    )


_ME_HEADER = f'"{DEMO_NAME}" <{DEMO_ADDRESS}>'
_FOLD = "\r\n "  # header folding: CRLF followed by whitespace
_PARA_SEP = "\r\n\r\n"
_PARA_COUNTS = (1, 2, 3, 4, 6, 10)
_PARA_CUM_WEIGHTS = tuple(itertools.accumulate((25, 30, 20, 12, 8, 5)))


def bulk_messages(
    count: int, folder: str = "INBOX", seed: int = 1, start: datetime | None = None
) -> Iterator[SampleMessage]:
    """``count`` varied messages with strictly increasing internal dates, fast.

    Roughly: 70% \\Seen, 20% replies within earlier threads, 10% multipart/mixed with a
    small attachment, 10% non-ASCII subjects, ~15% quoted-printable bodies (non-ASCII
    text or signature), 2% large (20-70 kB) bodies. Dates advance 20 s to 1 h per message.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    rng = random.Random(seed)
    random_, randint, choice, choices = rng.random, rng.randint, rng.choice, rng.choices
    pool = _bulk_pool()
    t = int((start or _BULK_START).timestamp())
    # Messages a reply can attach to: (message id, subject, references). Bounded so that
    # threads stay local in time, as real conversations do.
    recent: list[tuple[str, str, str]] = []
    for i in range(count):
        t += randint(20, 3600)
        header, domain, offset, first, first_qp = choice(pool.senders)
        message_id = f"<{seed}.{i}.{rng.getrandbits(40):010x}@{domain}>"
        thread_headers = ""
        if recent and random_() < 0.2:
            parent_id, subject, parent_refs = choice(recent)
            # Long threads keep only the newest ids, as most clients do.
            references = f"{parent_refs} {parent_id}".split()[-8:]
            thread_headers = f"In-Reply-To: {parent_id}\r\nReferences: {_FOLD.join(references)}\r\n"
            title = f"Re: {subject}"
            own_refs = " ".join(references)
        else:
            topic = choice(_TOPICS)
            template = choice(_SUBJECTS_INTL) if random_() < 0.1 else choice(_SUBJECTS)
            subject = title = template.format(t=topic, T=topic.capitalize(), n=randint(100, 9999))
            own_refs = ""
        if len(recent) < 200:
            recent.append((message_id, subject, own_refs))
        else:
            recent[randint(0, 199)] = (message_id, subject, own_refs)

        if random_() < 0.02:
            paragraphs = choices(pool.paragraphs, k=randint(80, 240))
        else:
            size = choices(_PARA_COUNTS, cum_weights=_PARA_CUM_WEIGHTS)[0]
            paragraphs = choices(pool.paragraphs, k=size)
        if thread_headers:
            paragraphs.insert(0, choice(pool.quoted))
        # The ASCII paragraphs are valid quoted-printable as they are (no "=", short
        # lines), so only the non-ASCII pieces need their pre-encoded form.
        intl = random_() < 0.08
        if intl or first != first_qp:
            if intl:
                paragraphs.append(choice(pool.intl_paragraphs))
            encoding, charset, signature = "quoted-printable", "utf-8", first_qp
        else:
            encoding, charset, signature = "7bit", "us-ascii", first
        body = (
            f"Hi Alice,\r\n\r\n{_PARA_SEP.join(paragraphs)}\r\n\r\n"
            f"{choice(_SIGNOFFS)}\r\n{signature}\r\n"
        )
        head = (
            f"Date: {_date(t - randint(2, 240), offset)}\r\n"
            f"From: {header}\r\n"
            f"To: {_ME_HEADER}\r\n"
            f"Subject: {_unstructured(title)}\r\n"
            f"Message-ID: {message_id}\r\n"
            f"{thread_headers}"
            "MIME-Version: 1.0\r\n"
        )
        text_headers = (
            f"Content-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {encoding}\r\n"
        )
        if random_() < 0.1:
            content_type, filename, payload = choice(pool.attachments)
            boundary = f"=_bulk{seed}.{i}"
            raw = (
                f'{head}Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
                "This is a multi-part message in MIME format.\r\n\r\n"
                f"--{boundary}\r\n{text_headers}\r\n{body}\r\n"
                f'--{boundary}\r\nContent-Type: {content_type}; name="{filename}"\r\n'
                f'Content-Disposition: attachment; filename="{filename}"\r\n'
                f"Content-Transfer-Encoding: base64\r\n\r\n{payload}\r\n"
                f"--{boundary}--\r\n"
            )
        else:
            raw = f"{head}{text_headers}\r\n{body}"

        flags: tuple[str, ...] = ()
        if random_() < 0.7:
            flags = ("\\Seen", "\\Answered") if random_() < 0.12 else ("\\Seen",)
        if random_() < 0.05:
            flags += ("\\Flagged",)
        if random_() < 0.01:
            flags += ("$Forwarded",)
        yield SampleMessage(folder, raw.encode("ascii"), flags, datetime.fromtimestamp(t, UTC))
