"""ImapConnection against a scripted server: the capabilities Dovecot lacks (OBJECTID,
CREATE-SPECIAL-USE, ACL, Gmail's ids), synchronizing literals, SASL PLAIN, and failures."""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import pytest

from bridge.imap.connection import ImapConnection, QresyncParams, UpstreamConfig
from bridge.imap.errors import AuthFailed, CommandFailed, UpstreamUnavailable
from bridge.imap.responses import ObjectIds
from tests.certificates import server_context

Handler = Callable[[bytes], tuple[bytes, bytes]]
"""Command (without tag, literals inline) -> (untagged lines, tagged status and text)."""

PRELOGIN = b"IMAP4rev1 AUTH=PLAIN"
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}$")


class FakeServer:
    """One scripted IMAP session at a time on 127.0.0.1; records every command it got.

    With ``tls`` set it speaks TLS from the start (``implicit=True``) or after STARTTLS.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        greeting: bytes = b"* OK Fake ready",
        prelogin: bytes = PRELOGIN,
        tls: ssl.SSLContext | None = None,
        implicit: bool = False,
    ) -> None:
        self.handler = handler
        self.greeting = greeting
        self.prelogin = prelogin
        self.tls = tls
        self.implicit = implicit
        self.received: list[bytes] = []
        self.continuations = 0
        self.encrypted: list[bool] = []  # per command: did it arrive over TLS?
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def config(self, timeout: float = 5.0, **kwargs: Any) -> UpstreamConfig:
        kwargs.setdefault("tls", "plain")
        return UpstreamConfig("127.0.0.1", self.port, timeout=timeout, **kwargs)

    def commands(self) -> list[bytes]:
        """Received commands other than imaplib's CAPABILITY and LOGIN/AUTHENTICATE."""
        return [c for c in self.received if not c.startswith((b"CAPABILITY", b"LOGIN"))]

    def close(self) -> None:
        self.listener.close()

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
        sock.sendall(self.greeting + b"\r\n")
        while True:
            command = self._read_command(sock, reader)
            if command is None:
                return
            tag, _, rest = command.partition(b" ")
            self.received.append(rest)
            self.encrypted.append(isinstance(sock, ssl.SSLSocket))
            if rest == b"STARTTLS" and self.tls is not None:
                sock.sendall(tag + b" OK Begin TLS negotiation now\r\n")
                sock = self.tls.wrap_socket(sock, server_side=True)
                reader = sock.makefile("rb")
                continue
            if rest == b"CAPABILITY":
                untagged, tagged = b"* CAPABILITY " + self.prelogin + b"\r\n", b"OK done"
            elif rest == b"AUTHENTICATE PLAIN":
                sock.sendall(b"+ \r\n")
                answer = reader.readline().rstrip(b"\r\n")
                self.received[-1] = rest + b" " + answer
                untagged, tagged = self.handler(self.received[-1])
            else:
                untagged, tagged = self.handler(rest)
            if not tagged:  # hang up without completing the command
                sock.sendall(untagged)
                return
            sock.sendall(untagged + tag + b" " + tagged + b"\r\n")
            if rest == b"LOGOUT":
                return

    def _read_command(self, sock: socket.socket, reader: BinaryIO) -> bytes | None:
        command = b""
        while True:
            line = reader.readline()
            if not line:
                return None
            line = line.rstrip(b"\r\n")
            marker = _LITERAL.search(line)
            if marker is None:
                return command + line
            if not marker.group(2):
                self.continuations += 1
                sock.sendall(b"+ go ahead\r\n")
            size = int(marker.group(1))
            command += line + b"\r\n" + reader.read(size)


def responder(table: dict[bytes, tuple[bytes, bytes]], caps: bytes) -> Handler:
    """Answer LOGIN with ``caps``; other commands by the longest matching prefix in table."""

    def handle(command: bytes) -> tuple[bytes, bytes]:
        if command.startswith((b"LOGIN", b"AUTHENTICATE")):
            return b"", b"OK [CAPABILITY " + caps + b"] Logged in"
        if command == b"LOGOUT":
            return b"* BYE bye\r\n", b"OK done"
        for prefix in sorted(table, key=len, reverse=True):
            if command.startswith(prefix):
                return table[prefix]
        return b"", b"BAD unknown command"

    return handle


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def start(handler: Handler, **kwargs: Any) -> FakeServer:
        server = FakeServer(handler, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


CYRUS_CAPS = (
    b"IMAP4rev1 ENABLE CONDSTORE QRESYNC OBJECTID ACL CREATE-SPECIAL-USE SPECIAL-USE "
    b"LIST-EXTENDED LIST-STATUS ESEARCH NAMESPACE ID UNSELECT"
)
CYRUS = {
    b"ENABLE QRESYNC": (b"* ENABLED QRESYNC\r\n", b"OK enabled"),
    b'LIST "" "*"': (
        b'* LIST (\\HasNoChildren \\Subscribed \\Drafts) "." "INBOX.Drafts"\r\n'
        b"* STATUS INBOX.Drafts (MESSAGES 2 UNSEEN 1 UIDNEXT 5 UIDVALIDITY 7 "
        b"HIGHESTMODSEQ 30)\r\n",
        b"OK done",
    ),
    b'STATUS "INBOX.Drafts" (MAILBOXID)': (
        b"* STATUS INBOX.Drafts (MAILBOXID (F3e1))\r\n",
        b"OK done",
    ),
    b"EXAMINE": (
        b"* 2 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 5] x\r\n"
        b"* OK [HIGHESTMODSEQ 30] x\r\n* VANISHED (EARLIER) 1:2\r\n"
        b"* 1 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (29))\r\n",
        b"OK [READ-ONLY] done",
    ),
    b"UID FETCH": (
        b"* 1 FETCH (UID 3 FLAGS () MODSEQ (29) EMAILID (M1a) THREADID (T9))\r\n"
        b"* 2 FETCH (UID 4 FLAGS (\\Flagged) MODSEQ (30) EMAILID (M1b) THREADID NIL)\r\n",
        b"OK done",
    ),
    b"UID SEARCH": (b'* ESEARCH (TAG "B6") UID ALL 3:4\r\n', b"OK done"),
    b"MYRIGHTS": (b"* MYRIGHTS INBOX.Drafts lrswipkxtecdan\r\n", b"OK done"),
    b"CREATE": (b"", b"OK done"),
    b"DELETE": (b"", b"NO [NONEXISTENT] no such mailbox"),
    b"UNSELECT": (b"", b"OK done"),
    b"NAMESPACE": (b'* NAMESPACE (("INBOX." ".")) NIL NIL\r\n', b"OK done"),
}


def test_objectid_server(serve: Callable[..., FakeServer]) -> None:
    server = serve(responder(CYRUS, CYRUS_CAPS), greeting=b"* OK Cyrus IMAP ready")
    conn = ImapConnection.open(server.config(), "alice", "pw")
    assert conn.object_ids is ObjectIds.OBJECTID and conn.qresync
    assert conn.has("acl") and conn.enabled == frozenset({"QRESYNC", "CONDSTORE"})
    (listing,) = conn.list_mailboxes()
    assert listing.name == "INBOX.Drafts" and listing.special_use == "\\Drafts"
    assert listing.status is not None and listing.status.guid == "F3e1"
    assert listing.status.highestmodseq == 30
    assert conn.delimiter == "."
    selected = conn.select("INBOX.Drafts", qresync=QresyncParams(7, 20, "1:4"))
    assert selected.vanished == frozenset({1, 2}) and selected.changed[3].flags == ("\\Seen",)
    fetched = conn.fetch_meta("1:*", changedsince=20, vanished=True).messages
    assert (fetched[3].object_id, fetched[3].thread_object_id) == ("M1a", "T9")
    assert (fetched[4].object_id, fetched[4].thread_object_id) == ("M1b", None)
    assert conn.search_all_uids() == [3, 4]
    assert conn.myrights("INBOX.Drafts") == "lrswipkxtecdan"
    conn.create("INBOX.Entwürfe", special_use="\\Drafts")
    with pytest.raises(CommandFailed) as failure:
        conn.delete("nope")  # another folder: INBOX.Drafts stays open
    assert (failure.value.status, failure.value.code) == ("NO", "NONEXISTENT")
    with pytest.raises(CommandFailed):
        conn.delete("inbox")  # the open folder's parent: left first
    assert conn.selected is None
    conn.close()
    assert server.commands() == [
        b"ENABLE QRESYNC",
        b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE '
        b"STATUS (MESSAGES UNSEEN UIDNEXT UIDVALIDITY HIGHESTMODSEQ))",
        # Cyrus 3.6.1 garbles MAILBOXID asked beside other items: it is asked alone.
        b'STATUS "INBOX.Drafts" (MAILBOXID)',
        b"NAMESPACE",
        b'EXAMINE "INBOX.Drafts" (QRESYNC (7 20 1:4))',
        b"UID FETCH 1:* (UID FLAGS MODSEQ EMAILID THREADID) (CHANGEDSINCE 20 VANISHED)",
        b"UID SEARCH RETURN (ALL) ALL",
        b'MYRIGHTS "INBOX.Drafts"',
        b'CREATE "INBOX.Entw&APw-rfe" (USE (\\Drafts))',
        b'DELETE "nope"',
        b"UNSELECT",
        b'DELETE "inbox"',
        b"LOGOUT",
    ]
    assert conn.commands[-5:] == ["CREATE", "DELETE", "UNSELECT", "DELETE", "LOGOUT"]


def test_mailbox_ids_are_asked_alone_once_per_folder(serve: Callable[..., FakeServer]) -> None:
    """MAILBOXID never shares a STATUS with other items (Cyrus 3.6.1 garbles it there); a
    folder's id is asked once, again only under a new name or UIDVALIDITY."""
    folders = {"A": 7, "B": 8}
    ids = {"A": b"(Fa)", "B": b"(\xc9\xaf)"}  # B's is not an id: B gets none

    def handle(command: bytes) -> tuple[bytes, bytes]:
        if command.startswith((b"LOGIN", b"AUTHENTICATE")):
            return b"", b"OK [CAPABILITY " + CYRUS_CAPS + b"] Logged in"
        if command == b'LIST "" "*" RETURN (STATUS (MAILBOXID))':
            lines = [b'* LIST () "/" %s\r\n* STATUS %s (MAILBOXID %s)\r\n'
                     % (n.encode(), n.encode(), ids[n]) for n in folders]  # fmt: skip
            return b"".join(lines), b"OK done"
        if command.startswith(b'LIST "" "*" RETURN (SUBSCRIBED'):
            lines = [b'* LIST () "/" %s\r\n* STATUS %s (MESSAGES 0 UIDVALIDITY %d)\r\n'
                     % (n.encode(), n.encode(), v) for n, v in folders.items()]  # fmt: skip
            return b"".join(lines), b"OK done"
        if command.startswith(b"STATUS "):
            name = command.split(b'"')[1].decode()
            return b"* STATUS %s (MAILBOXID %s)\r\n" % (name.encode(), ids[name]), b"OK done"
        return b"", b"OK done"

    server = serve(handle)
    conn = ImapConnection.open(server.config(), "alice", "pw")

    def guids() -> dict[str, str | None]:
        return {m.name: m.status.guid for m in conn.list_mailboxes() if m.status is not None}

    assert guids() == {"A": "Fa", "B": None}
    assert guids() == {"A": "Fa", "B": None}
    folders = {"C": 7, "B": 8}  # A renamed to C by another client
    ids["C"], ids["B"] = b"(Fa)", b"(Fb)"
    assert guids() == {"C": "Fa", "B": "Fb"}
    folders["B"] = 9  # B deleted and re-created
    ids["B"] = b"(Fz)"
    assert guids() == {"C": "Fa", "B": "Fz"}
    conn.close()
    asked = [c for c in server.commands() if b"MAILBOXID" in c]
    assert asked == [
        b'LIST "" "*" RETURN (STATUS (MAILBOXID))',  # A and B, the first time
        b'STATUS "B" (MAILBOXID)',  # B had no id yet: asked again
        b'LIST "" "*" RETURN (STATUS (MAILBOXID))',  # C and B
        b'STATUS "B" (MAILBOXID)',
    ]
    assert not any(b"MAILBOXID" in c and b"MESSAGES" in c for c in server.commands())


GMAIL_CAPS = b"IMAP4rev1 X-GM-EXT-1 UIDPLUS MOVE ID CHILDREN"
GMAIL = {
    b'LIST "" "*"': (
        b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
        b'* LIST (\\HasChildren \\Noselect) "/" "[Gmail]"\r\n'
        b'* LIST (\\All \\HasNoChildren) "/" "[Gmail]/All Mail"\r\n',
        b"OK done",
    ),
    b'LSUB "" "*"': (b'* LSUB () "/" "INBOX"\r\n', b"OK done"),
    b'STATUS "INBOX"': (
        b'* STATUS "INBOX" (MESSAGES 1 UNSEEN 1 UIDNEXT 2 UIDVALIDITY 3)\r\n',
        b"OK done",
    ),
    b'STATUS "[Gmail]/All Mail"': (b"", b"NO [NONEXISTENT] gone"),
    b"SELECT": (b"* 1 EXISTS\r\n* OK [UIDVALIDITY 3] x\r\n* OK [UIDNEXT 2] x\r\n", b"OK done"),
    b"UID FETCH": (
        b"* 1 FETCH (X-GM-THRID 1266894439832287888 X-GM-MSGID 1278455344230334865 "
        b"UID 1 FLAGS (\\Seen))\r\n",
        b"OK done",
    ),
    b"UID SEARCH ALL": (b"* SEARCH 1\r\n", b"OK done"),
    b"CREATE": (b"", b"OK done"),
}


def test_gmail_like_server_without_list_extended(serve: Callable[..., FakeServer]) -> None:
    server = serve(responder(GMAIL, GMAIL_CAPS), greeting=b"* OK Gimap ready")
    with ImapConnection.open(server.config(), "alice", "pw") as conn:
        assert conn.object_ids is ObjectIds.GMAIL and not conn.modseq
        listings = {listing.name: listing for listing in conn.list_mailboxes()}
        assert listings["INBOX"].subscribed and listings["INBOX"].status is not None
        assert listings["[Gmail]"].selectable is False
        assert listings["[Gmail]/All Mail"].special_use == "\\All"
        assert listings["[Gmail]/All Mail"].status is None  # its STATUS failed
        selected = conn.select("INBOX", readonly=False)
        assert selected.highestmodseq is None and selected.readonly is False
        meta = conn.fetch_meta("1:*").messages[1]
        assert (meta.object_id, meta.thread_object_id) == (
            "1278455344230334865",
            "1266894439832287888",
        )
        assert conn.search_all_uids() == [1]
        assert conn.myrights("INBOX") is None
        with pytest.raises(ValueError):
            conn.fetch_meta("1:*", changedsince=5)
        with pytest.raises(ValueError):
            conn.select("INBOX", qresync=QresyncParams(3, 1))
        conn.create("x", special_use="\\Archive")  # no CREATE-SPECIAL-USE: created plain
    assert server.commands() == [
        b'LIST "" "*"',
        b'LSUB "" "*"',
        b'STATUS "INBOX" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)',
        b'STATUS "[Gmail]/All Mail" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)',
        b'SELECT "INBOX"',
        b"UID FETCH 1:* (UID FLAGS X-GM-MSGID X-GM-THRID)",
        b"UID SEARCH ALL",
        b'CREATE "x"',
        b"LOGOUT",
    ]


def test_dovecot_found_by_id_and_guid_refusal_remembered(
    serve: Callable[..., FakeServer],
) -> None:
    table = {
        b"ID": (b'* ID ("name" "Dovecot")\r\n', b"OK done"),
        b'STATUS "a" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY X-GUID)': (b"", b"BAD no such item"),
        b'STATUS "a"': (b"* STATUS a (MESSAGES 0 UNSEEN 0 UIDNEXT 1 UIDVALIDITY 2)\r\n", b"OK"),
    }
    server = serve(responder(table, b"IMAP4rev1 ID"), greeting=b"* OK ready")
    with ImapConnection.open(server.config(), "alice", "pw") as conn:
        assert conn.object_ids is ObjectIds.DOVECOT
        assert conn.status("a").guid is None
        assert conn.status("a").uidvalidity == 2
    assert server.commands() == [
        b'ID ("name" "bridge")',
        b'STATUS "a" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY X-GUID)',
        b'STATUS "a" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)',
        b'STATUS "a" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)',
        b"LOGOUT",
    ]


# -- logging in ---------------------------------------------------------------------------


def test_login_with_synchronizing_literal(serve: Callable[..., FakeServer]) -> None:
    server = serve(responder({}, b"IMAP4rev1"))
    password = 'pä"ss\\wörd'
    with ImapConnection.open(server.config(), 'user "x"', password) as conn:
        assert conn.command_count == 2  # imaplib's CAPABILITY and LOGIN
        assert conn.commands == ["CAPABILITY", "LOGIN"]
    assert server.continuations == 1
    assert server.received[1] == b'LOGIN "user \\"x\\"" {12}\r\n' + password.encode()


def test_login_with_literal_plus(serve: Callable[..., FakeServer]) -> None:
    server = serve(responder({}, b"IMAP4rev1"), prelogin=b"IMAP4rev1 LITERAL+")
    ImapConnection.open(server.config(), "bob", "pässword").close()
    assert server.continuations == 0
    assert server.received[1] == b'LOGIN "bob" {9+}\r\n' + "pässword".encode()


@pytest.mark.parametrize("sasl_ir", [False, True])
def test_authenticate_plain_when_login_is_disabled(
    serve: Callable[..., FakeServer], sasl_ir: bool
) -> None:
    prelogin = b"IMAP4rev1 LOGINDISABLED AUTH=PLAIN" + (b" SASL-IR" if sasl_ir else b"")
    server = serve(responder({}, b"IMAP4rev1"), prelogin=prelogin)
    ImapConnection.open(server.config(), "bob", "pw").close()
    token = base64.b64encode(b"\0bob\0pw")
    assert server.received[1] == b"AUTHENTICATE PLAIN " + token


def test_login_disabled_without_plain(serve: Callable[..., FakeServer]) -> None:
    server = serve(responder({}, b"IMAP4rev1"), prelogin=b"IMAP4rev1 LOGINDISABLED")
    with pytest.raises(UpstreamUnavailable):
        ImapConnection.open(server.config(), "bob", "pw")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"NO [AUTHENTICATIONFAILED] Authentication failed.", AuthFailed),
        (b"NO Login failed", AuthFailed),
        (b"BAD syntax", AuthFailed),
        (b"NO [UNAVAILABLE] Try later", UpstreamUnavailable),
    ],
)
def test_login_refused(
    serve: Callable[..., FakeServer], answer: bytes, error: type[Exception]
) -> None:
    server = serve(lambda command: (b"", answer))
    with pytest.raises(error):
        ImapConnection.open(server.config(), "bob", "wrong")


def test_nul_in_password_is_an_auth_failure_without_sending(
    serve: Callable[..., FakeServer],
) -> None:
    server = serve(responder({}, b"IMAP4rev1"))
    with pytest.raises(AuthFailed):
        ImapConnection.open(server.config(), "bob", "p\0w")
    assert server.received == [b"CAPABILITY"]


def test_capabilities_in_the_greeting_save_the_capability_command(
    serve: Callable[..., FakeServer],
) -> None:
    server = serve(
        responder({}, b"IMAP4rev1 LIST-STATUS"),
        greeting=b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready",
    )
    with ImapConnection.open(server.config(), "bob", "pw") as conn:
        assert conn.commands == ["LOGIN"]
        assert conn.has("LIST-STATUS")  # LOGIN's answer replaces what the greeting said
    assert server.received[0].startswith(b"LOGIN")


def test_capabilities_in_the_greeting_are_not_trusted_past_starttls(
    serve: Callable[..., FakeServer], server_tls: ssl.SSLContext
) -> None:
    """What came before TLS could have been forged: CAPABILITY is asked again over TLS."""
    server = serve(
        responder({}, b"IMAP4rev1"),
        tls=server_tls,
        greeting=b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready",
        prelogin=b"IMAP4rev1 AUTH=PLAIN",
    )
    with ImapConnection.open(server.config(tls="starttls", verify_tls=False), "bob", "pw") as conn:
        # The greeting's LOGINDISABLED does not count: the answer over TLS allows LOGIN.
        assert conn.commands[:3] == ["STARTTLS", "CAPABILITY", "LOGIN"]
    assert server.received[:2] == [b"STARTTLS", b"CAPABILITY"]
    assert server.encrypted[:2] == [False, True]


def test_preauth_is_refused(serve: Callable[..., FakeServer]) -> None:
    server = serve(responder({}, b"IMAP4rev1"), greeting=b"* PREAUTH welcome")
    with pytest.raises(UpstreamUnavailable):
        ImapConnection.open(server.config(), "bob", "pw")


def test_starttls_required_but_not_offered(serve: Callable[..., FakeServer]) -> None:
    server = serve(responder({}, b"IMAP4rev1"))
    with pytest.raises(UpstreamUnavailable):
        ImapConnection.open(server.config(tls="starttls"), "bob", "pw")


def test_connect_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UpstreamUnavailable):
        ImapConnection.open(UpstreamConfig("127.0.0.1", port, tls="plain"), "bob", "pw")


# -- dying connections ----------------------------------------------------------------------


def test_bye_mid_command_breaks_the_connection(serve: Callable[..., FakeServer]) -> None:
    table = {b"NOOP": (b"* BYE shutting down\r\n", b"")}
    server = serve(responder(table, b"IMAP4rev1"))
    conn = ImapConnection.open(server.config(), "bob", "pw")
    with pytest.raises(UpstreamUnavailable) as gone:
        conn.noop()
    assert conn.broken and not conn.is_alive() and not gone.value.timed_out
    with pytest.raises(UpstreamUnavailable):
        conn.status("INBOX")
    conn.close()


def test_timeout_is_unavailable(serve: Callable[..., FakeServer]) -> None:
    stall = threading.Event()

    def handle(command: bytes) -> tuple[bytes, bytes]:
        if command == b"NOOP":
            stall.wait(5)
        return responder({}, b"IMAP4rev1")(command)

    server = serve(handle)
    conn = ImapConnection.open(server.config(timeout=0.3), "bob", "pw")
    with pytest.raises(UpstreamUnavailable) as silent:
        conn.noop()
    stall.set()
    assert conn.broken
    # Silent, not gone: what was sent may still run there.
    assert silent.value.timed_out


def test_unreadable_response_breaks_the_connection(serve: Callable[..., FakeServer]) -> None:
    table = {b"STATUS": (b"* STATUS INBOX (MESSAGES\r\n", b"OK done")}
    conn = ImapConnection.open(serve(responder(table, b"IMAP4rev1")).config(), "bob", "pw")
    with pytest.raises(UpstreamUnavailable):
        conn.status("INBOX")
    assert conn.broken


def test_arguments_are_validated_before_sending(serve: Callable[..., FakeServer]) -> None:
    server = serve(responder({}, b"IMAP4rev1 CONDSTORE"))
    conn = ImapConnection.open(server.config(), "bob", "pw")
    for call in (
        lambda: conn.fetch_meta("1:* (FLAGS) \r\nA1 DELETE INBOX"),
        lambda: conn.fetch_meta("1:*", extra=["BODY[]\r\nA1 DELETE INBOX"]),
        lambda: conn.fetch_meta("1:*", vanished=True),
        lambda: conn.create("a\r\nA1 DELETE INBOX"),
        lambda: conn.rename("a", "b\nc"),
        lambda: conn.create("x", special_use="\\Drafts))"),
    ):
        with pytest.raises(ValueError):
            call()
    assert not conn.broken
    assert server.commands() == []


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a throwaway self-signed certificate for 127.0.0.1."""
    return server_context(tmp_path_factory.mktemp("tls"))


def test_implicit_tls(serve: Callable[..., FakeServer], server_tls: ssl.SSLContext) -> None:
    server = serve(responder({b"NOOP": (b"", b"OK")}, b"IMAP4rev1"), tls=server_tls, implicit=True)
    config = server.config(tls="implicit", verify_tls=False)
    with ImapConnection.open(config, "bob", "pw") as conn:
        conn.noop()
    assert all(server.encrypted)
    with pytest.raises(UpstreamUnavailable):  # self-signed: refused when verifying
        ImapConnection.open(server.config(tls="implicit"), "bob", "pw")


def test_starttls(serve: Callable[..., FakeServer], server_tls: ssl.SSLContext) -> None:
    server = serve(
        responder({b"NOOP": (b"", b"OK")}, b"IMAP4rev1"),
        tls=server_tls,
        prelogin=b"IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN",
    )
    with ImapConnection.open(server.config(tls="starttls", verify_tls=False), "bob", "pw") as conn:
        conn.noop()
        assert conn.commands[:4] == ["CAPABILITY", "STARTTLS", "CAPABILITY", "AUTHENTICATE"]
    assert server.received[:2] == [b"CAPABILITY", b"STARTTLS"]
    assert server.encrypted[:2] == [False, False] and all(server.encrypted[2:])
    with pytest.raises(UpstreamUnavailable):
        ImapConnection.open(server.config(tls="starttls"), "bob", "pw")


# -- extensions advertised and then refused (no server here does these) ---------------------

LIAR_CAPS = b"IMAP4rev1 LIST-EXTENDED LIST-STATUS ESEARCH ESORT CONTEXT=SORT SORT MOVE UIDPLUS"
LIAR = {
    b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN STATUS': (b"", b"BAD unknown return option"),
    b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN)': (
        b'* LIST (\\Subscribed) "/" "INBOX"\r\n',
        b"OK done",
    ),
    b'LIST "" "*"': (b'* LIST () "/" "INBOX"\r\n', b"OK done"),
    b'LSUB "" "*"': (b'* LSUB () "/" "INBOX"\r\n', b"OK done"),
    b'STATUS "INBOX"': (
        b'* STATUS "INBOX" (MESSAGES 2 UNSEEN 0 UIDNEXT 9 UIDVALIDITY 3)\r\n',
        b"OK done",
    ),
    b"SELECT": (b"* 2 EXISTS\r\n* OK [UIDVALIDITY 3] x\r\n* OK [UIDNEXT 9] x\r\n", b"OK done"),
    b"UID SEARCH RETURN": (b"", b"NO [CANNOT] not here"),
    b"UID SEARCH ALL": (b"* SEARCH 7 8\r\n", b"OK done"),
    b"UID SEARCH NOTHING": (b"", b"BAD bad criteria"),
    b"UID SORT RETURN": (b"", b"BAD unknown"),
    b"UID SORT (ARRIVAL)": (b"* SORT 8 7\r\n", b"OK done"),
    b"UID MOVE": (b"", b"BAD unknown command"),
    b"UID COPY": (b"", b"OK [COPYUID 5 7 1] done"),
    b"UID STORE": (b"* 1 FETCH (UID 7 FLAGS (\\Deleted))\r\n", b"OK done"),
    b"UID EXPUNGE": (b"* 1 EXPUNGE\r\n", b"OK done"),
}


def test_refused_extensions_fall_back_and_stay_dropped(serve: Callable[..., FakeServer]) -> None:
    server = serve(responder(LIAR, LIAR_CAPS), greeting=b"* OK ready")
    with ImapConnection.open(server.config(), "alice", "pw") as conn:
        [inbox] = conn.list_mailboxes()
        assert inbox.subscribed and inbox.status is not None and inbox.status.uidnext == 9
        conn.select("INBOX", readonly=False)
        assert conn.search(b"ALL") == [7, 8]
        with pytest.raises(CommandFailed):  # the plain SEARCH is refused too: not ESEARCH's
            conn.search(b"NOTHING")
        assert conn.sort_partial(b"ARRIVAL", 1, 1) == [8]
        conn.move("7", "Archive")
        assert not {"LIST-STATUS", "ESEARCH", "ESORT", "MOVE"} & conn.capabilities
        assert conn.has("LIST-EXTENDED")
        conn.list_mailboxes()
    # The next connection does not try them again.
    with ImapConnection.open(server.config(), "alice", "pw") as conn:
        assert "ESEARCH" not in conn.capabilities and conn.has("SORT")
        conn.list_mailboxes()
    assert server.commands() == [
        b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN STATUS (MESSAGES UNSEEN UIDNEXT UIDVALIDITY))',
        b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN)',
        b'STATUS "INBOX" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)',
        b'SELECT "INBOX"',
        b"UID SEARCH RETURN (ALL) ALL",
        b"UID SEARCH ALL",
        b"UID SEARCH NOTHING",
        b"UID SORT RETURN (PARTIAL 1:1) (ARRIVAL) US-ASCII ALL",
        b"UID SORT (ARRIVAL) US-ASCII ALL",
        b'UID MOVE 7 "Archive"',
        b'UID COPY 7 "Archive"',
        b"UID STORE 7 +FLAGS (\\Deleted)",
        b"UID EXPUNGE 7",
        b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN)',
        b'STATUS "INBOX" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)',
        b"LOGOUT",
        b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN)',
        b'STATUS "INBOX" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)',
        b"LOGOUT",
    ]


def test_a_store_names_the_messages_it_reached(serve: Callable[..., FakeServer]) -> None:
    """UID 7 answers the STORE; 8 is there with its flags unchanged (no FETCH: Dovecot and
    Cyrus send none then); 9 is gone, moved by another client. 12 is an unsolicited
    FETCH of another message, not asked for."""
    table = {
        b"SELECT": (b"* 3 EXISTS\r\n* OK [UIDVALIDITY 3] x\r\n", b"OK done"),
        b"UID STORE": (
            b"* 1 FETCH (UID 7 FLAGS (\\Seen))\r\n* 3 FETCH (UID 12 FLAGS ())\r\n",
            b"OK done",
        ),
        b"UID FETCH 8:9 (UID)": (b"* 2 FETCH (UID 8)\r\n", b"OK done"),
    }
    server = serve(responder(table, b"IMAP4rev1 UIDPLUS"), greeting=b"* OK ready")
    with ImapConnection.open(server.config(), "alice", "pw") as conn:
        conn.select("INBOX", readonly=False)
        assert conn.change_flags("7:9", ["\\Seen"], []) == {7, 8}
        assert conn.change_flags("7", [], []) == set()
    assert server.commands()[1:3] == [b"UID STORE 7:9 +FLAGS (\\Seen)", b"UID FETCH 8:9 (UID)"]


def test_without_uidplus_a_store_names_only_messages_still_there(
    serve: Callable[..., FakeServer],
) -> None:
    """GNU imap4d (no UIDPLUS) reads UID 9, gone and above the folder's highest, as its
    last message (UID 8): asked first, only 7 and 8 are STOREd. A gone UID below the
    highest is BAD there: nothing is STOREd."""
    table = {
        b"SELECT": (b"* 2 EXISTS\r\n* OK [UIDVALIDITY 3] x\r\n", b"OK done"),
        b"UID FETCH 7:9 (UID)": (b"* 1 FETCH (UID 7)\r\n* 2 FETCH (UID 8)\r\n", b"OK done"),
        b"UID FETCH 5 (UID)": (b"", b"BAD Failed to parse message set"),
        b"UID STORE": (b"* 1 FETCH (UID 7 FLAGS (\\Seen))\r\n", b"OK done"),
        b"UID FETCH 8 (UID)": (b"* 2 FETCH (UID 8)\r\n", b"OK done"),
    }
    server = serve(responder(table, b"IMAP4rev1"), greeting=b"* OK ready")
    with ImapConnection.open(server.config(), "alice", "pw") as conn:
        conn.select("INBOX", readonly=False)
        assert conn.change_flags("7:9", ["\\Seen"], []) == {7, 8}
        assert conn.change_flags("5", ["\\Seen"], []) == set()
    assert server.commands()[1:6] == [
        b"UID FETCH 7:9 (UID)", b"UID STORE 7:8 +FLAGS (\\Seen)", b"UID FETCH 8 (UID)",
        b"UID FETCH 5 (UID)", b"LOGOUT",
    ]  # fmt: skip


STATUS_ITEMS = b"(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)"


def test_folder_ids_refused_in_pipelined_status_are_dropped_once(
    serve: Callable[..., FakeServer],
) -> None:
    """Without LIST-STATUS every folder's STATUS goes out in one burst: a BAD to the id item
    drops X-GUID for the upstream, the burst runs again without it, and the next connection
    never asks for it."""
    with_ids = STATUS_ITEMS[:-1] + b" X-GUID)"
    table = {
        b'LIST "" "*"': (b'* LIST () "/" "a"\r\n* LIST () "/" "b"\r\n', b"OK done"),
        b'LSUB "" "*"': (b'* LSUB () "/" "a"\r\n', b"OK done"),
        b'STATUS "a" ' + with_ids: (b"", b"BAD no such item"),
        b'STATUS "b" ' + with_ids: (b"", b"BAD no such item"),
        b'STATUS "a"': (b"* STATUS a (MESSAGES 1 UNSEEN 0 UIDNEXT 2 UIDVALIDITY 5)\r\n", b"OK"),
        b'STATUS "b"': (b"* STATUS b (MESSAGES 0 UNSEEN 0 UIDNEXT 1 UIDVALIDITY 6)\r\n", b"OK"),
    }
    server = serve(responder(table, b"IMAP4rev1"), greeting=b"* OK Dovecot ready")
    with ImapConnection.open(server.config(), "alice", "pw") as conn:
        assert conn.object_ids is ObjectIds.DOVECOT
        listings = {m.name: m for m in conn.list_mailboxes()}
        assert listings["a"].subscribed and not listings["b"].subscribed
        statuses = [listings[name].status for name in "ab"]
        assert [s.uidvalidity for s in statuses if s] == [5, 6]
        assert conn.object_ids is None
    with ImapConnection.open(server.config(), "alice", "pw") as conn:
        assert conn.object_ids is None
        assert len(conn.list_mailboxes()) == 2
    plain = [b'STATUS "a" ' + STATUS_ITEMS, b'STATUS "b" ' + STATUS_ITEMS, b"LOGOUT"]
    assert server.commands() == [
        b'LIST "" "*"',
        b'LSUB "" "*"',
        b'STATUS "a" ' + with_ids,
        b'STATUS "b" ' + with_ids,
        *plain,
        b'LIST "" "*"',
        b'LSUB "" "*"',
        *plain,
    ]


def test_mailbox_ids_asked_alone_and_refused_are_dropped_once(
    serve: Callable[..., FakeServer],
) -> None:
    """A server that advertises OBJECTID but answers BAD to MAILBOXID asked alone: the
    folders list without ids, and neither this connection nor the next asks again."""
    caps = b"IMAP4rev1 OBJECTID LIST-EXTENDED LIST-STATUS"
    listing = b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN STATUS ' + STATUS_ITEMS + b")"
    table = {
        listing: (
            b'* LIST () "/" "a"\r\n* STATUS a (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 5)\r\n'
            b'* LIST () "/" "b"\r\n* STATUS b (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 6)\r\n',
            b"OK done",
        ),
        b'LIST "" "*" RETURN (STATUS (MAILBOXID))': (b"", b"BAD no such item"),
        b"SELECT": (b"* 1 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n", b"OK done"),
        b"UID FETCH": (b"* 1 FETCH (UID 1 FLAGS ())\r\n", b"OK done"),
    }
    server = serve(responder(table, caps), greeting=b"* OK ready")
    with ImapConnection.open(server.config(), "alice", "pw") as conn:
        assert conn.object_ids is ObjectIds.OBJECTID
        statuses = [m.status for m in conn.list_mailboxes()]
        assert [(s.uidvalidity, s.guid) for s in statuses if s] == [(5, None), (6, None)]
        assert conn.object_ids is None and not conn.has("OBJECTID")
        conn.list_mailboxes()
        conn.select("a", readonly=False)
        assert conn.fetch_meta("1:*").messages[1].object_id is None
    with ImapConnection.open(server.config(), "alice", "pw") as conn:
        assert conn.object_ids is None
        conn.list_mailboxes()
    assert server.commands() == [
        listing,
        b'LIST "" "*" RETURN (STATUS (MAILBOXID))',
        listing,
        b'SELECT "a"',
        b"UID FETCH 1:* (UID FLAGS)",
        b"LOGOUT",
        listing,
        b"LOGOUT",
    ]


def test_a_fetch_answers_only_the_uids_asked(serve: Callable[..., FakeServer]) -> None:
    """Another session's flag change comes as an unsolicited FETCH of whatever message it
    touched, in the middle of this session's answer: it is not one of the messages asked
    for (the background indexer once took one for new mail and gave it a new Email)."""
    table = {
        b"SELECT": (
            b"* 9 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 10] x\r\n",
            b"OK [READ-WRITE] done",
        ),
        b"UID FETCH": (
            b"* 4 FETCH (UID 4 FLAGS () RFC822.SIZE 10)\r\n"
            b"* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n"
            b"* 5 FETCH (UID 5 FLAGS (\\Flagged) RFC822.SIZE 20)\r\n",
            b"OK done",
        ),
    }
    server = serve(responder(table, b"IMAP4rev1"))
    conn = ImapConnection.open(server.config(), "alice", "pw")
    conn.select("INBOX", readonly=False)
    assert sorted(conn.fetch_meta("4:5", extra=("RFC822.SIZE",)).messages) == [4, 5]
    assert sorted(conn.fetch_meta("3:*", extra=("RFC822.SIZE",)).messages) == [4, 5]
    assert sorted(conn.fetch_meta("1:*").messages) == [2, 4, 5]
    conn.close()
