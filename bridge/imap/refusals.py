"""Extensions an upstream advertised and then refused, remembered for the process.

A server may list an extension it does not serve (a capability string set by hand, a
plugin switched off, a proxy in front of another server). Once a command that needs the
extension is refused and the same work succeeds the plain way, the extension is noted
here under the upstream's host and port: connections opened later treat it as never
advertised, so each refusal costs one failed command per process, not one per request.
"""

from __future__ import annotations

import threading


class RefusedExtensions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_upstream: dict[tuple[str, int], frozenset[str]] = {}

    def of(self, host: str, port: int) -> frozenset[str]:
        with self._lock:
            return self._by_upstream.get((host, port), frozenset())

    def add(self, host: str, port: int, extension: str) -> bool:
        """Note a refusal; False if it was known already (so that it is logged once)."""
        with self._lock:
            known = self._by_upstream.get((host, port), frozenset())
            if extension in known:
                return False
            self._by_upstream[(host, port)] = known | {extension}
            return True

    def clear(self) -> None:
        with self._lock:
            self._by_upstream.clear()


REFUSED = RefusedExtensions()
