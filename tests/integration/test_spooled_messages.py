"""A message larger than ``blob_chunk_size`` is read for Email/get by partial FETCH into a
spool file and parsed from there: every message of the MIME corpus, made large enough,
renders through bridge exactly as the in-memory parse of the same octets does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bridge.demo.dovecot import Dovecot
from bridge.mail.blobs import blob_id
from bridge.mime import email_properties, parse_message
from tests.integration.conftest import logged_in
from tests.integration.server import BridgeServer
from tests.unit.test_mime_golden import MESSAGES, PROPERTIES

USER = ("spool", "spool-pw")
# Email/get takes these from the list-view summary (Dovecot's PREVIEW and BODYSTRUCTURE),
# not from the message's bytes.
FROM_SUMMARY = ("preview", "hasAttachment")
FROM_BYTES = [name for name in PROPERTIES if name not in FROM_SUMMARY]
CHUNK = 4096  # the smallest blob_chunk_size: each message below takes several FETCHes


def padded(raw: bytes) -> bytes:
    """``raw`` behind a folded header field of about 3 chunks."""
    lines = b"".join(b" " + b"p" * 70 + b"\r\n" for _ in range(3 * CHUNK // 72))
    return b"X-Padding:\r\n" + lines + raw


def test_spooled_messages_render_as_parsed_in_memory(
    dovecot_factory: Callable[..., Dovecot], tmp_path: Path
) -> None:
    upstream = dovecot_factory(users=dict([USER]))
    messages = [padded(path.read_bytes()) for path in MESSAGES]
    with logged_in(upstream, *USER) as imap:
        for raw in messages:
            imap.append("INBOX", raw)
    with BridgeServer(
        upstream.host, upstream.port, tmp_path / "data", blob_chunk_size=CHUNK
    ) as server:
        client = server.client(*USER)
        ids = client.call("Email/query", {"sort": [{"property": "receivedAt"}]})["ids"]
        got = client.call("Email/get", {
            "ids": ids, "properties": ["size", *FROM_BYTES], "fetchAllBodyValues": True,
        })["list"]  # fmt: skip
        by_size = {len(raw): raw for raw in messages}
        assert len(got) == len(messages) == len(by_size)
        for email in got:
            raw = by_size[email.pop("size")]
            assert raw and len(raw) > CHUNK
            expected = email_properties(
                parse_message(raw), FROM_BYTES, fetch_all=True,
                blob_id_for=lambda part, e=email["id"]: blob_id(e, part),
            )  # fmt: skip
            assert {key: value for key, value in email.items() if key != "id"} == expected
        client.close()
