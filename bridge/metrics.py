"""The counters and histograms bridge keeps for Prometheus, and the registry that serves them.

Every label value comes from a closed set bridge itself defines: JMAP method names the
engine registered (any other name a client sends counts as "unknown"), IMAP command names
from ``IMAP_COMMANDS``, result and outcome words. A value a client or a server chooses
(a username, a folder, a server's text) never becomes a label: each distinct value is a
series of its own kept for the life of the process, and a username there would publish who
uses bridge. Per-user figures are summed before they are shown.

The objects live here, in a module that imports nothing of bridge, so that the engine, the
IMAP wire and the push sender can count without knowing of HTTP; what is measured at scrape
time (pool sizes, watchers, streams, the index backlog) is a collector the HTTP side adds
(bridge.http.gauges).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.registry import Collector

# Seconds: from a fast cache hit (1 ms) to the request timeout's range (30 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# What bridge sends upstream (RFC 3501, 9051 and the extensions bridge uses): a label value
# outside it would be a bug, shown as OTHER rather than as a new series.
IMAP_COMMANDS = frozenset({
    "APPEND", "AUTHENTICATE", "CAPABILITY", "CHECK", "CLOSE", "COPY", "CREATE", "DELETE",
    "ENABLE", "EXAMINE", "EXPUNGE", "FETCH", "GETQUOTA", "GETQUOTAROOT", "ID", "IDLE", "LIST",
    "LOGIN", "LOGOUT", "LSUB", "MOVE", "MYRIGHTS", "NAMESPACE", "NOOP", "NOTIFY", "RENAME",
    "SEARCH", "SELECT", "SORT", "STARTTLS", "STATUS", "STORE", "SUBSCRIBE", "THREAD",
    "UNSELECT", "UNSUBSCRIBE", "UID COPY", "UID EXPUNGE", "UID FETCH", "UID MOVE",
    "UID SEARCH", "UID SORT", "UID STORE", "UID THREAD",
})  # fmt: skip

HTTP_REQUESTS = Counter(
    "bridge_http_requests",
    "HTTP requests answered, by endpoint and status code",
    ["endpoint", "status"],
    registry=None,
)
HTTP_LATENCY = Histogram(
    "bridge_http_request_duration_seconds",
    "Seconds from a request's arrival to its response's status line (for an event stream:"
    " to the stream's start)",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
JMAP_CALLS = Counter(
    "bridge_jmap_method_calls",
    "JMAP method calls run, by method and result (ok, or the JMAP error type)",
    ["method", "result"],
    registry=None,
)
JMAP_LATENCY = Histogram(
    "bridge_jmap_method_duration_seconds",
    "Seconds one JMAP method call took, by method",
    ["method"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
JMAP_REQUESTS = Counter(
    "bridge_jmap_requests",
    "JMAP requests run, by where (loop: on the event loop, worker: on a worker thread,"
    " moved: begun on the loop and started over on a worker)",
    ["ran"],
    registry=None,
)
IMAP_COMMANDS_RUN = Counter(
    "bridge_imap_commands",
    "IMAP commands sent upstream, by command and result (ok, no, bad, timeout, unavailable)",
    ["command", "result"],
    registry=None,
)
IMAP_LATENCY = Histogram(
    "bridge_imap_command_duration_seconds",
    "Seconds from sending an IMAP command to its tagged completion (IDLE left out: it lasts"
    " as long as nothing happens)",
    ["command"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
IMAP_CONNECTS = Counter(
    "bridge_imap_connections_opened",
    "Upstream IMAP sessions opened, by result (ok, refused: the login failed, failed)",
    ["result"],
    registry=None,
)
PUSH_DELIVERIES = Counter(
    "bridge_push_deliveries",
    "POSTs to PushSubscription URLs, by outcome (delivered, retry, gone, failed)",
    ["outcome"],
    registry=None,
)
CONNECTIONS_REBALANCED = Counter(
    "bridge_http_connections_rebalanced",
    "Kept-alive connections a worker closed after an answer because it carried more"
    " requests than another worker (bridge serve --workers N, bridge.http.balance)",
    registry=None,
)

_COUNTED: tuple[Collector, ...] = (
    HTTP_REQUESTS,
    HTTP_LATENCY,
    JMAP_CALLS,
    JMAP_LATENCY,
    JMAP_REQUESTS,
    IMAP_COMMANDS_RUN,
    IMAP_LATENCY,
    IMAP_CONNECTS,
    PUSH_DELIVERIES,
    CONNECTIONS_REBALANCED,
)


def imap_command_label(name: str) -> str:
    """``name`` as a label value: one of IMAP_COMMANDS, or OTHER."""
    label = name.upper()
    return label if label in IMAP_COMMANDS else "OTHER"


def registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry of bridge's counters, the process's own figures (CPU, memory, open
    files, garbage collection) and ``extra`` collectors. The counters are the process's:
    every registry built here shows the same ones."""
    built = CollectorRegistry(auto_describe=True)
    for collector in (*_COUNTED, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, *extra):
        built.register(collector)
    return built
