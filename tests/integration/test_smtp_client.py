"""bridge.smtp.submit against a real SMTP server (aiosmtpd) that asks for a login."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.demo.dovecot import free_port
from bridge.smtp import SmtpEndpoint, SmtpRefused, SmtpUnavailable, submit
from tests.integration.smtp_sink import SmtpSink

# Loopback tests: a login without TLS, which aiosmtpd warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
LOGINS = {"user@example.test": "pässwörd ünicode"}
MESSAGE = (
    b"From: user@example.test\r\nTo: a@example.net\r\nSubject: caf\xc3\xa9\r\n\r\n"
    b".starts with a dot\r\n..two dots\r\n.\r\nend\r\n"
)


@pytest.fixture(scope="module")
def server() -> Iterator[SmtpSink]:
    with SmtpSink(logins=LOGINS, smtputf8=False) as sink:
        sink.refuse(senders={"blocked@example.test"}, recipients={"nobody@example.net"})
        yield sink


def endpoint(port: int) -> SmtpEndpoint:
    return SmtpEndpoint("127.0.0.1", port, "plain", timeout=3.0)


LOGIN = ("user@example.test", LOGINS["user@example.test"])


def test_sends_byte_for_byte_with_a_utf8_password(server: SmtpSink) -> None:
    before = len(server.arrivals)
    sent = submit(endpoint(server.port), LOGIN, "user@example.test",
                  ["a@example.net", "b@example.net"], MESSAGE)  # fmt: skip
    assert set(sent.recipients) == {"a@example.net", "b@example.net"}
    assert all(str(reply).startswith("250 2.1.5") for reply in sent.recipients.values())
    assert str(sent.reply) == "250 2.0.0 queued as test"
    [arrival] = server.arrivals[before:]
    assert arrival.content == MESSAGE  # dot-stuffed on the wire, unstuffed by the server
    assert arrival.rcpt_to == ["a@example.net", "b@example.net"]
    assert "BODY=8BITMIME" in arrival.mail_options
    assert f"SIZE={len(MESSAGE)}" in arrival.mail_options
    assert server.handler.logins[-1] == LOGIN


def test_wrong_password_is_refused_at_auth_once(server: SmtpSink) -> None:
    tries = len(server.handler.logins)
    with pytest.raises(SmtpRefused) as caught:
        submit(endpoint(server.port), (LOGIN[0], "wrong"), LOGIN[0], ["a@example.net"], MESSAGE)
    assert caught.value.stage == "auth" and caught.value.reply is not None
    assert caught.value.reply.code == 535
    assert len(server.handler.logins) == tries + 1  # no second mechanism tried


def test_a_refused_recipient_sends_to_nobody(server: SmtpSink) -> None:
    before = len(server.arrivals)
    with pytest.raises(SmtpRefused) as caught:
        submit(endpoint(server.port), LOGIN, LOGIN[0],
               ["a@example.net", "nobody@example.net"], MESSAGE)  # fmt: skip
    assert caught.value.stage == "rcpt"
    assert {a: str(r) for a, r in caught.value.refused.items()} == {
        "nobody@example.net": "550 5.1.1 no such mailbox here"
    }
    assert server.arrivals[before:] == []


def test_a_refused_sender(server: SmtpSink) -> None:
    with pytest.raises(SmtpRefused) as caught:
        submit(endpoint(server.port), LOGIN, "blocked@example.test", ["a@example.net"], MESSAGE)
    assert caught.value.stage == "mail" and caught.value.reply is not None
    assert caught.value.reply.code == 553


def test_non_ascii_address_without_smtputf8(server: SmtpSink) -> None:
    with pytest.raises(SmtpRefused) as caught:
        submit(endpoint(server.port), LOGIN, LOGIN[0], ["jörg@example.net"], MESSAGE)
    assert caught.value.stage == "rcpt" and list(caught.value.refused) == ["jörg@example.net"]


def test_nobody_listening() -> None:
    with pytest.raises(SmtpUnavailable) as caught:
        submit(endpoint(free_port()), LOGIN, LOGIN[0], ["a@example.net"], MESSAGE)
    assert not caught.value.maybe_sent


def test_connection_lost_after_the_message_is_handed_over() -> None:
    """A server that takes DATA and hangs up before its reply: maybe sent, not sent."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 hello\r\n")
            for line in lines:
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-hi\r\n250 AUTH PLAIN\r\n")
                elif verb == b"AUTH":
                    conn.sendall(b"235 ok\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go\r\n")
                elif line == b".\r\n":
                    return  # gone without a word
                elif verb in (b"MAIL", b"RCPT"):
                    conn.sendall(b"250 ok\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(SmtpUnavailable) as caught:
            submit(endpoint(port), LOGIN, LOGIN[0], ["a@example.net"], MESSAGE)
        assert caught.value.maybe_sent
    finally:
        thread.join(timeout=5)
        listener.close()


def test_sends_from_a_file_in_pieces(server: SmtpSink, tmp_path: Path) -> None:
    """Every cut of the message between pieces: a dot that starts a line is doubled
    whichever piece the line starts in, and the message arrives byte for byte."""
    path = tmp_path / "message.eml"
    path.write_bytes(MESSAGE + b"no line end at the end")
    for chunk_size in (1, 2, 3, 5, 7, 64):
        before = len(server.arrivals)
        with path.open("rb") as handle:
            submit(endpoint(server.port), LOGIN, LOGIN[0], ["a@example.net"], handle,
                   chunk_size=chunk_size)  # fmt: skip
        [arrival] = server.arrivals[before:]
        assert arrival.content == MESSAGE + b"no line end at the end\r\n", chunk_size
        assert f"SIZE={path.stat().st_size}" in arrival.mail_options


def test_non_ascii_address_with_smtputf8() -> None:
    with SmtpSink(logins=LOGINS) as sink:
        sent = submit(endpoint(sink.port), LOGIN, LOGIN[0], ["jörg@example.net"], MESSAGE)
        assert list(sent.recipients) == ["jörg@example.net"]
        [arrival] = sink.arrivals
        assert arrival.rcpt_to == ["jörg@example.net"] and "SMTPUTF8" in arrival.mail_options
