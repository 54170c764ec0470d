"""The ManageSieve client against a scripted server: TLS (implicit and STARTTLS), SASL,
literals on the wire, and failures. The real Dovecot is in tests/integration/test_vacation.py."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import pytest

from bridge.sieve.client import ManageSieve, Script, SieveConfig
from bridge.sieve.errors import SieveAuthFailed, SieveCommandFailed, SieveUnavailable
from tests.certificates import server_context

CAPABILITIES = b'"IMPLEMENTATION" "Fake"\r\n"SASL" "PLAIN LOGIN"\r\n"SIEVE" "fileinto vacation"\r\n'
Reply = bytes | tuple[bytes, bytes] | None
"""A response; (challenge, final) for a SASL exchange; None to never answer."""

_LITERAL = re.compile(rb"\{(\d+)\+\}\r\n$")


def answers(table: dict[bytes, bytes]) -> Callable[[bytes], Reply]:
    def respond(command: bytes) -> Reply:
        if command.startswith((b"AUTHENTICATE", b"LOGOUT")):
            return b'OK "fine"\r\n'
        return table.get(command, b'NO "unexpected"\r\n')

    return respond


class FakeSieve:
    def __init__(
        self,
        respond: Callable[[bytes], Reply],
        *,
        capabilities: bytes = CAPABILITIES,
        tls: ssl.SSLContext | None = None,
        implicit: bool = False,
        after_starttls: bytes = b"",
        tls_capabilities: bytes = CAPABILITIES,
    ) -> None:
        self.respond = respond
        self.capabilities = capabilities
        self.tls = tls
        self.implicit = implicit
        self.after_starttls = after_starttls
        self.tls_capabilities = tls_capabilities
        self.received: list[bytes] = []
        self.encrypted: list[bool] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def config(self, **kwargs: Any) -> SieveConfig:
        kwargs.setdefault("tls", "plain")
        kwargs.setdefault("timeout", 5.0)
        return SieveConfig("127.0.0.1", self.port, **kwargs)

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with contextlib.suppress(OSError, ValueError):
                if self.implicit and self.tls is not None:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                self._session(sock)
            sock.close()

    def _session(self, sock: socket.socket) -> None:
        reader = sock.makefile("rb")
        sock.sendall(self.capabilities + b'OK "ready"\r\n')
        while True:
            command = _read_command(reader)
            if command is None:
                return
            self.received.append(command)
            self.encrypted.append(isinstance(sock, ssl.SSLSocket))
            if command == b"STARTTLS" and self.tls is not None:
                sock.sendall(b'OK "go ahead"\r\n' + self.after_starttls)
                sock = self.tls.wrap_socket(sock, server_side=True)
                reader = sock.makefile("rb")
                sock.sendall(self.tls_capabilities + b"OK\r\n")
                continue
            reply = self.respond(command)
            if reply is None:
                time.sleep(2)
                return
            if isinstance(reply, tuple):
                challenge, reply = reply
                sock.sendall(challenge)
                self.received.append(reader.readline().rstrip(b"\r\n"))
            sock.sendall(reply)
            if command == b"LOGOUT" or reply.startswith(b"BYE"):
                return


def _read_command(reader: BinaryIO) -> bytes | None:
    command = b""
    while True:
        line = reader.readline()
        if not line:
            return None
        marker = _LITERAL.search(line)
        if marker is None:
            return command + line.rstrip(b"\r\n")
        command += line + reader.read(int(marker.group(1)))


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeSieve]]:
    servers: list[FakeSieve] = []

    def start(respond: Callable[[bytes], Reply], **kwargs: Any) -> FakeSieve:
        server = FakeSieve(respond, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.listener.close()


def test_commands_and_their_arguments(serve: Callable[..., FakeSieve]) -> None:
    server = serve(answers({
        b"LISTSCRIPTS": b'"mine"\r\n"jmap-vacation" ACTIVE\r\nOK\r\n',
        b'GETSCRIPT "mine"': b'{7}\r\nkeep;\r\n\r\nOK\r\n',
        b'PUTSCRIPT "a\\"b" {7+}\r\nkeep;\r\n': b'OK (WARNINGS) "unused"\r\n',
        b'SETACTIVE ""': b"OK\r\n",
        b'HAVESPACE "x" 2000000': b'NO (QUOTA/MAXSIZE) "too big"\r\n',
        b'DELETESCRIPT "mine"': b'NO (ACTIVE) "active"\r\n',
    }))  # fmt: skip
    with ManageSieve.open(server.config(), "bob", "pw") as sieve:
        assert sieve.extensions == {"fileinto", "vacation"}
        assert sieve.list_scripts() == [Script("mine", False), Script("jmap-vacation", True)]
        assert sieve.get_script("mine") == "keep;\r\n"
        assert sieve.put_script('a"b', "keep;\r\n").code == "WARNINGS"
        sieve.set_active(None)
        with pytest.raises(SieveCommandFailed) as too_big:
            sieve.have_space("x", 2_000_000)
        assert (too_big.value.code, too_big.value.text) == ("QUOTA/MAXSIZE", "too big")
        with pytest.raises(SieveCommandFailed) as active:
            sieve.delete_script("mine")
        assert str(active.value) == "DELETESCRIPT NO (ACTIVE)"  # never the server's text
    assert server.received[0] == b'AUTHENTICATE "PLAIN" "AGJvYgBwdw=="'
    assert server.received[-1] == b"LOGOUT"


def test_a_name_with_crlf_stays_one_argument(serve: Callable[..., FakeSieve]) -> None:
    server = serve(answers({}))
    with (
        ManageSieve.open(server.config(), "bob", "pw") as sieve,
        pytest.raises(SieveCommandFailed),
    ):
        sieve.get_script('x"\r\nDELETESCRIPT "mine"')
    # Three commands reached the server, the name whole inside the second.
    assert len(server.received) == 3
    assert server.received[1] == b'GETSCRIPT {23+}\r\nx"\r\nDELETESCRIPT "mine"'


def test_login_refused(serve: Callable[..., FakeSieve]) -> None:
    server = serve(lambda command: b'NO "Authentication failed."\r\n')
    with pytest.raises(SieveAuthFailed):
        ManageSieve.open(server.config(), "bob", "wrong")


def test_a_sasl_challenge_is_cancelled(serve: Callable[..., FakeSieve]) -> None:
    server = serve(lambda command: (b'"bW9yZT8="\r\n', b'NO "cancelled"\r\n'))
    with pytest.raises(SieveAuthFailed):
        ManageSieve.open(server.config(), "bob", "pw")
    assert server.received[1] == b'"*"'


def test_trylater_is_unavailable(serve: Callable[..., FakeSieve]) -> None:
    server = serve(lambda command: b'NO (TRYLATER) "busy"\r\n')
    with pytest.raises(SieveUnavailable):
        ManageSieve.open(server.config(), "bob", "pw")


def test_no_sasl_plain(serve: Callable[..., FakeSieve]) -> None:
    server = serve(answers({}), capabilities=b'"SASL" "GSSAPI"\r\n')
    with pytest.raises(SieveUnavailable):
        ManageSieve.open(server.config(), "bob", "pw")
    assert server.received == []


def test_credentials_no_server_could_take(serve: Callable[..., FakeSieve]) -> None:
    server = serve(answers({}))
    with pytest.raises(SieveAuthFailed):
        ManageSieve.open(server.config(), "bob", "p\x00w")


def test_timeout(serve: Callable[..., FakeSieve]) -> None:
    server = serve(answers({b"LISTSCRIPTS": None}))  # type: ignore[dict-item]
    with ManageSieve.open(server.config(timeout=0.3), "bob", "pw") as sieve:
        started = time.monotonic()
        with pytest.raises(SieveUnavailable):
            sieve.list_scripts()
        assert time.monotonic() - started < 1.5
        assert sieve.closed
        with pytest.raises(SieveUnavailable):
            sieve.noop()


def test_bye(serve: Callable[..., FakeSieve]) -> None:
    server = serve(answers({b"NOOP": b'BYE "shutting down"\r\n'}))
    with ManageSieve.open(server.config(), "bob", "pw") as sieve:
        with pytest.raises(SieveUnavailable):
            sieve.noop()
        assert sieve.closed


def test_nobody_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SieveUnavailable):
        ManageSieve.open(SieveConfig("127.0.0.1", port, tls="plain", timeout=2), "bob", "pw")


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a throwaway self-signed certificate for 127.0.0.1."""
    return server_context(tmp_path_factory.mktemp("tls"))


def test_starttls(serve: Callable[..., FakeSieve], server_tls: ssl.SSLContext) -> None:
    server = serve(
        answers({b"NOOP": b"OK\r\n"}),
        tls=server_tls,
        capabilities=b'"STARTTLS"\r\n"SIEVE" "fileinto"\r\n',  # no SASL before TLS
        tls_capabilities=b'"SASL" "PLAIN"\r\n"SIEVE" "fileinto vacation"\r\n',
    )
    with ManageSieve.open(server.config(tls="starttls", verify_tls=False), "bob", "pw") as sieve:
        sieve.noop()
        assert sieve.extensions == {"fileinto", "vacation"}  # what the server said after TLS
    assert server.received[:2] == [b"STARTTLS", b'AUTHENTICATE "PLAIN" "AGJvYgBwdw=="']
    assert server.encrypted[0] is False and all(server.encrypted[1:])
    with pytest.raises(SieveUnavailable):  # self-signed: refused when verifying
        ManageSieve.open(server.config(tls="starttls"), "bob", "pw")


def test_starttls_not_offered(serve: Callable[..., FakeSieve]) -> None:
    server = serve(answers({}))
    with pytest.raises(SieveUnavailable):
        ManageSieve.open(server.config(tls="starttls", verify_tls=False), "bob", "pw")
    assert server.received == []  # the password never went out in the clear


def test_data_injected_before_the_handshake(
    serve: Callable[..., FakeSieve], server_tls: ssl.SSLContext
) -> None:
    server = serve(
        answers({}),
        tls=server_tls,
        capabilities=b'"STARTTLS"\r\n"SASL" "PLAIN"\r\n',
        after_starttls=b'"SASL" "PLAIN"\r\nOK\r\n',
    )
    with pytest.raises(SieveUnavailable):
        ManageSieve.open(server.config(tls="starttls", verify_tls=False), "bob", "pw")
    assert server.received == [b"STARTTLS"]


def test_implicit_tls(serve: Callable[..., FakeSieve], server_tls: ssl.SSLContext) -> None:
    server = serve(answers({b"NOOP": b"OK\r\n"}), tls=server_tls, implicit=True)
    with ManageSieve.open(server.config(tls="implicit", verify_tls=False), "bob", "pw") as sieve:
        sieve.noop()
    assert all(server.encrypted)
    with pytest.raises(SieveUnavailable):
        ManageSieve.open(server.config(tls="implicit"), "bob", "pw")
