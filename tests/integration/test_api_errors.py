"""Session discovery, authentication and every RFC 8620 §3.6 error, over real HTTP."""

from __future__ import annotations

import httpx
from imapclient import IMAPClient

from tests.integration.server import CORE, MAIL, USING, BridgeServer, JmapClient

PROBLEM = "urn:ietf:params:jmap:error:"


def test_well_known_redirects_to_an_absolute_session(
    bridge: BridgeServer, jmap: JmapClient
) -> None:
    redirect = jmap.http.get("/.well-known/jmap")
    assert redirect.status_code in (301, 302, 307, 308)
    session = jmap.http.get(redirect.headers["location"]).json()
    account_id = session["primaryAccounts"][MAIL]
    assert session["accounts"][account_id]["isPersonal"] is True
    assert MAIL in session["accounts"][account_id]["accountCapabilities"]
    core = session["capabilities"][CORE]
    for limit in (
        "maxSizeUpload", "maxConcurrentUpload", "maxSizeRequest", "maxConcurrentRequests",
        "maxCallsInRequest", "maxObjectsInGet", "maxObjectsInSet", "collationAlgorithms",
    ):  # fmt: skip
        assert limit in core
    for key in ("apiUrl", "downloadUrl", "uploadUrl", "eventSourceUrl"):
        assert session[key].startswith(bridge.url + "/"), key
    assert "{blobId}" in session["downloadUrl"] and "{accountId}" in session["uploadUrl"]
    assert session["username"] == jmap.user
    assert session["state"] == jmap.http.get("/jmap/session").json()["state"]


def test_authentication(bridge: BridgeServer, account: tuple[str, str]) -> None:
    anonymous = httpx.get(bridge.url + "/jmap/session")
    assert anonymous.status_code == 401 and "Basic" in anonymous.headers["www-authenticate"]
    user, password = account
    wrong = httpx.get(bridge.url + "/jmap/session", auth=(user, "not-" + password))
    assert wrong.status_code == 401 and "Basic" in wrong.headers["www-authenticate"]
    api = httpx.post(bridge.url + "/jmap/api", json={}, auth=(user, "x"))
    assert api.status_code == 401
    right = httpx.get(bridge.url + "/jmap/session", auth=(user, password))
    assert right.status_code == 200 and right.json()["username"] == user


def test_repeated_failures_are_throttled(bridge: BridgeServer, account: tuple[str, str]) -> None:
    user, password = account
    statuses = [
        httpx.get(bridge.url + "/jmap/session", auth=(user, f"guess{n}")).status_code
        for n in range(8)
    ]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    # A password not verified before waits too: the throttle must not say which guess was
    # right. (One verified before passes: tests/integration/test_auth.py.)
    blocked = httpx.get(bridge.url + "/jmap/session", auth=(user, password))
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0


def problem(response: httpx.Response, kind: str, status: int = 400) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == PROBLEM + kind, body
    return body


def test_request_level_errors(jmap: JmapClient) -> None:
    problem(jmap.post(b"{not json"), "notJSON")
    problem(jmap.post(b"\xff\xfe{}"), "notJSON")
    problem(jmap.post([1, 2]), "notRequest")
    problem(jmap.post({"methodCalls": []}), "notRequest")
    problem(jmap.post({"using": [CORE], "methodCalls": [["Core/echo", {}]]}), "notRequest")
    problem(jmap.post({"using": [CORE], "methodCalls": {"a": 1}}), "notRequest")
    unknown = problem(
        jmap.post({"using": [CORE, "urn:example:nope"], "methodCalls": []}), "unknownCapability"
    )
    assert "urn:example:nope" in str(unknown["detail"])
    limits = jmap.session["capabilities"][CORE]
    calls = [["Core/echo", {}, str(n)] for n in range(limits["maxCallsInRequest"] + 1)]
    too_many = problem(jmap.post({"using": [CORE], "methodCalls": calls}), "limit")
    assert too_many["limit"] == "maxCallsInRequest"
    padding = "x" * (limits["maxSizeRequest"] + 1)
    too_big = problem(jmap.post({"using": [CORE], "methodCalls": [], "p": padding}), "limit")
    assert too_big["limit"] == "maxSizeRequest"


def test_method_level_errors(jmap: JmapClient) -> None:
    account = jmap.account_id
    state = jmap.call("Mailbox/get", {"ids": []})["state"]
    responses = jmap.request(
        [
            ["Core/echo", {"hello": True}, "echo"],
            ["Nope/get", {}, "unknown"],
            ["Mailbox/get", {"accountId": account, "colour": 1}, "args"],
            ["Mailbox/get", {"accountId": "someone-else"}, "account"],
            ["Mailbox/get", {"accountId": account, "#ids": {
                "resultOf": "missing", "name": "Mailbox/query", "path": "/ids"}}, "ref"],
            ["Mailbox/changes", {"accountId": account, "sinceState": "bogus"}, "calc"],
            ["Mailbox/set", {"accountId": account, "ifInState": state + "0"}, "state"],
            ["Mailbox/query", {"accountId": account, "anchor": "nope"}, "anchor"],
            ["Mailbox/query", {"accountId": account, "sort": [{"property": "size"}]}, "sort"],
            ["Mailbox/query", {"accountId": account, "filter": {"colour": "red"}}, "filter"],
            ["Mailbox/get", {"accountId": account, "ids": ["x"] * 5000}, "large"],
            ["Mailbox/get", {"accountId": account, "ids": []}, "still-works"],
        ]
    )  # fmt: skip
    kinds = {call_id: (name, args) for name, args, call_id in responses}
    assert kinds["echo"] == ("Core/echo", {"hello": True})
    expected = {
        "unknown": "unknownMethod",
        "args": "invalidArguments",
        "account": "accountNotFound",
        "ref": "invalidResultReference",
        "calc": "cannotCalculateChanges",
        "state": "stateMismatch",
        "anchor": "anchorNotFound",
        "sort": "unsupportedSort",
        "filter": "unsupportedFilter",
        "large": "requestTooLarge",
    }
    for call_id, kind in expected.items():
        assert kinds[call_id][0] == "error" and kinds[call_id][1]["type"] == kind, call_id
    assert kinds["still-works"][0] == "Mailbox/get"


def test_result_references_chain(jmap: JmapClient) -> None:
    account = jmap.account_id
    responses = jmap.request(
        [
            ["Mailbox/query", {"accountId": account, "filter": {"role": "inbox"}}, "q"],
            ["Mailbox/get", {"accountId": account, "#ids": {
                "resultOf": "q", "name": "Mailbox/query", "path": "/ids"}}, "g"],
            ["Mailbox/get", {"accountId": account, "#ids": {
                "resultOf": "q", "name": "Mailbox/get", "path": "/ids"}}, "wrong-name"],
        ]
    )  # fmt: skip
    assert responses[1][1]["list"][0]["role"] == "inbox"
    assert responses[2][1]["type"] == "invalidResultReference"


def test_bad_input_changes_nothing_upstream(jmap: JmapClient, other: IMAPClient) -> None:
    before = sorted(name for _, _, name in other.list_folders())
    jmap.post(b'{"using": ["urn:ietf:params:jmap:mail"], "methodCalls": [["Mailbox/set", {')
    jmap.request(
        [["Mailbox/set", {"accountId": jmap.account_id, "create": {"a": {"name": 7}},
                          "destroy": "not-a-list"}, "0"]]
    )  # fmt: skip
    jmap.request([["Mailbox/set", {"accountId": jmap.account_id, "create": {"b": {"name": "B"}},
                                   "bogus": 1}, "0"]])  # fmt: skip
    assert sorted(name for _, _, name in other.list_folders()) == before


def test_no_traceback_reaches_the_client(jmap: JmapClient) -> None:
    for body in (b"", b"null", b'"text"', b"[]", b'{"using": null, "methodCalls": null}',
                 b'{"using": [], "methodCalls": [[1, 2, 3]]}'):  # fmt: skip
        response = jmap.post(body)
        assert response.status_code == 400
        assert "Traceback" not in response.text and 'File "' not in response.text
    [[name, args, _]] = jmap.request(
        [["Mailbox/get", {"accountId": jmap.account_id, "ids": [None, {"a": 1}]}, "0"]],
        using=USING,
    )
    assert name == "error" and "Traceback" not in str(args)
