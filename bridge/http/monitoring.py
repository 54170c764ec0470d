"""/metrics for Prometheus: the listener that serves it, the HTTP side's counts
(``RequestMetrics``), and what is measured at scrape time rather than counted
(``BridgeGauges``: upstream connections, watchers, event streams, indexing, each summed
over every user).

/metrics is off unless ``metrics_port`` is set, and then served there only, never on the
JMAP listener: that one faces clients (often the internet, through a proxy), while the
figures are for the operator's network. They name no user (bridge.metrics), but they do
tell how busy bridge is and how its upstream fares.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge import metrics

if TYPE_CHECKING:
    from prometheus_client import Metric

    from bridge.config import Settings
    from bridge.http.slots import UserSlots
    from bridge.imap.pool import ConnectionPool
    from bridge.mail.account import UserRegistry
    from bridge.mail.watcher import Watchers


class Monitored(Protocol):
    """What the gauges read of a running bridge."""

    settings: Settings
    pool: ConnectionPool
    watchers: Watchers
    event_streams: UserSlots
    users: UserRegistry


def metrics_listener(bridge: Monitored) -> MetricsListener | None:
    """The /metrics listener the settings ask for (not started), or None when off."""
    settings = bridge.settings
    if settings.metrics_port is None:
        return None
    gauges = BridgeGauges(bridge.pool, bridge.watchers, bridge.event_streams, bridge.users)
    return MetricsListener(settings.metrics_host, settings.metrics_port, metrics.registry([gauges]))


class MetricsListener:
    """/metrics (any path, in fact) of ``registry`` on ``host``:``port``, served by
    prometheus_client's own HTTP server in a thread."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server, self._thread = start_http_server(self.port, self.host, self.registry)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None


class RequestMetrics:
    """ASGI middleware: each HTTP request counted by endpoint and status, and timed to its
    status line. The endpoint label is the name of the route's handler function, so a
    path a client makes up never becomes a series (no route: "none")."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status: list[int] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and not status:
                status.append(message["status"])
                endpoint = _endpoint_name(scope)
                metrics.HTTP_LATENCY.labels(endpoint).observe(time.monotonic() - started)
                metrics.HTTP_REQUESTS.labels(endpoint, str(message["status"])).inc()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if not status:  # Starlette's outermost layer answers 500, beyond this one
                metrics.HTTP_REQUESTS.labels(_endpoint_name(scope), "500").inc()
            raise


def _endpoint_name(scope: Scope) -> str:
    # The router puts the matched route's handler in the scope (the same dict).
    endpoint: Any = scope.get("endpoint")
    return getattr(endpoint, "__name__", "none") if endpoint is not None else "none"


class BridgeGauges(Collector):
    def __init__(
        self,
        pool: ConnectionPool,
        watchers: Watchers,
        event_streams: UserSlots,
        users: UserRegistry,
    ) -> None:
        self.pool = pool
        self.watchers = watchers
        self.event_streams = event_streams
        self.users = users

    def collect(self) -> Iterator[Metric]:
        pool_users, open_, idle = self.pool.totals()
        connections = GaugeMetricFamily(
            "bridge_imap_pool_connections",
            "Pooled upstream IMAP connections: idle, or lent to a request (or being opened)",
            labels=["state"],
        )
        connections.add_metric(["idle"], idle)
        connections.add_metric(["lent"], open_ - idle)
        yield connections
        yield GaugeMetricFamily(
            "bridge_imap_pool_users", "Users the connection pool holds connections or a verified"
            " password for", value=pool_users,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "bridge_watchers", "Users whose upstream watcher runs (an IMAP session of its own,"
            " IDLE or NOTIFY, while a push channel listens)", value=self.watchers.running(),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "bridge_event_streams", "Open EventSource streams",
            value=self.event_streams.total(),
        )  # fmt: skip
        opened = self.users.opened()
        backlog = 0
        indexing = 0
        for user in opened:
            state = user.indexer.state
            indexing += state.running
            folders = list(state.folders.values())  # the indexer's thread adds to it
            backlog += sum(max(0, p.total - p.indexed) for p in folders)
        yield GaugeMetricFamily(
            "bridge_index_backlog_messages", "Messages still to index in the folders that"
            " background indexing has reached", value=backlog,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "bridge_indexers_running", "Users whose background indexing runs", value=indexing
        )
        yield GaugeMetricFamily(
            "bridge_users_open", "Users whose cache is open in this process", value=len(opened)
        )
