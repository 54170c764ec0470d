"""Mailbox names the upstream cannot take as they are: the hierarchy delimiter inside a
name (written as a look-alike, see bridge/mail/names.py) and names its storage refuses
(invalidProperties on ``name``, with the upstream's reason)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from bridge.demo.imap4d import Imap4d
from tests.integration.server import BridgeServer, JmapClient

DIVISION_SLASH = "\u2215"
ONE_DOT_LEADER = "\u2024"


def create(jmap: JmapClient, **objects: dict[str, Any]) -> dict[str, Any]:
    return jmap.call("Mailbox/set", {"create": objects})


def test_a_slash_in_a_name_on_a_slash_separated_server(jmap: JmapClient, other: IMAPClient) -> None:
    done = create(jmap, a={"name": "Q1/Q2"}, b={"name": "Top"})
    assert set(done["created"]) == {"a", "b"}
    boxes = jmap.mailboxes()
    assert boxes["Q1/Q2"]["parentId"] is None and boxes["Q1/Q2"]["id"] == done["created"]["a"]["id"]
    names = {name for _, _, name in other.list_folders()}
    assert f"Q1{DIVISION_SLASH}Q2" in names and "Q1" not in names
    # A child, and a rename: the slash stays a character of one level.
    child = create(jmap, c={"name": "a/b", "parentId": boxes["Top"]["id"]})["created"]["c"]
    update = {child["id"]: {"name": "c/d"}}
    assert jmap.call("Mailbox/set", {"update": update})["updated"] == {child["id"]: None}
    assert f"Top/c{DIVISION_SLASH}d" in {name for _, _, name in other.list_folders()}
    assert jmap.mailboxes()["Top/c/d"]["id"] == child["id"]


def test_a_look_alike_another_client_wrote_reads_as_the_delimiter(
    jmap: JmapClient, other: IMAPClient
) -> None:
    other.create_folder(f"1{DIVISION_SLASH}2")
    assert "1/2" in jmap.mailboxes()
    # The look-alike itself would be ambiguous in a JMAP name: refused.
    refused = create(jmap, a={"name": f"x{DIVISION_SLASH}y"})["notCreated"]["a"]
    assert refused["type"] == "invalidProperties" and refused["properties"] == ["name"]


def test_names_the_storage_refuses_are_invalid_properties(jmap: JmapClient) -> None:
    # Maildir++ keeps folders as ".a.b" directories: "." is refused whatever the separator,
    # and a 255-character name makes a 256-byte file name.
    refused = create(jmap, dot={"name": "v1.2"}, long={"name": "x" * 255})["notCreated"]
    assert refused["dot"]["type"] == "invalidProperties" and refused["dot"]["properties"] == [
        "name"
    ]
    assert "Character not allowed in mailbox name" in refused["dot"]["description"]
    assert refused["long"]["type"] == "invalidProperties"
    assert refused["long"]["description"].startswith("the upstream refused the name: ")
    taken = create(jmap, a={"name": "Twice"}, b={"name": "Twice"})
    assert taken["notCreated"]["b"]["type"] == "invalidProperties"


@pytest.fixture(scope="module")
def dot_separated() -> Iterator[Dovecot]:
    with Dovecot({"dora": "dora-pw"}, separator=".") as server:
        yield server


def test_a_dot_in_a_name_on_a_dot_separated_server(dot_separated: Dovecot, tmp_path: Path) -> None:
    with BridgeServer(dot_separated.host, dot_separated.port, tmp_path) as bridge:
        jmap = bridge.client("dora", "dora-pw")
        done = create(jmap, a={"name": "v1.2"}, b={"name": "a/b"})
        assert set(done["created"]) == {"a"}
        assert done["notCreated"]["b"]["type"] == "invalidProperties"
        assert "v1.2" in jmap.mailboxes()
        jmap.close()
    imap = IMAPClient(dot_separated.host, port=dot_separated.port, ssl=False)
    imap.login("dora", "dora-pw")
    assert f"v1{ONE_DOT_LEADER}2" in {name for _, _, name in imap.list_folders()}
    imap.logout()


def test_a_slash_in_a_name_on_imap4d(
    imap4d: Imap4d, imap4d_account: tuple[str, str], tmp_path: Path
) -> None:
    with BridgeServer(imap4d.host, imap4d.port, tmp_path) as bridge:
        jmap = bridge.client(*imap4d_account)
        created = create(jmap, a={"name": "in/out"})["created"]["a"]
        assert jmap.mailboxes()["in/out"]["id"] == created["id"]
        jmap.close()
    imap = IMAPClient(imap4d.host, port=imap4d.port, ssl=False)
    imap.login(*imap4d_account)
    assert f"in{DIVISION_SLASH}out" in {name for _, _, name in imap.list_folders()}
    imap.logout()
