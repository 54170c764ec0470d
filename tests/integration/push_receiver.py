"""A stand-in push service for tests: an HTTP server in a thread that records what it gets."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records every POST. ``script[path]`` lists the statuses to answer there in turn;
    after those (and elsewhere) it answers 201, as push services do."""

    def __init__(self) -> None:
        self.deliveries: queue.Queue[Delivery] = queue.Queue()
        self.script: dict[str, list[int]] = {}
        self.connections = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.deliveries.put(Delivery(self.path, headers, body))
                statuses = receiver.script.get(self.path)
                self.send_response(statuses.pop(0) if statuses else 201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                receiver.connections += 1  # any connection at all, even one that sends nothing
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/push") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def next(self, timeout: float = 5.0) -> Delivery:
        return self.deliveries.get(timeout=timeout)

    def assert_silent(self, seconds: float) -> None:
        time.sleep(seconds)
        assert self.deliveries.empty(), self.deliveries.get_nowait()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
