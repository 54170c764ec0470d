"""bridge.demo.seed against a real Dovecot: what we write is what IMAP clients see."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.demo.sample import SampleMessage, bulk_messages, demo_mailbox
from bridge.demo.seed import append_messages, seed_demo, write_maildir

pytestmark = pytest.mark.skipif(shutil.which("dovecot") is None, reason="needs dovecot")

PASSWORD = "pw"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina")
DEMO_FOLDERS = {"INBOX", "Sent", "Archive", "Work", "Work/Projects", "Drafts", "Trash"}
NESTED = "Lists/Café & Co"  # modified UTF-7 on disk: "Caf&AOk- &- Co"


@pytest.fixture(scope="module")
def seeded_dovecot() -> Iterator[Dovecot]:
    server = Dovecot(dict.fromkeys(USERS, PASSWORD))
    try:
        # Seeded before the server starts: Dovecot has never seen this account.
        seed_demo(server, "alice")
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def imap(server: Dovecot, user: str) -> Iterator[IMAPClient]:
    with IMAPClient(server.host, server.port, ssl=False, timeout=60) as client:
        client.login(user, PASSWORD)
        client.normalise_times = False  # aware datetimes for INTERNALDATE
        yield client


def folder_names(client: IMAPClient) -> dict[str, set[str]]:
    return {name: {f.decode() for f in flags} for flags, _sep, name in client.list_folders()}


def subscribed(client: IMAPClient) -> set[str]:
    return {name for _flags, _sep, name in client.list_sub_folders()}


def fetch_all(client: IMAPClient, folder: str) -> list[dict[bytes, object]]:
    client.select_folder(folder, readonly=True)
    uids = client.search("ALL")
    if not uids:
        return []
    response = client.fetch(uids, ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODY.PEEK[]"])
    return [response[uid] for uid in sorted(response)]


def flag_set(flags: object) -> set[str]:
    assert isinstance(flags, tuple)
    return {f.decode() for f in flags} - {"\\Recent"}


def status(client: IMAPClient, folder: str) -> tuple[int, int]:
    result = client.folder_status(folder, ["MESSAGES", "UNSEEN"])
    return result[b"MESSAGES"], result[b"UNSEEN"]


def expected_status(messages: list[SampleMessage]) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = {}
    for m in messages:
        entry = counts.setdefault(m.folder, [0, 0])
        entry[0] += 1
        entry[1] += "\\Seen" not in m.flags
    return {folder: (total, unseen) for folder, (total, unseen) in counts.items()}


# -- write_maildir: the demo account ---------------------------------------------------


def test_demo_folders_are_listed_and_subscribed(seeded_dovecot: Dovecot) -> None:
    with imap(seeded_dovecot, "alice") as client:
        folders = folder_names(client)
        assert set(folders) >= DEMO_FOLDERS
        # Work holds mail itself and has a child: selectable, not \Noselect.
        assert "\\HasChildren" in folders["Work"]
        assert "\\Noselect" not in folders["Work"]
        assert "\\Sent" in folders["Sent"]
        assert subscribed(client) >= DEMO_FOLDERS
    subscriptions = (seeded_dovecot.mail_dir("alice") / "subscriptions").read_bytes()
    assert subscriptions.startswith(b"V\t2\n\n")
    assert b"\nWork\tProjects\n" in subscriptions


def test_demo_status_counts(seeded_dovecot: Dovecot) -> None:
    expected = expected_status(demo_mailbox())
    with imap(seeded_dovecot, "alice") as client:
        actual = {folder: status(client, folder) for folder in expected}
    assert actual == expected


def test_demo_fetch_matches_the_samples(seeded_dovecot: Dovecot) -> None:
    demo = demo_mailbox()
    with imap(seeded_dovecot, "alice") as client:
        for folder in DEMO_FOLDERS:
            samples = [m for m in demo if m.folder == folder]
            fetched = fetch_all(client, folder)
            assert len(fetched) == len(samples)
            # UIDs follow internal dates, the order demo_mailbox() returns them in.
            for sample, data in zip(samples, fetched, strict=True):
                assert data[b"BODY[]"] == sample.raw
                assert data[b"RFC822.SIZE"] == len(sample.raw)
                assert flag_set(data[b"FLAGS"]) == set(sample.flags)
                assert data[b"INTERNALDATE"] == sample.internal_date


# -- write_maildir: a running server ---------------------------------------------------


def test_write_maildir_while_dovecot_runs(seeded_dovecot: Dovecot) -> None:
    start = datetime(2024, 2, 1, tzinfo=UTC)
    first = list(bulk_messages(40, seed=11, start=start))
    more = list(bulk_messages(25, seed=12, start=datetime(2024, 6, 1, tzinfo=UTC)))
    nested = list(bulk_messages(15, folder=NESTED, seed=13, start=start))
    with imap(seeded_dovecot, "bob") as watcher:
        watcher.select_folder("INBOX")  # Dovecot now has indexes for this mailbox
        assert write_maildir(seeded_dovecot.mail_dir("bob"), first + nested) == 55
        # An open session picks up new files on its next sync...
        assert (40, b"EXISTS") in watcher.noop()[1]
        assert write_maildir(seeded_dovecot.mail_dir("bob"), more) == 25
        assert (65, b"EXISTS") in watcher.noop()[1]
    # ...new folders appear to new sessions (Dovecot caches the folder list per session).
    with imap(seeded_dovecot, "bob") as client:
        assert NESTED in folder_names(client)
        assert {"INBOX", NESTED} <= subscribed(client)
        assert status(client, "INBOX") == expected_status(first + more)["INBOX"]
        assert status(client, NESTED) == expected_status(nested)[NESTED]
        fetched = fetch_all(client, "INBOX")
        assert [d[b"INTERNALDATE"] for d in fetched] == [m.internal_date for m in first + more]
    assert (seeded_dovecot.mail_dir("bob") / ".Lists.Caf&AOk- &- Co" / "cur").is_dir()
    lines = (seeded_dovecot.mail_dir("bob") / "subscriptions").read_text().splitlines()
    assert "Lists\tCaf&AOk- &- Co" in lines
    assert lines.count("INBOX") == 1, "a second write must not subscribe twice"


def test_keywords_survive_via_dovecot_keywords(seeded_dovecot: Dovecot) -> None:
    template = next(bulk_messages(1, seed=5))
    keywords = [f"$Label{n:02d}" for n in range(27)]
    messages = [
        replace(template, folder="Tags", flags=("\\Seen", keyword, "$Forwarded"))
        for keyword in keywords
    ]
    write_maildir(seeded_dovecot.mail_dir("gina"), messages)
    with imap(seeded_dovecot, "gina") as client:
        fetched = fetch_all(client, "Tags")
    flags = [flag_set(d[b"FLAGS"]) for d in fetched]
    for keyword, seen in zip(keywords[:25], flags, strict=False):
        assert seen == {"\\Seen", keyword, "$Forwarded"}
    # Maildir has letters for 26 keywords per folder: $Forwarded took one, so the last
    # two labels are dropped rather than stored wrongly.
    assert flags[25] == flags[26] == {"\\Seen", "$Forwarded"}


def test_folder_names_are_checked(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("names")
    sample = next(bulk_messages(1))
    for bad in ("Work//Projects", "../escape", "a.b", "Work/", "INBOX/Child"):
        with pytest.raises(ValueError):
            write_maildir(root, [replace(sample, folder=bad)])


# -- append_messages -------------------------------------------------------------------


def test_append_bulk_messages(seeded_dovecot: Dovecot) -> None:
    inbox = list(bulk_messages(1000, seed=21))
    nested = list(bulk_messages(120, folder="Bench/Läufe 1", seed=22))
    appended = append_messages(
        seeded_dovecot.host, seeded_dovecot.port, "carol", PASSWORD, inbox + nested
    )
    assert appended == 1120
    with imap(seeded_dovecot, "carol") as client:
        assert status(client, "INBOX") == expected_status(inbox)["INBOX"]
        assert status(client, "Bench/Läufe 1") == expected_status(nested)["Bench/Läufe 1"]
        fetched = fetch_all(client, "Bench/Läufe 1")
    for sample, data in zip(nested, fetched, strict=True):
        assert data[b"BODY[]"] == sample.raw
        assert flag_set(data[b"FLAGS"]) == set(sample.flags)
        assert data[b"INTERNALDATE"] == sample.internal_date


def test_append_demo_mailbox(seeded_dovecot: Dovecot) -> None:
    demo = demo_mailbox()
    assert append_messages(seeded_dovecot.host, seeded_dovecot.port, "erin", PASSWORD, demo) == 60
    with imap(seeded_dovecot, "erin") as client:
        assert set(folder_names(client)) >= DEMO_FOLDERS
        expected = expected_status(demo)
        assert {folder: status(client, folder) for folder in expected} == expected
        for folder in DEMO_FOLDERS:
            fetched = fetch_all(client, folder)
            want = Counter(frozenset(m.flags) for m in demo if m.folder == folder)
            assert Counter(frozenset(flag_set(d[b"FLAGS"])) for d in fetched) == want


def test_append_without_multiappend() -> None:
    messages = list(bulk_messages(30, folder="Plain", seed=31))
    with Dovecot({"hana": PASSWORD}, hide_capabilities=["MULTIAPPEND"]) as server:
        with imap(server, "hana") as client:
            assert not client.has_capability("MULTIAPPEND")
        assert append_messages(server.host, server.port, "hana", PASSWORD, messages) == 30
        with imap(server, "hana") as client:
            assert status(client, "Plain") == expected_status(messages)["Plain"]


# -- speed -----------------------------------------------------------------------------


def test_seeding_speed(seeded_dovecot: Dovecot, capsys: pytest.CaptureFixture[str]) -> None:
    count = 10_000
    messages = list(bulk_messages(count, seed=41))
    megabytes = sum(len(m.raw) for m in messages) / 1e6

    began = time.perf_counter()
    write_maildir(seeded_dovecot.mail_dir("dave"), messages)
    maildir_seconds = time.perf_counter() - began

    began = time.perf_counter()
    append_messages(seeded_dovecot.host, seeded_dovecot.port, "frank", PASSWORD, messages)
    append_seconds = time.perf_counter() - began

    expected = expected_status(messages)["INBOX"]
    with imap(seeded_dovecot, "dave") as client:
        began = time.perf_counter()
        # The first access makes Dovecot index the 10,000 new files.
        assert status(client, "INBOX") == expected
        first_status = time.perf_counter() - began
    with imap(seeded_dovecot, "frank") as client:
        assert status(client, "INBOX") == expected

    with capsys.disabled():
        print(
            f"\nseeding {count} bulk messages ({megabytes:.1f} MB): "
            f"write_maildir {count / maildir_seconds:,.0f} msgs/s ({maildir_seconds:.2f} s, "
            f"+{first_status:.2f} s for Dovecot's first STATUS), "
            f"append_messages {count / append_seconds:,.0f} msgs/s ({append_seconds:.2f} s)"
        )
    # Sanity floors only: the figures above are what matters.
    assert count / maildir_seconds > 500
    assert count / append_seconds > 200
