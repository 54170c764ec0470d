"""What every benchmark needs: bridge as a subprocess, a JMAP client, timing, sizes.

bridge runs as ``python -m bridge serve`` in a process of its own, so its peak memory
(VmHWM) is its own and not the benchmark's; the benchmark talks to it over HTTP with a
keep-alive httpx client, as a real JMAP client would.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bridge.demo.dovecot import free_port

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
USING = [CORE, MAIL]
REPO = Path(__file__).resolve().parents[2]

# What a list view shows of each message: the properties every scenario asks for.
LIST_PROPERTIES = [
    "threadId", "mailboxIds", "keywords", "from", "subject", "receivedAt", "size", "preview",
    "hasAttachment",
]  # fmt: skip
# The raw IMAP side's equivalent of LIST_PROPERTIES.
RAW_LIST_ITEMS = ["ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODYSTRUCTURE", "PREVIEW"]


class BenchError(AssertionError):
    """A correctness check failed: the numbers of this run mean nothing."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise BenchError(message)


# --------------------------------------------------------------------------------------
# bridge as a subprocess
# --------------------------------------------------------------------------------------


class BridgeProcess:
    """``python -m bridge serve`` in front of one upstream, with its own data directory;
    from ``source`` (a tree holding another revision's ``bridge/``) or this checkout."""

    def __init__(
        self,
        imap_port: int,
        data_dir: Path | None = None,
        flags: Sequence[str] = (),
        log_level: str = "warning",
        repo: Path = REPO,
        log_path: Path | None = None,
    ) -> None:
        self.flags = [*flags, "--log-level", log_level]
        self.repo = repo  # the checkout whose bridge runs
        self.port = free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="bench-bridge-"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.imap_port = imap_port
        self.process: subprocess.Popen[bytes] | None = None
        # Instances sharing one data directory each log to a file of their own.
        self.log_path = log_path or self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self, timeout: float = 30.0) -> BridgeProcess:
        command = [
            sys.executable, "-m", "bridge", "serve",
            "--upstream-host", "127.0.0.1", "--upstream-port", str(self.imap_port),
            "--upstream-tls", "plain", "--listen-port", str(self.port),
            "--data-dir", str(self.data_dir), *self.flags,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(self.repo)}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.repo, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2) as probe:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"bridge exited early:\n{self.read_log()}")
                try:
                    if probe.get("/.well-known/jmap").status_code in (200, 301, 302, 307, 308):
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bridge did not answer:\n{self.read_log()}")
                time.sleep(0.05)

    def read_log(self, tail: int | None = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
            return text[-tail:] if tail else text
        except FileNotFoundError:
            return ""

    def memory_kib(self, field_name: str = "VmHWM") -> int:
        """A line of /proc/<pid>/status in KiB: VmHWM is the peak resident set size."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field_name} for pid {self.process.pid}")

    def cache_files(self) -> list[Path]:
        return sorted(self.data_dir.glob("users/*/cache.sqlite3"))

    def stop(self) -> int | None:
        """Stop bridge as a service manager would (SIGTERM); its exit status."""
        status = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
            try:
                status = self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.log_path.unlink(missing_ok=True)
        return status

    def __enter__(self) -> BridgeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and self.process is not None:
            log = self.read_log()
            if log.strip():
                print(f"--- bridge log ---\n{log}", file=sys.stderr)
        self.stop()


def cache_bytes(path: Path) -> int:
    """Size of a cache after a WAL checkpoint: the database file plus its -wal file."""
    with sqlite3.connect(path, timeout=30) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    check(busy == 0, f"could not checkpoint {path}: bridge kept it busy")
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


# --------------------------------------------------------------------------------------
# JMAP client
# --------------------------------------------------------------------------------------


class Jmap:
    """A persistent (keep-alive) HTTP client, as a real JMAP client keeps one."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.http = httpx.Client(base_url=url, auth=(user, password), timeout=300)
        self.account_id: str | None = None

    def session(self) -> dict[str, Any]:
        response = self.http.get("/jmap/session")
        check(response.status_code == 200, f"session: {response.status_code} {response.text}")
        session = response.json()
        self.account_id = session["primaryAccounts"][MAIL]
        return session

    def request(self, calls: list[list[Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
        """POST one request; call id -> (method name, arguments). Errors fail loudly."""
        response = self.http.post("/jmap/api", json={"using": USING, "methodCalls": calls})
        check(response.status_code == 200, f"api: {response.status_code} {response.text[:500]}")
        results = {}
        for name, args, call_id in response.json()["methodResponses"]:
            check(name != "error", f"method error in call {call_id}: {args}")
            results[call_id] = (name, args)
        return results

    def wait_indexed(self, timeout: float = 900.0) -> float | None:
        """Wait until bridge has indexed every folder of the account (a big account's
        first requests answer before that, and index in the background); seconds waited.
        None when this bridge has no /jmap/status: it indexes within the request."""
        start = time.perf_counter()
        nudged = 0
        while True:
            response = self.http.get("/jmap/status")
            if response.status_code == 404:
                return None
            check(response.status_code == 200, f"status: {response.status_code}")
            status = response.json()
            folders = status.get("folders", {}).values()
            done = all(f["indexed"] >= f["total"] for f in folders)
            if done and not status.get("indexing"):
                return time.perf_counter() - start
            if not status.get("indexing") and not done:
                # Indexing stopped (an upstream error): the next request resumes it.
                nudged += 1
                check(nudged < 5, f"indexing does not finish: {status}")
                self.request([["Mailbox/get", {"accountId": self.account_id, "ids": []}, "m"]])
            check(time.perf_counter() - start < timeout, f"indexing took too long: {status}")
            time.sleep(0.2)

    def close(self) -> None:
        self.http.close()


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


@dataclass
class Series:
    """Repeated timings of one thing, in seconds."""

    samples: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def __str__(self) -> str:
        return f"{ms(self.median)} (n={len(self.samples)})"


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def spread(values: list[float]) -> str:
    """Median (lowest-highest) of timings in seconds, shown in ms."""
    low, high = min(values) * 1000, max(values) * 1000
    return f"{statistics.median(values) * 1000:.1f} ms ({low:.1f}-{high:.1f})"


def ms(seconds: float) -> str:
    value = seconds * 1000
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x"


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
