"""An extension the upstream advertises and then refuses is dropped for that upstream, once,
and the work is done the plain way.

Dovecot is told to advertise what it does not serve (``imap_capability``): OBJECTID (it
answers BAD to STATUS MAILBOXID and FETCH EMAILID), ACL (BAD to MYRIGHTS, the plugin is
off), and NOTIFY with its mailbox list index off (NO [NOTIFICATIONOVERFLOW]).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.imap.connection import ImapConnection, UpstreamConfig
from bridge.imap.responses import ObjectIds
from tests.integration.conftest import USERS
from tests.integration.server import BridgeServer
from tests.integration.test_folder_faults import logged
from tests.integration.test_push import Events
from tests.integration.test_sync import RecordingPool
from tests.integration.test_watch import _watcher

MESSAGE = b"From: a@b.test\r\nSubject: refused\r\nMessage-ID: <refused@t>\r\n\r\nhello there\r\n"


@pytest.fixture
def liar() -> Iterator[Dovecot]:
    dovecot = Dovecot(
        dict(USERS), advertise_capabilities=("OBJECTID", "ACL"), mailbox_list_index=False
    )
    with dovecot:
        yield dovecot


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return logged(caplog, "but refused it")


def test_refused_extensions_are_dropped_once_and_the_work_done_plainly(
    liar: Dovecot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    other = IMAPClient(liar.host, port=liar.port, ssl=False)
    other.login("alice", USERS["alice"])
    assert {b"OBJECTID", b"ACL", b"NOTIFY"} <= set(other.capabilities())
    other.append("INBOX", MESSAGE)
    pool = RecordingPool(UpstreamConfig(liar.host, liar.port, tls="plain"))
    with BridgeServer(liar.host, liar.port, tmp_path / "data", pool=pool) as bridge:
        jmap = bridge.client("alice", USERS["alice"])
        boxes = jmap.mailboxes()
        inbox, archive = boxes["INBOX"]["id"], boxes["Archive"]["id"]
        assert boxes["INBOX"]["myRights"]["mayReadItems"] is True
        [email] = jmap.call("Email/query", {"filter": {"inMailbox": inbox}})["ids"]
        got = jmap.call("Email/get", {"ids": [email], "properties": ["subject", "preview"]})
        assert got["list"] == [{"id": email, "subject": "refused", "preview": "hello there"}]
        moved = jmap.call("Email/set", {"update": {email: {"mailboxIds": {archive: True}}}})
        assert moved["updated"] == {email: None}, moved
        # Push: NOTIFY refused, the watcher IDLEs on INBOX instead.
        Events(jmap, "types=*&closeafter=no&ping=0")
        _watcher(bridge, "alice", "idle")
        # Each refusal logged once; the folder ids (Dovecot's X-GUID) held from the start.
        refused = refusals(caplog)
        assert len(refused) == 3, refused
        for name in ("OBJECTID", "ACL", "NOTIFY"):
            assert sum(name in line for line in refused) == 1, (name, refused)
        assert {m["id"] for m in jmap.mailboxes().values()} == {m["id"] for m in boxes.values()}
        jmap.close()
    other.select_folder("Archive", readonly=True)
    assert other.search(["HEADER", "Message-ID", "<refused@t>"])
    # A connection opened now does not try them again.
    fresh = ImapConnection.open(UpstreamConfig(liar.host, liar.port, tls="plain"), "bob",
                                USERS["bob"])  # fmt: skip
    assert fresh.object_ids is ObjectIds.DOVECOT
    assert not {"OBJECTID", "ACL", "NOTIFY"} & fresh.capabilities
    assert fresh.myrights("INBOX") is None and fresh.notify_changes() is False
    fresh.close()
    assert fresh.commands[-1:] == ["LOGOUT"] and "MYRIGHTS" not in fresh.commands
    assert len(refusals(caplog)) == 3
    other.logout()
