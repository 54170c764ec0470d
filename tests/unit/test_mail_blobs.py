from __future__ import annotations

from bridge.mail.blobs import blob_id, parse_blob_id
from bridge.store.ids import derive_id


def test_blob_ids_round_trip() -> None:
    email_id = derive_id("e", "oid:x")
    assert parse_blob_id(blob_id(email_id)) == (email_id, None)
    assert parse_blob_id(blob_id(email_id, "1.2.3")) == (email_id, "1.2.3")
    assert parse_blob_id(blob_id(email_id, "2")) == (email_id, "2")


def test_malformed_blob_ids() -> None:
    email_id = derive_id("e", "oid:x")
    for bad in ("", "B", "Bshort", f"X{email_id}", f"B{email_id}x1", f"B{email_id}_",
                f"B{email_id}_1--2", f"B{email_id}_a"):  # fmt: skip
        assert parse_blob_id(bad) is None, bad
