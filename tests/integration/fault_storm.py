"""A storm of upstream faults under a mixed write workload, and what must hold after it.

Two JMAP clients write through one bridge (Email/set creates with a unique Message-ID each,
moves between two folders, flag changes, destroys) while Dovecot is, at random moments,
SIGSTOPped for a while (shorter and longer than bridge's upstream timeout) or SIGKILLed and
started again on the same port and data. After the storm raw IMAP reads what is really
upstream, and every answer bridge gave is checked against it:

- a create answered as created is upstream exactly once; one answered as not created (or
  inside a method that failed) is not there; one whose answer never came is there at most
  once;
- a move, flag change or destroy answered as done is upstream as answered (in the new
  folder only, with the flag, gone); one that failed left the message exactly once in one
  of the two folders, or, for a destroy, at most once;
- no request took longer than the deadline (DEADLINE_TIMEOUTS upstream timeouts).

The storm is seeded: a failing run can be replayed with the same seed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot, free_port
from tests.integration.server import BridgeServer, JmapClient

USERS = {"alice": "alice-storm-pw"}
FOLDERS = ("StormA", "StormB")
# Larger than any deadline: a request still open then counts as hung.
CLIENT_TIMEOUT = 120.0
# No request may take longer than this many upstream timeouts. bridge has no deadline of
# its own per request yet (upstream_timeout bounds each wait on the socket), so the bound
# is what one request can meet in a row: an idle connection whose UNSELECT times out, a
# new one whose greeting is slow, a sync or a write that times out (a timed-out sync is
# not tried again, and requests that waited for it fail at once), and the wait for another
# request's sync. Measured: at most 2.4 timeouts (7.3 s) over 100 rounds.
DEADLINE_TIMEOUTS = 5


@dataclass
class Tracked:
    """One message the workload created, and what bridge's answers say of it."""

    message_id: str
    email_id: str | None = None
    folder: str | None = None
    flagged: bool = False
    # "present": every write on it was answered, done or failed; "absent": its create
    # failed or its destroy was done; "unsure": an answer never came, or said to resync
    # (then only the exactly-once and at-most-once rules apply).
    state: str = "present"
    # Where an unsure message may be, and whether it may be gone (an unanswered create or
    # destroy).
    maybe: set[str] = field(default_factory=set)
    may_be_gone: bool = False
    # Each answer: monotonic time it came, what was asked, what came back.
    history: list[str] = field(default_factory=list)


@dataclass
class StormReport:
    rounds: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    # The slowest request: how long, when it started (wall clock), what it asked, what came.
    slowest: tuple[float, str] = (0.0, "")
    violations: list[str] = field(default_factory=list)
    tracked: int = 0

    @property
    def requests(self) -> int:
        return len(self.durations)

    def summary(self) -> str:
        durations = sorted(self.durations) or [0.0]
        return (
            f"{self.rounds} rounds ({dict(self.faults)}), {self.requests} requests, "
            f"{self.tracked} messages; outcomes {dict(sorted(self.outcomes.items()))}; "
            f"request time median {statistics.median(durations):.2f} s, "
            f"max {durations[-1]:.2f} s; {len(self.violations)} violations; "
            f"slowest: {self.slowest[1]}"
        )


class Upstream:
    """A Dovecot that can be frozen, killed and started again on the same port and data."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="dcs", dir="/tmp"))
        # sdbox locks with fcntl, which a killed process releases; Maildir's dotlocks would
        # hold its folders for minutes after a SIGKILL.
        self.dovecot = Dovecot(
            dict(USERS), base_dir=self.base, port=free_port(), mail_format="sdbox"
        )
        self.lock = threading.Lock()

    def start(self) -> None:
        self.dovecot.start()

    def _signal(self, signum: int) -> None:
        process = self.dovecot.process
        assert process is not None
        os.killpg(process.pid, signum)

    def freeze(self, seconds: float) -> None:
        with self.lock:
            self._signal(signal.SIGSTOP)
            time.sleep(seconds)
            self._signal(signal.SIGCONT)

    def crash_and_restart(self, down: float) -> None:
        with self.lock:
            process = self.dovecot.process
            assert process is not None
            self._signal(signal.SIGKILL)
            process.wait()
            self.dovecot.process = None
            time.sleep(down)
            self.dovecot.start()

    def stop(self) -> None:
        self.dovecot.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def imap(self) -> IMAPClient:
        client = IMAPClient(self.dovecot.host, port=self.dovecot.port, ssl=False, timeout=30)
        client.login("alice", USERS["alice"])
        return client


class Worker:
    """One JMAP client's share of the workload, over messages of its own."""

    def __init__(
        self, name: str, jmap: JmapClient, boxes: dict[str, str], seed: int, report: StormReport
    ) -> None:
        self.name = name
        self.jmap = jmap
        self.boxes = boxes  # folder name -> mailbox id
        self.random = random.Random(seed)
        self.report = report
        self.messages: list[Tracked] = []
        self.count = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()

    def step(self) -> None:
        known = [m for m in self.messages if m.state == "present" and m.email_id]
        choice = self.random.random()
        if not known or choice < 0.4:
            self.create()
        elif choice < 0.65:
            self.move(self.random.choice(known))
        elif choice < 0.85:
            self.flag(self.random.choice(known))
        else:
            self.destroy(self.random.choice(known))

    def _call(self, tracked: Tracked, args: dict[str, Any]) -> dict[str, Any] | None:
        """One Email/set; its arguments, an error object, or None if no answer came."""
        body = {
            "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
            "methodCalls": [["Email/set", {"accountId": self.jmap.account_id, **args}, "0"]],
        }
        started = time.monotonic()
        try:
            response = self.jmap.post(body, timeout=CLIENT_TIMEOUT)
        except httpx.HTTPError:
            self.report.outcomes["no answer"] += 1
            tracked.history.append(f"{time.strftime('%H:%M:%S')} {args} -> no answer")
            return None
        finally:
            took = time.monotonic() - started
            self.report.durations.append(took)
            if took > self.report.slowest[0]:
                when = time.strftime("%H:%M:%S", time.localtime(time.time() - took))
                self.report.slowest = (took, f"{took:.2f} s from {when}: {args}")
        tracked.history.append(f"{time.strftime('%H:%M:%S')} {args} -> {response.text[:300]}")
        if response.status_code != 200:
            self.report.outcomes[f"http {response.status_code}"] += 1
            return {"error": {"type": f"http {response.status_code}"}}
        [[name, result, _]] = response.json()["methodResponses"]
        if name == "error":
            self.report.outcomes[f"method error {result['type']}"] += 1
            # A real client backs off before trying again.
            time.sleep(0.05)
            return {"error": result}
        return dict(result)

    def create(self) -> None:
        self.count += 1
        message_id = f"storm-{self.name}-{self.count}@bridge.test"
        folder = self.random.choice(FOLDERS)
        tracked = Tracked(message_id, folder=folder)
        self.messages.append(tracked)
        result = self._call(tracked, {"create": {"c": {
            "mailboxIds": {self.boxes[folder]: True}, "subject": f"storm {self.count}",
            "messageId": [message_id], "from": [{"email": "storm@bridge.test"}],
            "bodyValues": {"b": {"value": "storm"}}, "textBody": [{"partId": "b"}],
        }}})  # fmt: skip
        if self._unsure(result, tracked, "create"):
            tracked.maybe, tracked.may_be_gone = {folder}, True
        elif "c" in (result.get("created") or {}):
            tracked.email_id = result["created"]["c"]["id"]
            self.report.outcomes["create done"] += 1
        else:
            tracked.state = "absent"
            self._failed("create", result, "c", "notCreated")

    def move(self, tracked: Tracked) -> None:
        assert tracked.folder is not None and tracked.email_id is not None
        target = next(f for f in FOLDERS if f != tracked.folder)
        patch = {"mailboxIds": {self.boxes[target]: True}}
        result = self._call(tracked, {"update": {tracked.email_id: patch}})
        if self._unsure(result, tracked, "move"):
            tracked.maybe = {tracked.folder, target}
        elif self._updated(result, tracked, "move"):
            tracked.folder = target

    def flag(self, tracked: Tracked) -> None:
        assert tracked.email_id is not None and tracked.folder is not None
        wanted = not tracked.flagged
        patch = {"keywords/$flagged": True if wanted else None}
        result = self._call(tracked, {"update": {tracked.email_id: patch}})
        if self._unsure(result, tracked, "flag"):
            tracked.maybe = {tracked.folder}
        elif self._updated(result, tracked, "flag"):
            tracked.flagged = wanted

    def destroy(self, tracked: Tracked) -> None:
        assert tracked.email_id is not None and tracked.folder is not None
        result = self._call(tracked, {"destroy": [tracked.email_id]})
        if self._unsure(result, tracked, "destroy"):
            tracked.maybe, tracked.may_be_gone = {tracked.folder}, True
        elif tracked.email_id in (result.get("destroyed") or []):
            tracked.state = "absent"
            self.report.outcomes["destroy done"] += 1
        else:
            self._failed("destroy", result, tracked.email_id, "notDestroyed")

    @staticmethod
    def _unsure(result: dict[str, Any] | None, tracked: Tracked, kind: str) -> bool:
        """No answer, or serverPartialFail (RFC 8620 §3.6.2: resync to learn what happened):
        from here on only the exactly-once rules hold for the message."""
        error = (result or {}).get("error", {})
        if result is not None and error.get("type") != "serverPartialFail":
            return False
        tracked.state = "unsure"
        return True

    def _updated(self, result: dict[str, Any], tracked: Tracked, kind: str) -> bool:
        if tracked.email_id in (result.get("updated") or {}):
            self.report.outcomes[f"{kind} done"] += 1
            return True
        self._failed(kind, result, tracked.email_id, "notUpdated")
        return False

    def _failed(self, kind: str, result: dict[str, Any], key: Any, errors: str) -> None:
        """A method error or a SetError: RFC 8620 says nothing changed."""
        if "error" not in result:
            error = (result.get(errors) or {}).get(key, {})
            self.report.outcomes[f"{kind} failed {error.get('type')}"] += 1


def upstream_state(upstream: Upstream) -> dict[str, list[tuple[str, bool, bool]]]:
    """Message-ID -> [(folder, flagged, deleted)] for every copy in the storm's folders."""
    found: dict[str, list[tuple[str, bool, bool]]] = {}
    client = upstream.imap()
    try:
        for folder in FOLDERS:
            client.select_folder(folder, readonly=True)
            items = client.fetch(
                client.search("ALL"), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
            )
            for data in items.values():
                header = data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode()
                message_id = header.split(":", 1)[1].strip().strip("<>")
                flags = data[b"FLAGS"]
                found.setdefault(message_id, []).append(
                    (folder, b"\\Flagged" in flags, b"\\Deleted" in flags)
                )
    finally:
        client.logout()
    return found


def check(tracked: Tracked, copies: list[tuple[str, bool, bool]]) -> str | None:
    """What is wrong with ``tracked`` upstream, or None."""
    where = sorted(folder for folder, _, _ in copies)
    label = f"{tracked.message_id} ({tracked.state}, last answered in {tracked.folder})"
    if tracked.state == "absent":
        return None if not copies else f"answered not created or destroyed, yet upstream: {label}"
    if tracked.state == "present":
        if where != [tracked.folder]:
            return f"upstream not as answered: {label}"
        if copies[0][1] != tracked.flagged:
            return f"flag upstream not as answered: {label}"
        return None
    if len(copies) > 1:
        if len(tracked.maybe) == 2 and where == sorted(tracked.maybe):
            # A MOVE cut by SIGKILL: Dovecot copies, then expunges, so a crash between
            # leaves both (RFC 6851 §4.4 asks for atomicity only "if possible"). bridge
            # answered serverPartialFail; the client resyncs and sees both mailboxIds.
            return None
        return f"upstream more than once: {label}"
    if not copies and not tracked.may_be_gone:
        return f"lost: {label}"
    if copies and where[0] not in tracked.maybe:
        return f"in a folder no answer allows: {label}"
    return None


def run_storm(rounds: int, seed: int, upstream_timeout: float = 3.0) -> StormReport:
    rng = random.Random(seed)
    report = StormReport()
    upstream = Upstream()
    upstream.start()
    data = Path(tempfile.mkdtemp(prefix="storm"))
    try:
        setup = upstream.imap()
        for folder in FOLDERS:
            setup.create_folder(folder)
        setup.logout()
        with BridgeServer(upstream.dovecot.host, upstream.dovecot.port, data,
                          upstream_timeout=upstream_timeout) as bridge:  # fmt: skip
            clients = [bridge.client("alice", USERS["alice"]) for _ in range(2)]
            boxes = {name: m["id"] for name, m in clients[0].mailboxes().items()}
            workers = [
                Worker(f"w{n}", client, boxes, rng.randrange(2**32), report)
                for n, client in enumerate(clients)
            ]
            stop = threading.Event()
            threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
            for thread in threads:
                thread.start()
            for _ in range(rounds):
                time.sleep(rng.uniform(0.1, 1.5))
                if rng.random() < 0.5:
                    report.faults["stop"] += 1
                    upstream.freeze(rng.uniform(0.2, 2.5 * upstream_timeout))
                else:
                    report.faults["kill"] += 1
                    upstream.crash_and_restart(rng.uniform(0.0, 1.0))
                report.rounds += 1
            # Calm weather: the last requests finish against a running server.
            time.sleep(1.0)
            stop.set()
            for thread in threads:
                thread.join(CLIENT_TIMEOUT + 10)
                if thread.is_alive():
                    report.violations.append("a worker never finished its last request")
            for client in clients:
                client.close()
        state = upstream_state(upstream)
        for worker in workers:
            for tracked in worker.messages:
                report.tracked += 1
                copies = state.get(tracked.message_id, [])
                if len(copies) > 1 and tracked.state == "unsure":
                    report.outcomes["unsure move left in both folders"] += 1
                problem = check(tracked, copies)
                if problem:
                    found = state.get(tracked.message_id, [])
                    report.violations.append(
                        "\n    ".join([problem, f"upstream: {found}", *tracked.history])
                    )
    finally:
        upstream.stop()
        shutil.rmtree(data, ignore_errors=True)
    return report
