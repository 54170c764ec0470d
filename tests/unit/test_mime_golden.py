"""Golden files: every ``mime_corpus/NAME.eml`` against ``NAME.json``.

``BRIDGE_REGENERATE_GOLDEN=1 python -m pytest tests/unit/test_mime_golden.py`` rewrites the
goldens; review each diff against RFC 8621 before keeping it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bridge.mime import email_properties, parse_message

CORPUS = Path(__file__).parent / "mime_corpus"
MESSAGES = sorted(CORPUS.glob("*.eml"))
REGENERATE = os.environ.get("BRIDGE_REGENERATE_GOLDEN") == "1"

PROPERTIES = [
    "messageId",
    "inReplyTo",
    "references",
    "sender",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "sentAt",
    "hasAttachment",
    "preview",
    "bodyStructure",
    "bodyValues",
    "textBody",
    "htmlBody",
    "attachments",
    "headers",
    "header:Subject:all",
    "header:To:asGroupedAddresses",
    "header:Cc:asGroupedAddresses",
    "header:List-Unsubscribe:asURLs",
    "header:List-Post:asURLs",
    "header:List-Id:asText",
    "header:X-Note:asText:all",
]


def render(path: Path) -> dict[str, Any]:
    return email_properties(
        parse_message(path.read_bytes()),
        PROPERTIES,
        blob_id_for=lambda part_id: f"B{part_id}",
        fetch_all=True,
    )


def test_corpus_is_crlf() -> None:
    assert len(MESSAGES) >= 15
    for path in MESSAGES:
        data = path.read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n"), path.name


@pytest.mark.parametrize("path", MESSAGES, ids=[path.stem for path in MESSAGES])
def test_golden(path: Path) -> None:
    # A JSON round trip, so the comparison sees exactly what a client would.
    actual = json.loads(json.dumps(render(path)))
    golden = path.with_suffix(".json")
    if REGENERATE:
        text = json.dumps(actual, indent=2, ensure_ascii=False) + "\n"
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden for {path.name}; run with BRIDGE_REGENERATE_GOLDEN=1"
    assert actual == json.loads(golden.read_text(encoding="utf-8"))
