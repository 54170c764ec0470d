"""JMAP over WebSocket (RFC 8887) against the shared bridge, with a real WebSocket client."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from imapclient import IMAPClient
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.integration.server import CORE, MAIL, BridgeServer, JmapClient

WEBSOCKET = "urn:ietf:params:jmap:websocket"
USING = [CORE, MAIL]
ERROR = "urn:ietf:params:jmap:error:"


def basic(account: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(":".join(account).encode()).decode()}


def ws_url(jmap: JmapClient) -> str:
    return jmap.session["capabilities"][WEBSOCKET]["url"]


class Socket:
    """A JMAP WebSocket: JSON in, JSON out."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    def send(self, message: Any) -> None:
        self.connection.send(message if isinstance(message, str | bytes) else json.dumps(message))

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        return json.loads(self.connection.recv(timeout=timeout))

    def silent(self, seconds: float) -> bool:
        try:
            message = self.connection.recv(timeout=seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected message: {message}")

    def request(self, calls: list[Any], request_id: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"@type": "Request", "using": USING, "methodCalls": calls}
        if request_id is not None:
            message["id"] = request_id
        self.send(message)
        return self.recv()


@pytest.fixture
def socket(jmap: JmapClient, account: tuple[str, str]) -> Iterator[Socket]:
    with connect(ws_url(jmap), subprotocols=["jmap"], additional_headers=basic(account)) as ws:
        assert ws.subprotocol == "jmap"
        yield Socket(ws)


def test_the_session_offers_the_websocket(bridge: BridgeServer, jmap: JmapClient) -> None:
    capability = jmap.session["capabilities"][WEBSOCKET]
    assert capability == {"url": bridge.url.replace("http://", "ws://") + "/jmap/ws",
                          "supportsPush": True}  # fmt: skip


def test_a_request_gets_its_response(jmap: JmapClient, socket: Socket) -> None:
    response = socket.request([["Mailbox/get", {"accountId": jmap.account_id}, "m"]], "R1")
    assert (response["@type"], response["requestId"]) == ("Response", "R1")
    [[name, result, call_id]] = response["methodResponses"]
    assert (name, call_id) == ("Mailbox/get", "m")
    assert "INBOX" in {mailbox["name"] for mailbox in result["list"]}
    assert response["sessionState"] == jmap.session["state"]
    # Without an id there is nothing to echo; the capability may be in "using" too.
    socket.send({"@type": "Request", "using": [CORE, WEBSOCKET],
                 "methodCalls": [["Core/echo", {"x": 1}, "e"]]})  # fmt: skip
    response = socket.recv()
    assert "requestId" not in response
    assert response["methodResponses"] == [["Core/echo", {"x": 1}, "e"]]


def test_bad_messages_get_request_errors_and_the_socket_stays_open(socket: Socket) -> None:
    def error(message: Any) -> tuple[str, str | None, str | None]:
        socket.send(message)
        answer = socket.recv()
        assert answer["@type"] == "RequestError" and answer["status"] == 400, answer
        return answer["type"].removeprefix(ERROR), answer.get("requestId"), answer.get("limit")

    assert error("{not json") == ("notJSON", None, None)
    assert error(b'{"@type": "Request"}') == ("notJSON", None, None)  # binary frame
    assert error("[1, 2]") == ("notRequest", None, None)
    assert error({"id": "R0", "using": USING, "methodCalls": []}) == ("notRequest", None, None)
    assert error({"@type": "Request", "id": "R1", "using": USING}) == ("notRequest", "R1", None)
    assert error({"@type": "Bogus", "id": "R2"}) == ("notRequest", "R2", None)
    unknown = {"@type": "Request", "id": "R3", "using": ["urn:example:nope"], "methodCalls": []}
    assert error(unknown) == ("unknownCapability", "R3", None)
    calls = [["Core/echo", {}, str(n)] for n in range(65)]
    too_many = {"@type": "Request", "id": "R4", "using": USING, "methodCalls": calls}
    assert error(too_many) == ("limit", "R4", "maxCallsInRequest")
    assert error({"@type": "WebSocketPushEnable", "dataTypes": "Email"})[0] == "notRequest"
    # Still open, and still serving.
    response = socket.request([["Core/echo", {"still": "here"}, "e"]], "R5")
    assert response["methodResponses"] == [["Core/echo", {"still": "here"}, "e"]]


def test_the_upgrade_needs_the_jmap_subprotocol_and_credentials(
    bridge: BridgeServer, jmap: JmapClient, account: tuple[str, str]
) -> None:
    url = ws_url(jmap)

    def refused(query: str = "", **kwargs: Any) -> int:
        with pytest.raises(InvalidStatus) as caught, connect(url + query, open_timeout=5, **kwargs):
            pass
        return caught.value.response.status_code

    assert refused(additional_headers=basic(account)) == 400  # no subprotocol
    assert refused(subprotocols=["jmap"]) == 401
    assert refused(subprotocols=["jmap"], additional_headers={"Authorization": "Bearer x"}) == 401
    # A page of another origin may not ride on credentials the browser sends by itself...
    cross = {**basic(account), "Origin": "https://evil.example"}
    assert refused(subprotocols=["jmap"], additional_headers=cross) == 403
    # ...but may use a token it asked for.
    token = jmap.http.post("/jmap/token").json()["token"]
    assert refused("?access_token=forged", subprotocols=["jmap"]) == 401
    with connect(f"{url}?access_token={token}", subprotocols=["jmap"],
                 additional_headers={"Origin": "https://app.example"}) as ws:  # fmt: skip
        ws.send(json.dumps({"@type": "Request", "id": "t", "using": [CORE],
                            "methodCalls": [["Core/echo", {}, "e"]]}))  # fmt: skip
        assert json.loads(ws.recv(timeout=5))["requestId"] == "t"
    same_origin = {**basic(account), "Origin": bridge.url}
    with connect(url, subprotocols=["jmap"], additional_headers=same_origin) as ws:
        assert ws.subprotocol == "jmap"


def test_push_of_another_clients_change(
    jmap: JmapClient, socket: Socket, other: IMAPClient
) -> None:
    socket.request([["Email/get", {"accountId": jmap.account_id, "ids": []}, "g"]])
    socket.send({"@type": "WebSocketPushEnable", "dataTypes": None})
    assert socket.silent(0.3)  # no pushState given: nothing to catch up on
    other.append("INBOX", b"From: a@example.com\r\nSubject: pushed\r\n\r\nhi\r\n")
    change = socket.recv(timeout=5)
    assert change["@type"] == "StateChange" and change["pushState"]
    pushed = change["changed"][jmap.account_id]["Email"]
    # The state pushed last is the one a client then reads.
    get = [["Email/get", {"accountId": jmap.account_id, "ids": []}, "g"]]
    socket.send({"@type": "Request", "id": "get", "using": USING, "methodCalls": get})
    read = None
    with contextlib.suppress(TimeoutError):
        while True:
            message = socket.recv(timeout=5.0 if read is None else 0.3)
            if message["@type"] == "Response":
                read = message["methodResponses"][0][1]["state"]
            else:
                pushed = message["changed"][jmap.account_id].get("Email", pushed)
    assert pushed == read


def test_push_state_data_types_and_disable(jmap: JmapClient, socket: Socket) -> None:
    def mailbox_set(name: str) -> list[Any]:
        return [["Mailbox/set", {"accountId": jmap.account_id,
                                 "create": {"m": {"name": name}}}, "s"]]  # fmt: skip

    jmap.mailboxes()
    socket.send({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"]})
    socket.send({"@type": "Request", "id": "R1", "using": USING,
                 "methodCalls": mailbox_set("One")})  # fmt: skip
    # The Response and the StateChange may come in either order, and the watcher may push
    # a state on the way before the one the request ends at.
    new_state, pushed = None, [None]
    while new_state is None or pushed[-1] != new_state:
        message = socket.recv()
        if message["@type"] == "Response":
            new_state = message["methodResponses"][0][1]["newState"]
        else:
            assert set(message["changed"][jmap.account_id]) == {"Mailbox"}  # as asked
            pushed.append(message["changed"][jmap.account_id]["Mailbox"])
            first_push_state = message["pushState"]

    socket.send({"@type": "WebSocketPushDisable"})
    jmap.call("Mailbox/set", {"create": {"m": {"name": "Two"}}})  # over HTTP
    current = jmap.call("Mailbox/get", {"ids": []})["state"]
    assert current != new_state
    assert socket.silent(0.6)

    # Handing back the last pushState: what moved since comes at once, of the wanted types.
    socket.send({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"],
                 "pushState": first_push_state})  # fmt: skip
    catch_up = socket.recv()
    assert catch_up["changed"] == {jmap.account_id: {"Mailbox": current}}
    assert catch_up["pushState"] != first_push_state
    # The current pushState: nothing to tell.
    socket.send({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"],
                 "pushState": catch_up["pushState"]})  # fmt: skip
    assert socket.silent(0.3)
    # One it cannot read: every wanted type, to be safe.
    socket.send({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"], "pushState": "?"})
    assert socket.recv()["changed"] == {jmap.account_id: {"Mailbox": current}}
