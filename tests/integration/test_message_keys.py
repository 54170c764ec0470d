"""A message's dedupe key (its Email id where the server has no object ids) must not
depend on which FETCH saw it: indexing, a first page and a sync ask for different header
fields, and a MOVE by another client is recognised only if they agree."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import msgspec
import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.imap.connection import ImapConnection, UpstreamConfig
from bridge.mail.summary import SUMMARY_ITEMS, has_summary_items
from bridge.mail.sync import NEW_MESSAGE_ITEMS, new_message
from bridge.store.records import MailboxRecord
from tests.integration.conftest import USERS

MESSAGES = [
    b"Subject: one\r\nMessage-ID: <a@x>\r\nReferences: <b@x>\r\n <c@x>\r\n\t<d@x>\r\n"
    b"From: a@b\r\n\r\nbody\r\n",
    # LF line ends, lower-case names, white space before a colon, a repeated Subject.
    b"subject: two\nmessage-id:<e@x>\nIn-Reply-To : <f@x>\nX-Long: aaa\n bbb\n"
    b"Subject: dup\n\nbody\n",
    b"Received: from a\r\n by b\r\nDKIM-Signature: v=1;\r\n  b=xyz\r\n"
    b"Subject: =?utf-8?q?x?=\r\nMessage-Id: <g@x>\r\n\r\nbody\r\n",
]


@pytest.fixture
def conn(dovecot: Dovecot) -> Iterator[ImapConnection]:
    config = UpstreamConfig(dovecot.host, dovecot.port, tls="plain", timeout=10.0)
    with ImapConnection.open(config, "alice", USERS["alice"]) as connection:
        yield connection


@pytest.fixture
def folder(imap: IMAPClient) -> str:
    name = f"keys-{uuid.uuid4().hex[:8]}"
    imap.create_folder(name)
    return name


def test_the_key_is_the_same_whichever_fields_were_fetched(
    imap: IMAPClient, conn: ImapConnection, folder: str
) -> None:
    for raw in MESSAGES:
        imap.append(folder, raw)
    selected = conn.select(folder)
    mailbox = MailboxRecord(id="m", upstream_key="k", name=folder)
    keys: dict[int, set[str]] = {}
    for extra in (NEW_MESSAGE_ITEMS, ("RFC822.SIZE", "INTERNALDATE", *SUMMARY_ITEMS),
                  ("RFC822.SIZE", "BODY.PEEK[HEADER]")):  # fmt: skip
        for uid, meta in conn.fetch_meta("1:*", extra=extra).messages.items():
            # Without the server's object id, as on a server that has none.
            meta = msgspec.structs.replace(meta, object_id=None)
            made = new_message(mailbox, selected.uidvalidity, meta)
            keys.setdefault(uid, set()).add(made.email_key)
            assert made.message_ids  # every one of them has a Message-ID
    assert len(keys) == len(MESSAGES)
    assert all(len(found) == 1 for found in keys.values()), keys
    assert len({key for found in keys.values() for key in found}) == len(MESSAGES)


def test_a_summary_fetch_brings_only_the_fields_it_reads(
    imap: IMAPClient, conn: ImapConnection, folder: str
) -> None:
    imap.append(folder, MESSAGES[2])
    conn.select(folder)
    (meta,) = conn.fetch_meta("1:*", extra=SUMMARY_ITEMS).messages.values()
    assert has_summary_items(meta.raw)
    header = next(value for key, value in meta.raw.items() if key.startswith("BODY[HEADER"))
    assert b"Subject:" in header and b"Message-Id:" in header
    assert b"Received" not in header and b"DKIM" not in header
