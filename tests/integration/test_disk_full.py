"""A full disk under the data directory is HTTP 507 with a problem document (or a
serverFail inside a method), one log line and no traceback; nothing half-written stays.

The bridge runs in a child process whose file size limit (RLIMIT_FSIZE) is small: a write
past it fails with EFBIG, as a write to a full disk fails with ENOSPC, and that works
without the privileges a small tmpfs would need."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge.demo.dovecot import Dovecot, free_port
from bridge.store.cache import Cache
from tests.integration.conftest import USERS
from tests.integration.test_cache_damage import cache_file
from tests.support.stores import store_for


def _limit_file_size(size: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


class LimitedBridge:
    def __init__(self, upstream: Dovecot, data: Path, max_file_size: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / f"bridge-{self.port}.log"
        args = [
            sys.executable, "-m", "bridge", "serve", "--upstream-host", upstream.host,
            "--upstream-port", str(upstream.port), "--upstream-tls", "plain",
            "--listen-port", str(self.port), "--data-dir", str(data),
        ]  # fmt: skip
        store = store_for(data)  # uploads stay under the data directory on PostgreSQL too
        args += ["--store", store] if store else []
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env,
                preexec_fn=lambda: _limit_file_size(max_file_size),
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(self.url + "/.well-known/jmap")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(self.log.read_text()) from None
                time.sleep(0.1)

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=10)
        return self.log.read_text()


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


@pytest.mark.sqlite_only  # the SQLite file of a new user
def test_a_new_user_on_a_full_disk_gets_507(dovecot: Dovecot, data: Path) -> None:
    bridge = LimitedBridge(dovecot, data, max_file_size=32 * 1024)  # the empty cache: 60 KB
    try:
        response = httpx.post(
            bridge.url + "/jmap/api", auth=("alice", USERS["alice"]),
            json={"using": ["urn:ietf:params:jmap:core"],
                  "methodCalls": [["Core/echo", {}, "0"]]},
        )  # fmt: skip
    finally:
        logged = bridge.stop()
    assert response.status_code == 507
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 507
    assert "Traceback" not in logged and logged.count("no space") == 1
    assert not cache_file(data, "alice").exists()


def test_an_upload_on_a_full_disk_gets_507(dovecot: Dovecot, data: Path) -> None:
    Cache.open(cache_file(data, "alice")).close()  # the user's cache, made while there was room
    bridge = LimitedBridge(dovecot, data, max_file_size=256 * 1024)
    try:
        jmap = httpx.Client(base_url=bridge.url, auth=("alice", USERS["alice"]))
        session = jmap.get("/jmap/session").json()
        account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        url = session["uploadUrl"].replace("{accountId}", account)
        response = jmap.post(url, content=b"x" * 1_000_000)
        small = jmap.post(url, content=b"fits")
        jmap.close()
    finally:
        logged = bridge.stop()
    assert response.status_code == 507
    assert response.json()["detail"] == "no space left to store the upload"
    assert small.status_code == 201  # nothing of the failed one stands in the way
    assert "Traceback" not in logged
    uploads = cache_file(data, "alice").parent / "uploads"
    assert all(p.stat().st_size < 1000 for p in uploads.rglob("*") if p.is_file())
