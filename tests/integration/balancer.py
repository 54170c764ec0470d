"""A real nginx, round-robin in front of bridge instances, with a throwaway config: what
an operator puts in front of several instances (examples/instances/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from bridge.demo.process import free_port

CONFIG = """\
{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream bridge {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://bridge;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
            # Event streams: every event at once, and open as long as the client wants.
            proxy_buffering off;
            proxy_read_timeout 1h;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, root: Path, backends: Sequence[int]) -> None:
        if shutil.which("nginx") is None:
            pytest.fail("nginx is not installed (bash .ci/run installs it)")
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server 127.0.0.1:{port};" for port in backends)
        # As root, nginx's workers would run as nobody, who cannot write the temp paths.
        user = "user root;" if os.geteuid() == 0 else ""
        self.config = root / "nginx.conf"
        self.config.write_text(CONFIG.format(user=user, root=root, servers=servers, port=self.port))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        errors = str(self.root / "error.log")
        self.process = subprocess.Popen(
            ["nginx", "-p", str(self.root), "-c", str(self.config), "-e", errors],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {self.read_log()}") from None
                time.sleep(0.05)

    def read_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
