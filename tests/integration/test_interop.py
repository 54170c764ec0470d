"""Where clients and the RFCs part ways, and what bridge does: one test per row of the
README's interoperability table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from imapclient import IMAPClient

from tests.integration.server import CORE, MAIL, BridgeServer, JmapClient
from tests.integration.test_email import inbox_id, message, query
from tests.integration.upstreams import Upstream


def test_a_keyword_patched_to_false_is_removed(jmap: JmapClient, other: IMAPClient) -> None:
    other.append("INBOX", message(1), flags=[b"\\Draft", b"\\Seen"])
    [email_id] = query(jmap)
    done = jmap.call("Email/set", {"update": {email_id: {"keywords/$draft": False}}})
    assert done["updated"] == {email_id: None}, done
    [email] = jmap.call("Email/get", {"ids": [email_id], "properties": ["keywords"]})["list"]
    assert email["keywords"] == {"$seen": True}
    other.select_folder("INBOX")
    [flags] = other.get_flags(other.search("ALL")).values()
    assert b"\\Draft" not in flags
    # A whole map with false in it means the same; anything but a boolean is refused.
    jmap.call("Email/set", {"update": {email_id: {"keywords": {"$seen": False, "$flagged": True}}}})
    [email] = jmap.call("Email/get", {"ids": [email_id], "properties": ["keywords"]})["list"]
    assert email["keywords"] == {"$flagged": True}
    refused = jmap.call("Email/set", {"update": {email_id: {"keywords/$seen": "yes"}}})
    assert refused["notUpdated"][email_id]["type"] == "invalidProperties"


def test_a_served_method_runs_without_its_capability_in_using(jmap: JmapClient) -> None:
    [[name, _, _]] = jmap.request([["Mailbox/get", {"accountId": jmap.account_id}, "0"]],
                                  using=[CORE])  # fmt: skip
    assert name == "Mailbox/get"
    # A method nobody serves stays unknown, and so does a capability.
    [[name, error, _]] = jmap.request([["Calendar/get", {"accountId": jmap.account_id}, "0"]])
    assert (name, error["type"]) == ("error", "unknownMethod")
    unknown = jmap.post({"using": [CORE, "urn:example:nothing"], "methodCalls": []})
    assert unknown.json()["type"].endswith("unknownCapability")


@pytest.fixture
def strict(upstream: Upstream, tmp_path: Path) -> Iterator[BridgeServer]:
    with BridgeServer(upstream.host, upstream.port, tmp_path, lenient_using=False) as server:
        yield server


def test_strict_using_answers_unknown_method(
    strict: BridgeServer, account: tuple[str, str]
) -> None:
    jmap = strict.client(*account)
    [[name, error, _]] = jmap.request([["Mailbox/get", {"accountId": jmap.account_id}, "0"]],
                                      using=[CORE])  # fmt: skip
    assert (name, error["type"]) == ("error", "unknownMethod")
    [[name, _, _]] = jmap.request([["Mailbox/get", {"accountId": jmap.account_id}, "0"]])
    assert name == "Mailbox/get"
    jmap.close()


def test_empty_not_maps_are_empty_objects(jmap: JmapClient) -> None:
    created = jmap.call("Mailbox/set", {"create": {"a": {"name": "Projects"}}})
    assert created["notCreated"] == created["notUpdated"] == created["notDestroyed"] == {}
    assert created["updated"] is None and created["destroyed"] is None
    failed = jmap.call("Mailbox/set", {"destroy": ["nope"]})
    assert failed["notDestroyed"]["nope"]["type"] == "notFound"
    assert failed["notCreated"] == failed["notUpdated"] == {} and failed["created"] is None


def test_sibling_mailboxes_have_different_names(jmap: JmapClient) -> None:
    inbox = inbox_id(jmap)
    first = jmap.call("Mailbox/set", {"create": {"a": {"name": "Work"}}})
    assert "a" in first["created"]
    again = jmap.call("Mailbox/set", {"create": {
        "b": {"name": "Work"},  # beside the first
        "c": {"name": "Work", "parentId": inbox},  # elsewhere in the tree: fine
        "d": {"name": "Home"}, "e": {"name": "Home"},  # two new ones in one call
    }})  # fmt: skip
    assert again["notCreated"]["b"]["type"] == "invalidProperties"
    assert again["notCreated"]["b"]["properties"] == ["name"]
    assert "c" in again["created"] and "d" in again["created"]
    assert again["notCreated"]["e"]["properties"] == ["name"]
    renamed = jmap.call("Mailbox/set", {"update": {again["created"]["d"]["id"]: {"name": "Work"}}})
    assert next(iter(renamed["notUpdated"].values()))["type"] == "invalidProperties"


def test_the_api_takes_json_only(jmap: JmapClient) -> None:
    body = b'{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {}, "0"]]}'
    for refused in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                    "application/jsonx", None):  # fmt: skip
        headers = {"Content-Type": refused} if refused else {}
        answer = jmap.http.post("/jmap/api", content=body, headers=headers)
        assert answer.status_code == 400, refused
        assert answer.json()["type"] == "urn:ietf:params:jmap:error:notJSON", refused
    for accepted in ("application/json", "application/json; charset=utf-8",
                     "Application/JSON;charset=UTF-8"):  # fmt: skip
        answer = jmap.http.post("/jmap/api", content=body, headers={"Content-Type": accepted})
        assert answer.status_code == 200, accepted
        assert answer.json()["methodResponses"] == [["Core/echo", {}, "0"]]


def test_a_same_site_webmail_listens_after_a_basic_login(
    bridge: BridgeServer, account: tuple[str, str]
) -> None:
    """Its EventSource sends the cookie the Session answer set (and never Authorization);
    one with Basic credentials cached for the site works as well."""
    # Every request of a browser says where it comes from; other clients get no cookie.
    assert "set-cookie" not in httpx.get(bridge.url + "/jmap/session", auth=account).headers
    browser = httpx.Client(base_url=bridge.url, timeout=30,
                           headers={"Sec-Fetch-Site": "same-origin"})  # fmt: skip
    session = browser.get("/jmap/session", auth=account)
    assert session.status_code == 200 and "jmap_token" in browser.cookies
    cookie = session.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/jmap" in cookie
    # A second Session fetch with the cookie issues no new token.
    assert "set-cookie" not in browser.get("/jmap/session", auth=account).headers
    url = session.json()["eventSourceUrl"].format(types="*", closeafter="state", ping="0")
    for credentials in (None, account):
        with browser.stream("GET", url, auth=credentials,
                            headers={"Last-Event-ID": "Mailbox:old"}) as stream:  # fmt: skip
            assert stream.status_code == 200
            events = [line for line in stream.iter_lines() if line.startswith("event: ")]
        assert events == ["event: state"]
        browser.cookies.clear()
    assert browser.get(url).status_code == 401  # no cookie, no Basic
    browser.close()


def test_using_is_still_checked_for_mail_data_types(jmap: JmapClient) -> None:
    """Blob/lookup runs without the blob capability (lenient), but its data types belong
    to mail: without mail in "using" they are unknown (RFC 9404 §4.3)."""
    args = {"accountId": jmap.account_id, "typeNames": ["Email"], "ids": []}
    [[name, _, _]] = jmap.request([["Blob/lookup", args, "0"]], using=[CORE, MAIL])
    assert name == "Blob/lookup"
    [[name, error, _]] = jmap.request([["Blob/lookup", args, "0"]], using=[CORE])
    assert (name, error["type"]) == ("error", "unknownDataType")
