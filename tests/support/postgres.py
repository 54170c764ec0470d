"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests and the benchmarks.

Debian's PostgreSQL binaries (15 here) (``initdb``, ``postgres``) run on a free port with a data
directory under a temporary base directory; ``stop()`` stops the server and removes the
directory. initdb and postgres refuse to run as root: when we are root, both run as an
unprivileged system user (``postgres`` if the package created it, else ``nobody``) that owns
the base directory. Clients connect over TCP with a password (scram-sha-256), as bridge would
to a real server; the cluster is tuned for throwaway use (no fsync), never for data to keep.

    with PostgresCluster() as cluster:
        dsn = cluster.create_database("bridge_test")   # postgresql://bridge:...@127.0.0.1:p/db
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from bridge.demo.process import free_port

SUPERUSER = "bridge"


def postgres_bin_dir() -> Path | None:
    """Where Debian's PostgreSQL binaries are (``BRIDGE_PG_BIN`` overrides; else the newest
    major version under /usr/lib/postgresql), or None when not installed."""
    override = os.environ.get("BRIDGE_PG_BIN")
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    installed = sorted(versions, key=lambda path: int(path.parent.name), reverse=True)
    for candidate in ([Path(override)] if override else []) + installed:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    return None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """None when we are not root (run as ourselves), else the account to run as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither 'postgres' nor 'nobody' exists")


@dataclass
class PostgresCluster:
    """One ``postgres`` process serving a fresh cluster; superuser ``bridge`` with a random
    password (``password``), databases made by ``create_database``."""

    port: int = 0
    max_connections: int = 300
    base_dir: Path = field(init=False)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.base_dir = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@{self.host}:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> Self:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (bash .ci/run installs it)")
        runner = _unprivileged_user()
        as_user: dict[str, object] = {}
        if runner is not None:
            os.chown(self.base_dir, runner.pw_uid, runner.pw_gid)
            as_user = {"user": runner.pw_uid, "group": runner.pw_gid, "extra_groups": []}
        password_file = self.base_dir / "pwfile"
        password_file.write_text(self.password + "\n")
        if runner is not None:
            os.chown(password_file, runner.pw_uid, runner.pw_gid)
        password_file.chmod(0o600)
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                f"--pwfile={password_file}", "--auth=scram-sha-256", "-E", "UTF8",
                "--locale=C", "--no-sync",
            ],
            capture_output=True, cwd=self.base_dir, **as_user,  # type: ignore[arg-type]
        )  # fmt: skip
        password_file.unlink()
        if initdb.returncode != 0:
            self.stop()
            raise RuntimeError(f"initdb failed: {initdb.stderr.decode(errors='replace')}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            # No Unix socket: the base directory's path may be long, and clients use TCP.
            "unix_socket_directories": "",
            "max_connections": str(self.max_connections),
            # Throwaway data: durability buys nothing and costs the tests time.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "64MB",
        }
        argv = [str(bin_dir / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the process
        try:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, cwd=self.base_dir, **as_user,  # type: ignore[arg-type]
            )  # fmt: skip
        finally:
            log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until a login succeeds; RuntimeError with the log if postgres exits first."""
        import psycopg

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"postgres exited early: {self.read_log()}")
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postgres did not accept logins on port {self.port}")

    def read_log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""

    def create_database(self, name: str) -> str:
        """A new empty database (``name``: letters, digits, underscores); its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back and disconnect clients), SIGKILL after 10 s;
        then remove the base directory."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process = None
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
