"""Sending one IMAP command and reading everything up to its tagged completion.

imaplib can put only one literal in a command and imapclient's helpers filter FETCH results
by message number, so bridge speaks the protocol itself here, over the socket imaplib opened
(TLS and STARTTLS stay imaplib's business). Responses come back as ``Untagged`` records in
the shape imapclient's response parser eats, so its lexer does the tokenising.

Every I/O failure turns into ``UpstreamUnavailable`` and leaves the wire ``broken``: once a
command was half sent or half read, nobody can know where the stream stands.
"""

from __future__ import annotations

import io
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from bridge import deadline, metrics
from bridge.imap.errors import (
    CommandFailed,
    DeadlinePassed,
    UpstreamTimeout,
    UpstreamUnavailable,
)

Record = bytes | tuple[bytes, bytes]
"""One line of a response, or a line ending in a literal marker with the literal's bytes."""

MAX_LINE = 64 * 1024 * 1024
MAX_LITERAL_MINUS = 4096  # RFC 7888: LITERAL- allows non-synchronizing literals up to 4096
COMMAND_LOG_SIZE = 1000
# Commands written at once by ``Wire.pipeline``: their replies (~100 bytes for a STATUS)
# must fit the socket buffers while bridge is still writing, or both sides would wait.
PIPELINE_BURST = 100

# A tagged completion: status, response code, its arguments, and the text.
Done = tuple[str, str | None, bytes | None, str]

_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}$")
_SYNC_MARKER = re.compile(rb"\{(\d+)\}$")
_UNTAGGED = re.compile(rb"(?:(\d+) )?([A-Za-z][A-Za-z0-9.=-]*) ?", re.ASCII)
_RESPONSE_CODE = re.compile(rb"\[([A-Za-z0-9.-]+)(?: ([^\]]*))?\] ?", re.ASCII)
_COMMAND_NAME = re.compile(rb"((?i:UID) [A-Za-z]+|[A-Za-z]+)")


class Transport(Protocol):
    def send(self, data: bytes) -> None: ...
    def readline(self, limit: int) -> bytes: ...
    def read(self, size: int) -> bytes: ...
    def pending(self) -> bool:
        """Whether bytes are already received but not yet read (buffered)."""
        ...

    def set_timeout(self, seconds: float) -> None:
        """How long a read may wait for the server."""
        ...


class BytesTransport:
    """A canned server transcript; what was sent is kept in ``sent``. For parsers and tests."""

    def __init__(self, incoming: bytes) -> None:
        self._incoming = io.BytesIO(incoming)
        self.sent: list[bytes] = []
        # What had been read when each send happened: proves waits for continuations.
        self.read_before_send: list[int] = []
        self.timeouts: list[float] = []

    def send(self, data: bytes) -> None:
        self.read_before_send.append(self._incoming.tell())
        self.sent.append(data)

    def readline(self, limit: int) -> bytes:
        return self._incoming.readline(limit)

    def read(self, size: int) -> bytes:
        return self._incoming.read(size)

    def pending(self) -> bool:
        return not self.at_end()

    def set_timeout(self, seconds: float) -> None:
        self.timeouts.append(seconds)

    def at_end(self) -> bool:
        return self._incoming.tell() == len(self._incoming.getbuffer())


@dataclass(frozen=True)
class Untagged:
    """``* [number] KIND data``: ``data`` holds the rest, in imapclient's record format."""

    kind: str
    number: int | None
    data: tuple[Record, ...]

    @property
    def text(self) -> bytes:
        """The response without its literals: enough for status responses and codes."""
        first = self.data[0] if self.data else b""
        return first[0] if isinstance(first, tuple) else first


@dataclass(frozen=True)
class Reply:
    command: str
    status: str
    code: str | None
    code_args: bytes | None
    text: str
    untagged: tuple[Untagged, ...]

    def of(self, kind: str) -> list[Untagged]:
        return [u for u in self.untagged if u.kind == kind]

    def codes(self) -> Iterator[tuple[str, bytes | None]]:
        """Response codes of untagged OK/NO/BAD responses, then of the tagged one."""
        for response in self.untagged:
            if response.kind in ("OK", "NO", "BAD", "PREAUTH", "BYE"):
                code, args, _ = parse_response_code(response.text)
                if code is not None:
                    yield code, args
        if self.code is not None:
            yield self.code, self.code_args

    def check(self) -> Reply:
        if self.status != "OK":
            raise CommandFailed(self.command, self.status, self.code, self.text)
        return self


def parse_response_code(text: bytes) -> tuple[str | None, bytes | None, str]:
    """``[CODE args] human text`` -> (CODE upper-cased, args, text)."""
    match = _RESPONSE_CODE.match(text)
    if match is None:
        return None, None, text.decode("utf-8", "replace")
    code = match.group(1).decode("ascii").upper()
    rest = text[match.end() :].decode("utf-8", "replace")
    return code, match.group(2), rest


def command_name(line: bytes) -> str:
    """The command's name for logs and errors: never any of its arguments."""
    match = _COMMAND_NAME.match(line)
    return match.group(1).decode("ascii").upper() if match else "?"


def split_literals(line: bytes) -> list[tuple[bytes, bytes | None]]:
    """Cut a command at its literals: [(text ending in "{n}", literal), ..., (tail, None)].

    Refuses any CR, LF or NUL that is not inside a literal: that is what makes injection
    through an unquoted argument impossible rather than merely unlikely.
    """
    parts: list[tuple[bytes, bytes | None]] = []
    pos = 0
    while True:
        end = line.find(b"\r\n", pos)
        head = line[pos:] if end < 0 else line[pos:end]
        if b"\r" in head or b"\n" in head or b"\x00" in head:
            raise ValueError("CR, LF or NUL outside a literal in an IMAP command")
        if end < 0:
            parts.append((head, None))
            return parts
        marker = _SYNC_MARKER.search(head)
        if marker is None:
            raise ValueError("CRLF inside an IMAP command that is not a literal")
        size = int(marker.group(1))
        data = line[end + 2 : end + 2 + size]
        if len(data) != size:
            raise ValueError("literal shorter than its announced size")
        if b"\x00" in data:
            raise ValueError("NUL in an IMAP literal")
        parts.append((head, data))
        pos = end + 2 + size


class Wire:
    """One IMAP session's command/response loop. Not thread-safe: one borrower at a time."""

    def __init__(self, transport: Transport, *, tag_prefix: bytes = b"B") -> None:
        self.transport = transport
        self._tag_prefix = tag_prefix
        self._tag_number = 0
        self.literal_plus = False
        self.literal_minus = False
        self.broken = False
        self.bye: str | None = None
        self.command_count = 0
        self.commands: deque[str] = deque(maxlen=COMMAND_LOG_SIZE)
        # Sees every completed command's untagged responses, in order: what the server says
        # unasked (another session's flag change, say) comes with whatever command ran.
        self.observer: Callable[[Sequence[Untagged]], None] | None = None
        # How long one command may wait for the server (None: the transport's own); inside
        # a request, never past its deadline (bridge.deadline).
        self.command_timeout: float | None = None
        self._armed: float | None = None
        # What the command being run may wait for each read, for the timeout's message.
        self._waits: float = float("inf")

    # -- commands -------------------------------------------------------------------------

    def run(self, line: bytes, *, responder: Callable[[bytes], bytes] | None = None) -> Reply:
        """Send ``line`` (quoted by quoting.py) and collect its responses.

        ``responder`` answers continuation requests that are not for a literal (SASL):
        it gets the server's challenge and returns the line to send back.
        """
        parts = split_literals(line)

        def exchange(tag: bytes, untagged: list[Untagged]) -> Done:
            done = self._send(tag, parts, untagged)
            while done is None:
                done = self._read_until_tagged(tag, untagged, responder)
            return done

        return self._command(command_name(line), exchange)

    def run_with_literal(self, line: bytes, body: BinaryIO, size: int, chunk_size: int) -> Reply:
        """Send ``line`` followed by one literal of ``size`` octets read from ``body`` in
        pieces of ``chunk_size``: a message APPENDed from a file is never whole in memory."""
        split_literals(line)  # the same refusal of CR, LF and NUL outside the literal
        non_sync = self.literal_plus or (self.literal_minus and size <= MAX_LITERAL_MINUS)

        def exchange(tag: bytes, untagged: list[Untagged]) -> Done:
            marker = b" {%d+}\r\n" % size if non_sync else b" {%d}\r\n" % size
            self.transport.send(tag + b" " + line + marker)
            if not non_sync:
                refused = self._read_until_continuation(tag, untagged)
                if refused is not None:
                    return refused
            remaining = size
            while remaining:
                chunk = body.read(min(chunk_size, remaining))
                if not chunk:
                    raise ValueError("literal shorter than its announced size")
                if b"\x00" in chunk:
                    raise ValueError("NUL in an IMAP literal")
                self.transport.send(chunk)
                remaining -= len(chunk)
            self.transport.send(b"\r\n")
            return self._read_until_tagged(tag, untagged, None)

        return self._command(command_name(line), exchange)

    def idle(self, wait: Callable[[], object]) -> Reply:
        """IDLE (RFC 2177) until ``wait`` returns, then DONE. The reply holds whatever the
        server said meanwhile; ``wait`` should return as soon as the server says something."""

        def exchange(tag: bytes, untagged: list[Untagged]) -> Done:
            self.transport.send(tag + b" IDLE\r\n")
            done = self._read_until_continuation(tag, untagged)
            if done is not None:
                return done  # refused
            wait()
            self.transport.send(b"DONE\r\n")
            return self._read_until_tagged(tag, untagged, None)

        return self._command("IDLE", exchange)

    def pipeline(self, lines: Sequence[bytes]) -> list[Reply]:
        """Run commands that do not depend on each other (RFC 3501 §5.5) in bursts: each
        burst is written at once and its replies read after, so a burst costs one round
        trip where one command after another costs one each. Untagged responses go to the
        earliest command still waiting: right for responses that name their object
        (STATUS); use ``run`` where that would be ambiguous. Replies in ``lines`` order."""
        replies: list[Reply] = []
        for start in range(0, len(lines), PIPELINE_BURST):
            lines_now = lines[start : start + PIPELINE_BURST]
            inlined = [self._inline(split_literals(line)) for line in lines_now]
            if all(payload is not None for payload in inlined):
                replies += self._burst([payload for payload in inlined if payload is not None])
            else:  # a literal that must wait for the server's go-ahead: one at a time
                replies += [self.run(line) for line in lines_now]
        return replies

    def _inline(self, parts: Sequence[tuple[bytes, bytes | None]]) -> bytes | None:
        """The command as one write (literals as LITERAL+ allows), or None if it cannot be."""
        buffer = b""
        for head, data in parts:
            if data is None:
                return buffer + head + b"\r\n"
            if not (self.literal_plus or (self.literal_minus and len(data) <= MAX_LITERAL_MINUS)):
                return None
            buffer += head[:-1] + b"+}\r\n" + data
        raise AssertionError("split_literals always ends with a tail")

    def _burst(self, payloads: Sequence[bytes]) -> list[Reply]:
        names = [command_name(payload) for payload in payloads]
        tags = [self._next_tag(name) for name in names]
        untagged: dict[bytes, list[Untagged]] = {tag: [] for tag in tags}
        done: dict[bytes, Done] = {}

        def exchange() -> None:
            self.transport.send(b"".join(t + b" " + p for t, p in zip(tags, payloads, strict=True)))
            while len(done) < len(tags):
                waiting = [tag for tag in tags if tag not in done]
                kind, payload, tag = self._read_any(waiting)
                if kind == "tagged":
                    assert isinstance(payload, tuple) and tag is not None
                    done[tag] = payload
                elif kind == "+":
                    raise UpstreamUnavailable("unexpected continuation request")
                else:
                    assert isinstance(payload, Untagged)
                    untagged[waiting[0]].append(payload)

        started = time.monotonic()
        try:
            self._guard(" ".join(dict.fromkeys(names)), exchange)
        except UpstreamUnavailable as exc:
            for name in names:
                _count(name, _failure(exc), started)
            raise
        for tag in tags:
            self._observe(untagged[tag])
        replies = [
            Reply(name, *done[tag], tuple(untagged[tag]))
            for name, tag in zip(names, tags, strict=True)
        ]
        for reply in replies:
            _count(reply.command, reply.status.lower(), started)
        return replies

    def _observe(self, untagged: Sequence[Untagged]) -> None:
        if self.observer is not None:
            self.observer(untagged)

    def _next_tag(self, name: str) -> bytes:
        if self.broken:
            raise UpstreamUnavailable(f"connection is broken; {name} not sent")
        self._waits = self._arm(name)
        self._tag_number += 1
        self.command_count += 1
        self.commands.append(name)
        return self._tag_prefix + str(self._tag_number).encode("ascii")

    def _guard(self, name: str, exchange: Callable[[], None]) -> None:
        try:
            exchange()
        except TimeoutError as exc:
            # The server went silent, not away: what was sent may still run there.
            self.broken = True
            raise UpstreamTimeout(f"{name}: no answer within {self._waits:.1f} s") from exc
        except (OSError, ValueError, EOFError) as exc:
            # ValueError here is I/O on a closed file (a connection shut down under us).
            self.broken = True
            raise UpstreamUnavailable(f"{name}: {type(exc).__name__}") from exc
        except BaseException:
            # Whatever stopped us mid-command (including an interrupt) left the stream at
            # an unknown point.
            self.broken = True
            raise

    def _command(self, name: str, exchange: Callable[[bytes, list[Untagged]], Done]) -> Reply:
        tag = self._next_tag(name)
        untagged: list[Untagged] = []
        result: list[Done] = []
        started = time.monotonic()
        try:
            self._guard(name, lambda: result.append(exchange(tag, untagged)))
        except UpstreamUnavailable as exc:
            _count(name, _failure(exc), started)
            raise
        self._observe(untagged)
        status, code, code_args, text = result[0]
        _count(name, status.lower(), started)
        return Reply(name, status, code, code_args, text, tuple(untagged))

    def _arm(self, name: str) -> float:
        """Bound the reads of the next command by the command timeout and the time left to
        the request (a socket timeout holds for each read: a server that stops mid-answer
        is noticed within it)."""
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise DeadlinePassed(f"{name} not sent: the request's time is up")
        timeout = self.command_timeout if self.command_timeout is not None else float("inf")
        if left is not None:
            timeout = min(timeout, left)
        if timeout != self._armed and timeout != float("inf"):
            self.transport.set_timeout(timeout)
            self._armed = timeout
        return timeout

    def _send(
        self, tag: bytes, parts: Sequence[tuple[bytes, bytes | None]], untagged: list[Untagged]
    ) -> Done | None:
        buffer = tag + b" "
        for head, data in parts:
            if data is None:
                self.transport.send(buffer + head + b"\r\n")
                return None
            if self.literal_plus or (self.literal_minus and len(data) <= MAX_LITERAL_MINUS):
                buffer += head[:-1] + b"+}\r\n" + data
                continue
            self.transport.send(buffer + head + b"\r\n")
            buffer = data
            done = self._read_until_continuation(tag, untagged)
            if done is not None:
                return done  # the server refused the command before taking the literal
        raise AssertionError("split_literals always ends with a tail")

    # -- responses ------------------------------------------------------------------------

    def _read_until_continuation(self, tag: bytes, untagged: list[Untagged]) -> Done | None:
        while True:
            kind, payload = self._read_response(tag)
            if kind == "+":
                return None
            if kind == "tagged":
                assert isinstance(payload, tuple)
                return payload
            assert isinstance(payload, Untagged)
            untagged.append(payload)

    def _read_until_tagged(
        self, tag: bytes, untagged: list[Untagged], responder: Callable[[bytes], bytes] | None
    ) -> Done:
        while True:
            kind, payload = self._read_response(tag)
            if kind == "tagged":
                assert isinstance(payload, tuple)
                return payload
            if kind == "+":
                if responder is None:
                    raise UpstreamUnavailable("unexpected continuation request")
                assert isinstance(payload, bytes)
                self.transport.send(responder(payload) + b"\r\n")
                continue
            assert isinstance(payload, Untagged)
            untagged.append(payload)

    def _read_response(self, tag: bytes) -> tuple[str, Untagged | bytes | Done]:
        kind, payload, _ = self._read_any((tag,))
        return kind, payload

    def _read_any(self, tags: Sequence[bytes]) -> tuple[str, Untagged | bytes | Done, bytes | None]:
        """One response: untagged, a continuation, or the completion of one of ``tags``
        (returned third)."""
        records = self.read_records()
        first = records[0]
        line = first[0] if isinstance(first, tuple) else first
        if line.startswith(b"* "):
            response = make_untagged(records)
            if response.kind == "BYE":
                self.bye = response.text.decode("utf-8", "replace")
                self.broken = True
            return "untagged", response, None
        if line == b"+" or line.startswith(b"+ "):
            return "+", line[2:], None
        tag, _, after = line.partition(b" ")
        if tag in tags and len(records) == 1:
            status, _, rest = after.partition(b" ")
            status = status.upper()
            if status in (b"OK", b"NO", b"BAD"):
                code, args, text = parse_response_code(rest)
                return "tagged", (status.decode("ascii"), code, args, text), tag
        raise UpstreamUnavailable("unexpected response from server")

    def read_records(self) -> list[Record]:
        """One response: its lines, each literal attached to the line announcing it."""
        records: list[Record] = []
        line = self._readline()
        while (marker := _LITERAL_AT_END.search(line)) is not None:
            size = int(marker.group(1))
            if size > MAX_LINE:
                raise UpstreamUnavailable("literal too large")
            data = self._read_exact(size)
            records.append((line, data))
            line = self._readline()
        records.append(line)
        return records

    def _readline(self) -> bytes:
        line = self.transport.readline(MAX_LINE + 1)
        if not line:
            self.broken = True
            raise UpstreamUnavailable("connection closed by server")
        if not line.endswith(b"\n"):
            if len(line) > MAX_LINE:
                raise UpstreamUnavailable("response line too long")
            raise UpstreamUnavailable("connection closed mid-line")
        # A bare LF ends a line too: GNU imap4d ends its AUTHENTICATE completion so.
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

    def _read_exact(self, size: int) -> bytes:
        chunks: list[bytes] = []
        remaining = size
        while remaining:
            chunk = self.transport.read(remaining)
            if not chunk:
                raise UpstreamUnavailable("connection closed inside a literal")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)


def _count(name: str, result: str, started: float) -> None:
    """One command in bridge.metrics: its result, and how long it took unless it was an
    IDLE (which lasts until something happens)."""
    label = metrics.imap_command_label(name)
    metrics.IMAP_COMMANDS_RUN.labels(label, result).inc()
    if label != "IDLE":
        metrics.IMAP_LATENCY.labels(label).observe(time.monotonic() - started)


def _failure(exc: UpstreamUnavailable) -> str:
    return "timeout" if exc.timed_out else "unavailable"


def make_untagged(records: list[Record]) -> Untagged:
    """Split ``* [n] KIND rest`` into an Untagged; the rest keeps its literals."""
    first = records[0]
    line = first[0] if isinstance(first, tuple) else first
    match = _UNTAGGED.match(line, 2)
    if match is None:
        raise UpstreamUnavailable("malformed untagged response")
    number = int(match.group(1)) if match.group(1) else None
    kind = match.group(2).decode("ascii").upper()
    if kind == "EXPUNGED" and number is not None:
        kind = "EXPUNGE"  # GNU imap4d 3.15 says "* n EXPUNGED" for RFC 3501's "* n EXPUNGE"
    rest = line[match.end() :]
    head: Record = (rest, first[1]) if isinstance(first, tuple) else rest
    return Untagged(kind, number, (head, *records[1:]))


def read_untagged(transcript: bytes) -> list[Untagged]:
    """Parse a run of untagged responses from raw bytes (for tests and table-driven checks)."""
    transport = BytesTransport(transcript)
    wire = Wire(transport)
    responses: list[Untagged] = []
    while not transport.at_end():
        responses.append(make_untagged(wire.read_records()))
    return responses
