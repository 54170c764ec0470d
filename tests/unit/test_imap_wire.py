"""The command sender and response reader, against canned server transcripts."""

from __future__ import annotations

import io

import pytest

from bridge.imap import quoting
from bridge.imap.errors import CommandFailed, UpstreamTimeout, UpstreamUnavailable
from bridge.imap.wire import (
    COMMAND_LOG_SIZE,
    PIPELINE_BURST,
    BytesTransport,
    Wire,
    command_name,
    parse_response_code,
    read_untagged,
    split_literals,
)


def wire_for(transcript: bytes) -> tuple[Wire, BytesTransport]:
    transport = BytesTransport(transcript)
    return Wire(transport), transport


# -- splitting --------------------------------------------------------------------------


def test_split_literals() -> None:
    line = b"LOGIN " + quoting.astring("bob") + b" " + quoting.astring("pässword")
    assert split_literals(line) == [(b'LOGIN "bob" {9}', "pässword".encode()), (b"", None)]
    two = b"X " + quoting.astring("a\r\nb") + b" " + quoting.astring("é") + b" END"
    assert split_literals(two) == [(b"X {4}", b"a\r\nb"), (b" {2}", "é".encode()), (b" END", None)]


@pytest.mark.parametrize(
    "line",
    [
        b"CREATE x\r\nA1 DELETE INBOX",
        b"CREATE x\nA1 DELETE INBOX",
        b"CREATE x\rA1 DELETE INBOX",
        b"CREATE x\x00",
        b"CREATE {5}\r\nabc",
        b"CREATE {3}\r\na\x00c",
        b"CREATE {3+}\r\nabc",
        b"CREATE {2}\r\nab\r\nA1 DELETE INBOX",
    ],
)
def test_split_literals_refuses_what_could_inject(line: bytes) -> None:
    with pytest.raises(ValueError):
        split_literals(line)


def test_run_refuses_an_unquoted_crlf_before_sending_anything() -> None:
    wire, transport = wire_for(b"")
    with pytest.raises(ValueError):
        wire.run(b'CREATE "INBOX"\r\nA1 DELETE "INBOX"')
    assert transport.sent == [] and not wire.broken and wire.command_count == 0


# -- literals -------------------------------------------------------------------------------


def test_literal_plus_sends_everything_at_once() -> None:
    wire, transport = wire_for(b"B1 OK done\r\n")
    wire.literal_plus = True
    line = b"LOGIN " + quoting.astring("bob") + b" " + quoting.astring("pä")
    assert wire.run(line).status == "OK"
    assert transport.sent == [b'B1 LOGIN "bob" {3+}\r\np\xc3\xa4\r\n']


def test_synchronizing_literal_waits_for_continuation() -> None:
    server = b"+ go ahead\r\n* OK still there\r\n+ again\r\nB1 OK done\r\n"
    wire, transport = wire_for(server)
    line = b"X " + quoting.astring("é") + b" " + quoting.astring("\r\n") + b" END"
    reply = wire.run(line)
    assert reply.status == "OK" and [u.kind for u in reply.untagged] == ["OK"]
    assert transport.sent == [b"B1 X {2}\r\n", b"\xc3\xa9 {2}\r\n", b"\r\n END\r\n"]
    # Each literal went out only after its "+" had been read.
    first_plus = len(b"+ go ahead\r\n")
    second_plus = len(b"+ go ahead\r\n* OK still there\r\n+ again\r\n")
    assert transport.read_before_send == [0, first_plus, second_plus]


def test_literal_minus_only_for_small_literals() -> None:
    big = "x" * 5000 + "é"
    wire, transport = wire_for(b"+ ok\r\nB1 OK done\r\n")
    wire.literal_minus = True
    wire.run(b"X " + quoting.astring("é") + b" " + quoting.astring(big))
    assert transport.sent[0] == b"B1 X {2+}\r\n\xc3\xa9 {5002}\r\n"
    assert transport.sent[1] == big.encode() + b"\r\n"


def test_a_literal_from_a_file_goes_in_pieces_after_the_continuation() -> None:
    wire, transport = wire_for(b"+ go\r\nB1 OK [APPENDUID 7 9] done\r\n")
    body = io.BytesIO(b"Subject: x\r\n\r\nbody")
    reply = wire.run_with_literal(b'APPEND "INBOX" ()', body, 18, chunk_size=8)
    assert reply.status == "OK" and reply.command == "APPEND"
    assert transport.sent == [b'B1 APPEND "INBOX" () {18}\r\n', b"Subject:", b" x\r\n\r\nbo",
                              b"dy", b"\r\n"]  # fmt: skip
    assert transport.read_before_send[1] == len(b"+ go\r\n")


def test_a_literal_from_a_file_with_literal_plus_and_a_refusal() -> None:
    wire, transport = wire_for(b"B1 OK done\r\n")
    wire.literal_plus = True
    wire.run_with_literal(b"APPEND x", io.BytesIO(b"abc"), 3, chunk_size=1 << 20)
    assert transport.sent == [b"B1 APPEND x {3+}\r\n", b"abc", b"\r\n"]
    # Refused before the continuation: nothing of the file is sent, the wire stays usable.
    wire, transport = wire_for(b"B1 NO [TOOBIG] nope\r\n")
    reply = wire.run_with_literal(b"APPEND x", io.BytesIO(b"abc"), 3, chunk_size=2)
    assert reply.code == "TOOBIG" and transport.sent == [b"B1 APPEND x {3}\r\n"]
    assert not wire.broken
    # A NUL halfway is found only once the literal is under way: the wire is broken.
    wire, transport = wire_for(b"+ go\r\n")
    with pytest.raises(UpstreamUnavailable):
        wire.run_with_literal(b"APPEND x", io.BytesIO(b"ab\x00c"), 4, chunk_size=2)
    assert wire.broken
    with pytest.raises(ValueError):
        wire_for(b"")[0].run_with_literal(b"APPEND x\r\nB2 LOGOUT", io.BytesIO(b""), 0, 1)


def test_refusal_instead_of_continuation_ends_the_command() -> None:
    wire, transport = wire_for(b"B1 NO [TOOBIG] nope\r\n")
    reply = wire.run(b"APPEND INBOX " + quoting.literal(b"x" * 10))
    assert (reply.status, reply.code) == ("NO", "TOOBIG")
    assert transport.sent == [b"B1 APPEND INBOX {10}\r\n"]
    assert not wire.broken
    with pytest.raises(CommandFailed) as failure:
        reply.check()
    assert failure.value.code == "TOOBIG" and failure.value.command == "APPEND"


def test_responder_answers_sasl_challenges() -> None:
    wire, transport = wire_for(b"+ \r\nB1 OK [CAPABILITY IMAP4rev1] Logged in\r\n")
    reply = wire.run(b"AUTHENTICATE PLAIN", responder=lambda challenge: b"dG9rZW4=")
    assert reply.code == "CAPABILITY" and reply.code_args == b"IMAP4rev1"
    assert transport.sent == [b"B1 AUTHENTICATE PLAIN\r\n", b"dG9rZW4=\r\n"]


def test_a_bare_lf_ends_a_line() -> None:
    # GNU imap4d ends the completion of AUTHENTICATE with LF alone.
    wire, _ = wire_for(b"+ \r\nB1 OK AUTHENTICATE PLAIN authentication successful\n")
    reply = wire.run(b"AUTHENTICATE PLAIN", responder=lambda challenge: b"dG9rZW4=")
    assert (reply.status, reply.text) == ("OK", "AUTHENTICATE PLAIN authentication successful")
    assert not wire.broken


def test_unexpected_continuation_breaks_the_wire() -> None:
    wire, _ = wire_for(b"+ what?\r\n")
    with pytest.raises(UpstreamUnavailable):
        wire.run(b"NOOP")
    assert wire.broken


# -- responses ------------------------------------------------------------------------------


def test_untagged_responses_with_literals() -> None:
    wire, _ = wire_for(
        b"* 1 FETCH (UID 3 BODY[] {5}\r\nhello FLAGS ())\r\n"
        b'* LIST () "/" {3}\r\na"b\r\n'
        b"* 3 EXISTS\r\n"
        b"B1 OK done\r\n"
    )
    reply = wire.run(b"NOOP")
    fetch, listing, exists = reply.untagged
    assert (fetch.kind, fetch.number) == ("FETCH", 1)
    assert fetch.data == ((b"(UID 3 BODY[] {5}", b"hello"), b" FLAGS ())")
    assert listing.kind == "LIST" and listing.data == ((b'() "/" {3}', b'a"b'), b"")
    assert (exists.kind, exists.number, exists.data) == ("EXISTS", 3, (b"",))


def test_untagged_before_a_tagged_no_are_kept() -> None:
    wire, _ = wire_for(b"* OK [ALERT] careful\r\nB1 NO [NONEXISTENT] no such mailbox\r\n")
    reply = wire.run(b'SELECT "x"')
    assert reply.status == "NO" and reply.code == "NONEXISTENT"
    assert list(reply.codes()) == [("ALERT", None), ("NONEXISTENT", None)]


def test_bye_then_eof_is_unavailable_and_breaks() -> None:
    wire, transport = wire_for(b"* BYE Server shutting down\r\n")
    with pytest.raises(UpstreamUnavailable):
        wire.run(b"NOOP")
    assert wire.broken and wire.bye == "Server shutting down"
    with pytest.raises(UpstreamUnavailable):
        wire.run(b"NOOP")
    assert len(transport.sent) == 1  # nothing sent on a broken wire


def test_logout_bye_then_ok() -> None:
    wire, _ = wire_for(b"* BYE Logging out\r\nB1 OK Logout completed\r\n")
    assert wire.run(b"LOGOUT").status == "OK"
    assert wire.broken  # the server is gone after a BYE, whatever came with it


@pytest.mark.parametrize(
    "transcript",
    [
        b"",
        b"B1 OK no newline",
        b"B7 OK wrong tag\r\n",
        b"B1 MAYBE odd status\r\n",
        b"garbage\r\n",
        b"* 1 FETCH (BODY[] {10}\r\nshort",
        b"* \r\n",
    ],
)
def test_broken_streams(transcript: bytes) -> None:
    wire, _ = wire_for(transcript)
    with pytest.raises(UpstreamUnavailable):
        wire.run(b"NOOP")
    assert wire.broken


class _Closed(BytesTransport):
    def send(self, data: bytes) -> None:
        raise OSError("bad file descriptor")


class _Silent(BytesTransport):
    def readline(self, limit: int) -> bytes:
        raise TimeoutError("timed out")


@pytest.mark.parametrize(
    ("transport", "error"), [(_Closed, UpstreamUnavailable), (_Silent, UpstreamTimeout)]
)
def test_io_errors_become_unavailable(
    transport: type[BytesTransport], error: type[UpstreamUnavailable]
) -> None:
    """A command that got no answer in time is a timeout: whether it took effect is
    unknown; the connection is broken either way."""
    wire = Wire(transport(b""))
    with pytest.raises(error):
        wire.run(b"CREATE x")
    assert wire.broken


def test_interrupt_mid_command_breaks_the_wire() -> None:
    class Interrupted(BytesTransport):
        def readline(self, limit: int) -> bytes:
            raise KeyboardInterrupt

    wire = Wire(Interrupted(b""))
    with pytest.raises(KeyboardInterrupt):
        wire.run(b"NOOP")
    assert wire.broken


# -- bookkeeping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "name"),
    [
        (b'LOGIN "alice" "secret"', "LOGIN"),
        (b"UID FETCH 1:* (FLAGS)", "UID FETCH"),
        (b"uid search ALL", "UID SEARCH"),
        (b'STATUS "private name" (MESSAGES)', "STATUS"),
        (b"NOOP", "NOOP"),
    ],
)
def test_command_name_never_has_arguments(line: bytes, name: str) -> None:
    assert command_name(line) == name


def test_command_log_is_names_only_and_capped() -> None:
    count = COMMAND_LOG_SIZE + 5
    wire, _ = wire_for(b"".join(b"B%d OK\r\n" % n for n in range(1, count + 1)))
    wire.run(b'LOGIN "alice" "secret"')
    for _ in range(count - 1):
        wire.run(b'STATUS "x" (MESSAGES)')
    assert wire.command_count == count
    assert len(wire.commands) == COMMAND_LOG_SIZE
    assert set(wire.commands) == {"STATUS"}
    assert not any("secret" in name for name in wire.commands)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"[OVERQUOTA] Quota exceeded", ("OVERQUOTA", None, "Quota exceeded")),
        (b"[UIDVALIDITY 123] ok", ("UIDVALIDITY", b"123", "ok")),
        (b"[PERMANENTFLAGS (\\Seen \\*)] ok", ("PERMANENTFLAGS", b"(\\Seen \\*)", "ok")),
        (b"[already-exists]", ("ALREADY-EXISTS", None, "")),
        (b"plain text", (None, None, "plain text")),
    ],
)
def test_parse_response_code(text: bytes, expected: tuple[object, ...]) -> None:
    assert parse_response_code(text) == expected


def test_idle_waits_then_says_done_and_keeps_what_arrived() -> None:
    wire, transport = wire_for(b"+ idling\r\n* 4 EXISTS\r\n* 1 RECENT\r\nB1 OK Idle done\r\n")
    waited: list[int] = []
    reply = wire.idle(lambda: waited.append(len(transport.sent)))
    assert transport.sent == [b"B1 IDLE\r\n", b"DONE\r\n"]
    assert waited == [1]  # DONE only after the wait
    assert [(u.kind, u.number) for u in reply.untagged] == [("EXISTS", 4), ("RECENT", 1)]
    assert reply.status == "OK" and wire.command_count == 1


def test_idle_refused_never_waits() -> None:
    wire, transport = wire_for(b"B1 BAD not now\r\n")
    reply = wire.idle(lambda: pytest.fail("waited after a refusal"))
    assert reply.status == "BAD" and transport.sent == [b"B1 IDLE\r\n"]


# -- pipelining -----------------------------------------------------------------------------


def test_pipeline_writes_once_and_gives_each_command_its_reply() -> None:
    wire, transport = wire_for(
        b"* STATUS a (MESSAGES 1)\r\nB1 OK done\r\n"
        b"B2 NO [NONEXISTENT] gone\r\n"
        b"* STATUS c (MESSAGES 3)\r\nB3 OK done\r\n"
    )
    replies = wire.pipeline(
        [b"STATUS a (MESSAGES)", b"STATUS b (MESSAGES)", b"STATUS c (MESSAGES)"]
    )
    assert transport.sent == [
        b"B1 STATUS a (MESSAGES)\r\nB2 STATUS b (MESSAGES)\r\nB3 STATUS c (MESSAGES)\r\n"
    ]
    assert [(r.status, r.code, len(r.of("STATUS"))) for r in replies] == [
        ("OK", None, 1), ("NO", "NONEXISTENT", 0), ("OK", None, 1),
    ]  # fmt: skip
    assert wire.command_count == 3 and list(wire.commands) == ["STATUS"] * 3


def test_pipeline_takes_completions_in_any_order() -> None:
    wire, _ = wire_for(b"B2 OK second\r\n* STATUS a (MESSAGES 1)\r\nB1 OK first\r\n")
    first, second = wire.pipeline([b"STATUS a (MESSAGES)", b"STATUS b (MESSAGES)"])
    assert (first.text, second.text) == ("first", "second")
    assert len(first.of("STATUS")) == 1 and second.untagged == ()


def test_pipeline_inlines_literals_with_literal_plus_only() -> None:
    line = b"STATUS " + quoting.mailbox_name("x" * 2000) + b" (MESSAGES)"
    wire, transport = wire_for(b"B1 OK a\r\nB2 OK b\r\n")
    wire.literal_plus = True
    wire.pipeline([line, b"NOOP"])
    assert len(transport.sent) == 1 and b"{2000+}\r\n" in transport.sent[0]
    # Without LITERAL+ a synchronizing literal needs the go-ahead: one command at a time.
    wire, transport = wire_for(b"+ go\r\nB1 OK a\r\nB2 OK b\r\n")
    replies = wire.pipeline([line, b"NOOP"])
    assert [r.status for r in replies] == ["OK", "OK"] and len(transport.sent) == 3


def test_pipeline_goes_in_bursts() -> None:
    count = PIPELINE_BURST + 1
    wire, transport = wire_for(b"".join(b"B%d OK\r\n" % n for n in range(1, count + 1)))
    assert len(wire.pipeline([b"NOOP"] * count)) == count
    assert [len(sent.splitlines()) for sent in transport.sent] == [PIPELINE_BURST, 1]


def test_pipeline_broken_stream_breaks_the_wire() -> None:
    wire, _ = wire_for(b"B1 OK\r\n")
    with pytest.raises(UpstreamUnavailable):
        wire.pipeline([b"NOOP", b"NOOP"])
    assert wire.broken


def test_gnu_imap4d_expunged_reads_as_expunge() -> None:
    # imap4d 3.15 answers EXPUNGE with "* n EXPUNGED": the same response under a typo.
    (response,) = read_untagged(b"* 2 EXPUNGED\r\n")
    assert (response.kind, response.number) == ("EXPUNGE", 2)
