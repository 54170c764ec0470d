"""No password, Basic credential or access token in the log, at debug level, uvicorn's and
websockets' lines included."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import httpx
from websockets.sync.client import connect

from bridge.demo.dovecot import Dovecot
from tests.bench.harness import BridgeProcess
from tests.integration.server import USING

USER, PASSWORD, WRONG = "alice", "alice-pw", "wrong-secret-pw"
WRONG_TOKEN = "forged-bearer-token-0123456789"


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _websocket(url: str, headers: dict[str, str]) -> None:
    with connect(url, subprotocols=["jmap"], additional_headers=headers, proxy=None) as socket:
        socket.send(json.dumps({"@type": "Request", "id": "r", "using": USING,
                                "methodCalls": [["Core/echo", {}, "0"]]}))  # fmt: skip
        assert json.loads(socket.recv(timeout=10))["@type"] == "Response"


def test_no_secret_reaches_the_log(dovecot_factory: Callable[..., Dovecot], tmp_path: Path) -> None:
    upstream = dovecot_factory(users={USER: PASSWORD})
    with BridgeProcess(upstream.port, tmp_path / "data", log_level="debug") as server:
        auth = (USER, PASSWORD)
        assert httpx.get(server.url + "/jmap/session", auth=auth).status_code == 200
        assert httpx.get(server.url + "/jmap/session", auth=(USER, WRONG)).status_code == 401
        issued = httpx.post(server.url + "/jmap/token", auth=auth)
        token = issued.json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(server.url + "/jmap/session", headers=bearer).status_code == 200
        forged = {"Authorization": f"Bearer {WRONG_TOKEN}"}
        assert httpx.get(server.url + "/jmap/session", headers=forged).status_code == 401
        stream_url = f"{server.url}/jmap/eventsource?types=*&closeafter=no&ping=1"
        with httpx.stream("GET", f"{stream_url}&access_token={token}") as events:
            assert events.status_code == 200
            next(events.iter_lines())  # the first ping
        ws_url = server.url.replace("http", "ws") + "/jmap/ws"
        _websocket(ws_url, {"Authorization": "Basic " + _basic(USER, PASSWORD)})
        _websocket(f"{ws_url}?access_token={token}", {"Cookie": f"jmap_token={token}"})
        assert httpx.delete(server.url + "/jmap/token", headers=bearer).status_code == 204
    log = server.read_log(tail=None)
    # The workload was logged, with its headers: the check below looks at real lines.
    assert "GET /jmap/eventsource" in log and "/jmap/ws" in log
    assert "authorization" in log.lower()
    for secret in (PASSWORD, WRONG, _basic(USER, PASSWORD), _basic(USER, WRONG), token,
                   WRONG_TOKEN):  # fmt: skip
        assert secret not in log, secret
