"""B4: how long another IMAP client's change takes to reach an EventSource stream.

``python -m tests.bench.push [--changes N] [--idle-clients N]``. bridge runs as its own
process; one stream listens while another client appends, flags and expunges in turn;
each change's latency is the time from the IMAP command's answer to the state event.
Then N idle streams over 20 users are opened and bridge's resident memory and CPU time
are read from /proc before and after a quiet period.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
from imapclient import IMAPClient

from bridge.demo.dovecot import Dovecot
from tests.bench.harness import BridgeProcess, Jmap, check, progress

USERS = {f"push{n:02d}": f"pw-{n:02d}" for n in range(20)}


def _reader(url: str, auth: tuple[str, str], events: queue.Queue[float], stop: threading.Event):
    # bridge closing the streams at the end of the run ends the reader too.
    with (
        contextlib.suppress(httpx.HTTPError),
        httpx.Client(auth=auth, timeout=None) as http,
        http.stream("GET", url) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("event: state"):
                events.put(time.monotonic())
            if stop.is_set():
                return


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--idle-clients", type=int, default=200)
    args = parser.parse_args(argv)
    with Dovecot(dict(USERS)) as dovecot, BridgeProcess(dovecot.port) as bridge:
        user, password = next(iter(USERS.items()))
        jmap = Jmap(bridge.url, user, password)
        session = jmap.session()
        jmap.request([["Mailbox/get", {"accountId": jmap.account_id, "ids": []}, "m"]])
        url = session["eventSourceUrl"].format(types="Email", closeafter="no", ping="0")
        events: queue.Queue[float] = queue.Queue()
        stop = threading.Event()
        threading.Thread(target=_reader, args=(url, (user, password), events, stop),
                         daemon=True).start()  # fmt: skip
        time.sleep(1.5)
        other = IMAPClient(dovecot.host, port=dovecot.port, ssl=False)
        other.login(user, password)
        latencies: list[float] = []
        progress(f"B4: {args.changes} changes by another IMAP client")
        for number in range(args.changes):
            kind = number % 3
            if kind == 0:
                other.append("INBOX", b"From: a@x\r\nSubject: push %d\r\n\r\nb\r\n" % number)
            else:
                other.select_folder("INBOX")
                uids = other.search("ALL")
                if kind == 1:
                    other.add_flags(uids[-1:], [b"\\Seen"])
                else:
                    other.delete_messages(uids[-1:])
                    other.expunge()
                other.unselect_folder()
            done = time.monotonic()
            try:
                arrived = events.get(timeout=10)
            except queue.Empty:
                check(False, f"change {number} was never pushed")
            latencies.append(arrived - done)
            while not events.empty():  # one change can move several states
                events.get_nowait()
        stop.set()
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        median = statistics.median(latencies)

        progress(f"B4: {args.idle_clients} idle streams over {len(USERS)} users")
        pid = bridge.process.pid if bridge.process else 0
        rss_before, cpu_before = _rss_kib(pid), _cpu_seconds(pid)
        stops = threading.Event()
        names = list(USERS.items())
        for number in range(args.idle_clients):
            name, secret = names[number % len(names)]
            auth = (name, secret)
            stream = session["eventSourceUrl"].format(types="*", closeafter="no", ping="0")
            threading.Thread(target=_reader, args=(stream, auth, queue.Queue(), stops),
                             daemon=True).start()  # fmt: skip
        time.sleep(5)
        rss_loaded, cpu_start = _rss_kib(pid), _cpu_seconds(pid)
        time.sleep(20)
        cpu_idle = (_cpu_seconds(pid) - cpu_start) / 20
        print(json.dumps({
            "changes": args.changes,
            "median_ms": round(median * 1000), "p99_ms": round(p99 * 1000),
            "max_ms": round(latencies[-1] * 1000),
            "idle_streams": args.idle_clients, "users": len(USERS),
            "rss_before_kib": rss_before, "rss_with_streams_kib": rss_loaded,
            "cpu_share_idle": round(cpu_idle, 3), "cpu_s_setup": round(cpu_start - cpu_before, 2),
        }, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
