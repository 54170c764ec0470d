"""A real bridge on uvicorn in a background thread, and a small JMAP client for tests."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bridge.config import Settings
from bridge.demo.process import free_port
from bridge.http.app import create_app
from bridge.imap.pool import ConnectionPool
from tests.support.stores import store_for

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
USING = [CORE, MAIL]


class BridgeServer:
    def __init__(
        self,
        imap_host: str,
        imap_port: int,
        data_dir: Path,
        pool: ConnectionPool | None = None,
        ssl_files: tuple[str, str] | None = None,
        **settings: Any,
    ) -> None:
        self.port = free_port()
        settings.setdefault("upstream_tls", "plain")
        settings.setdefault("upstream_timeout", 10.0)
        # A database of its own on the PostgreSQL run (BRIDGE_TEST_STORE), else SQLite.
        settings.setdefault("store", store_for(data_dir))
        self.settings = Settings(
            upstream_host=imap_host,
            upstream_port=imap_port,
            listen_port=self.port,
            data_dir=str(data_dir),
            log_level="warning",
            **settings,
        )
        self.app = create_app(self.settings, pool=pool)
        extra: dict[str, Any] = {}
        if ssl_files:
            extra = {"ssl_certfile": ssl_files[0], "ssl_keyfile": ssl_files[1]}
        scheme = "https" if ssl_files else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        # Open event streams never end by themselves: shutdown stops waiting for them.
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning",
            timeout_graceful_shutdown=1, **extra,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def bridge(self) -> Any:
        return self.app.state.bridge

    def start(self) -> BridgeServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("bridge did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> BridgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, user: str, password: str) -> JmapClient:
        return JmapClient(self.url, user, password)


class JmapClient:
    """Just enough JMAP to write tests in: raw calls, and the account id."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.user = user
        self.http = httpx.Client(base_url=url, auth=(user, password), timeout=30)
        self._session: dict[str, Any] | None = None

    @property
    def session(self) -> dict[str, Any]:
        if self._session is None:
            response = self.http.get("/jmap/session")
            response.raise_for_status()
            self._session = response.json()
        return self._session

    @property
    def account_id(self) -> str:
        return self.session["primaryAccounts"][MAIL]

    def post(self, body: Any, **kwargs: Any) -> httpx.Response:
        if isinstance(body, bytes | str):
            headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
            return self.http.post("/jmap/api", content=body, headers=headers, **kwargs)
        return self.http.post("/jmap/api", json=body, **kwargs)

    def request(self, calls: list[list[Any]], using: list[str] | None = None) -> list[Any]:
        response = self.post({"using": using or USING, "methodCalls": calls})
        assert response.status_code == 200, response.text
        return response.json()["methodResponses"]

    def call(self, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """One method call with this account; returns its arguments (or the error)."""
        body = {"accountId": self.account_id, **(args or {})}
        [[name, result, _]] = self.request([[method, body, "c0"]])
        if name == "error":
            return {"error": result}
        assert name == method, (name, result)
        return result

    def mailboxes(self) -> dict[str, dict[str, Any]]:
        """name path ("Work/Projects") -> Mailbox object."""
        listing = self.call("Mailbox/get", {"ids": None})["list"]
        by_id = {m["id"]: m for m in listing}

        def path(mailbox: dict[str, Any]) -> str:
            parent = by_id.get(mailbox["parentId"]) if mailbox["parentId"] else None
            return f"{path(parent)}/{mailbox['name']}" if parent else mailbox["name"]

        return {path(m): m for m in listing}

    def close(self) -> None:
        self.http.close()


def established(port: int) -> int:
    """TCP connections to local ``port`` now open (the server's side, from /proc/net/tcp):
    how many sessions a server on this machine holds, counted from outside it."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count
