"""EventSource push (RFC 8620 §7.3) over real HTTP."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from typing import Any

import httpx
from imapclient import IMAPClient

from tests.integration.server import BridgeServer, JmapClient
from tests.integration.upstreams import every_upstream


class Events:
    """An EventSource reader in a thread: parsed events arrive on a queue."""

    def __init__(self, jmap: JmapClient, query: str, headers: dict[str, str] | None = None):
        self.events: queue.Queue[tuple[str, Any, str | None]] = queue.Queue()
        self.closed = threading.Event()
        url = jmap.session["eventSourceUrl"].split("?")[0] + "?" + query
        self.thread = threading.Thread(
            target=self._read, args=(jmap.http, url, headers or {}), daemon=True
        )
        self.thread.start()

    def _read(self, http: httpx.Client, url: str, headers: dict[str, str]) -> None:
        # The server going away at the end of the run also ends the stream.
        with contextlib.suppress(httpx.HTTPError):
            self._read_stream(http, url, headers)
        self.closed.set()

    def _read_stream(self, http: httpx.Client, url: str, headers: dict[str, str]) -> None:
        with http.stream("GET", url, headers=headers, timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            name, data, event_id = "", "", None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line == "" and name:
                    self.events.put((name, json.loads(data), event_id))
                    name, data, event_id = "", "", None

    def next(self, timeout: float = 5.0) -> tuple[str, Any, str | None]:
        return self.events.get(timeout=timeout)


def states(event: Any, account_id: str) -> dict[str, str]:
    assert event["@type"] == "StateChange"
    return event["changed"][account_id]


def test_a_write_through_bridge_is_pushed(jmap: JmapClient) -> None:
    jmap.mailboxes()  # the first sync, before listening
    events = Events(jmap, "types=*&closeafter=no&ping=1")
    # The first ping says the stream is listening: a write before that could land in the
    # states it starts from, and rightly never be announced.
    assert events.next()[0] == "ping"
    old = jmap.call("Mailbox/get", {"ids": []})["state"]
    created = jmap.call("Mailbox/set", {"create": {"n": {"name": "Pushed"}}})
    name, data, event_id = events.next()
    while name == "ping":
        name, data, event_id = events.next()
    assert name == "state" and event_id
    pushed = states(data, jmap.account_id)["Mailbox"]
    # The state the write ended at, or a later one if a sync moved it again meanwhile:
    # never an older one, and one /changes can start from.
    epoch, _, counter = pushed.rpartition("-")
    assert epoch == old.rpartition("-")[0]
    assert int(counter) >= int(created["newState"].rpartition("-")[2])
    assert jmap.call("Mailbox/changes", {"sinceState": pushed})["oldState"] == pushed


def test_types_closeafter_and_ping(jmap: JmapClient, other: IMAPClient) -> None:
    jmap.mailboxes()
    only_email = Events(jmap, "types=Email&closeafter=state&ping=1")
    name, data, _ = only_email.next(timeout=5)
    assert (name, data) == ("ping", {"interval": 1})
    jmap.call("Mailbox/set", {"create": {"n": {"name": "NotAnEmailChange"}}})
    other.append("INBOX", b"From: a@x\r\nSubject: s\r\n\r\nb\r\n")
    jmap.call("Email/query", {})  # any request syncs, and its changes are pushed
    while True:
        name, data, _ = only_email.next(timeout=5)
        if name == "state":
            break
    assert set(states(data, jmap.account_id)) <= {"Email"}
    assert only_email.closed.wait(timeout=5)  # closeafter=state ended the response


def test_a_stale_last_event_id_gets_the_news_at_once(jmap: JmapClient) -> None:
    jmap.mailboxes()
    events = Events(jmap, "types=*&closeafter=state&ping=0", {"Last-Event-ID": "Mailbox:old"})
    name, data, _ = events.next()
    assert name == "state" and "Mailbox" in states(data, jmap.account_id)
    assert events.closed.wait(timeout=5)


def test_bad_parameters(jmap: JmapClient) -> None:
    base = jmap.session["eventSourceUrl"].split("?")[0]
    assert jmap.http.get(base + "?types=*&closeafter=maybe&ping=0").status_code == 400
    assert jmap.http.get(base + "?types=*&closeafter=no&ping=x").status_code == 400
    assert httpx.get(base + "?types=*&closeafter=no&ping=0").status_code == 401


@every_upstream  # Cyrus has no NOTIFY: bridge watches by IDLE and polling there
def test_another_clients_change_is_pushed_without_a_request(
    jmap: JmapClient, other: IMAPClient
) -> None:
    before = jmap.call("Email/get", {"ids": []})["state"]
    events = Events(jmap, "types=Email,Mailbox&closeafter=state&ping=0")
    time.sleep(0.3)  # the watcher's first look
    started = time.monotonic()
    other.append("INBOX", b"From: a@x\r\nSubject: pushed\r\n\r\nb\r\n")
    name, data, _ = events.next(timeout=5)
    latency = time.monotonic() - started
    assert name == "state", (name, data)
    pushed = states(data, jmap.account_id)
    assert latency < 3, latency  # watched every second
    # The pushed state is the one a client now reads, and /changes from the old state
    # gives exactly the new message.
    assert jmap.call("Email/get", {"ids": []})["state"] == pushed["Email"]
    changes = jmap.call("Email/changes", {"sinceState": before})
    assert len(changes["created"]) == 1 and changes["updated"] == changes["destroyed"] == []


def test_a_browser_listens_with_a_token(bridge: BridgeServer, jmap: JmapClient) -> None:
    jmap.mailboxes()
    issued = jmap.http.post("/jmap/token")
    assert issued.status_code == 200
    token = issued.json()["token"]
    assert "jmap_token" in issued.headers["set-cookie"]
    base = jmap.session["eventSourceUrl"].split("?")[0]
    anonymous = httpx.Client(base_url=bridge.url, timeout=30)
    with anonymous.stream(
        "GET", base + f"?types=*&closeafter=state&ping=0&access_token={token}",
        headers={"Last-Event-ID": "Mailbox:old"},
    ) as response:  # fmt: skip
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("event: ")]
    assert lines == ["event: state"]
    refused = anonymous.get(base + "?types=*&closeafter=state&ping=0&access_token=forged")
    assert refused.status_code == 401
    anonymous.close()


def test_event_streams_per_user_are_capped(jmap: JmapClient) -> None:
    url = jmap.session["eventSourceUrl"].split("?")[0] + "?types=*&closeafter=no&ping=0"
    with contextlib.ExitStack() as streams:
        for _ in range(10):  # max_event_streams_per_user's default
            opened = streams.enter_context(jmap.http.stream("GET", url))
            assert opened.status_code == 200
        refused = jmap.http.get(url)
        assert refused.status_code == 429, refused.text
        problem = refused.json()
        assert problem["type"] == "urn:ietf:params:jmap:error:limit"
        assert problem["limit"] == "maxEventStreams"
    # Streams the client closed free their places.
    deadline = time.monotonic() + 5
    while True:
        with jmap.http.stream("GET", url) as again:
            if again.status_code == 200:
                break
        assert time.monotonic() < deadline, "closed streams kept their places"
        time.sleep(0.05)
