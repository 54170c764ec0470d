"""Messages read whole from the upstream to be parsed: for Email/get's body properties,
summaries where the server gives no preview, and SearchSnippet/get.

A message of up to ``blob_chunk_size`` octets comes in one FETCH of ``BODY.PEEK[]`` with
others of its folder (a few chunks' worth per FETCH) and is parsed in memory. A larger one
streams by partial FETCH (``open_blob``) into a spool file in the user's upload directory
and is parsed from there a window at a time (``bridge.mime.source``): its parts are read
and decoded chunk by chunk when a property needs them. The caller gets one parsed message
at a time, and a spool is closed, and gone, once the caller moves on to the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from bridge.mail.account import Account
from bridge.mail.blobs import BlobVanished, blob_id, open_blob, split_blob_id
from bridge.mail.gmail_labels import upstream_folder
from bridge.mail.spool import open_spool
from bridge.mail.sync import uid_set
from bridge.mime import ParsedMessage, parse_message
from bridge.mime.source import FileSource
from bridge.store.records import EmailRecord

WHOLE_ITEMS = ("BODY.PEEK[]",)
HEADER_ITEMS = ("BODY.PEEK[HEADER]",)
# Small messages fetched together: at most this many chunks' worth per FETCH.
BATCH_CHUNKS = 4


def fetch_by_folder(
    account: Account, email_ids: Iterable[str], items: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """FETCH ``items`` of each Email from one folder that holds it: email id -> items."""
    refs = account.cache.message_refs(list(email_ids))
    by_folder: dict[str, dict[int, str]] = {}
    for email_id, ref in refs.items():
        by_folder.setdefault(ref.mailbox_id, {})[ref.uid] = email_id
    fetched: dict[str, dict[str, Any]] = {}
    for mailbox_id, by_uid in by_folder.items():
        record = account.cache.mailbox(mailbox_id)
        if record is None:
            continue
        folder = account.folder(upstream_folder(account.imap, account.cache, record))
        for uid, meta in folder.fetch_meta(uid_set(by_uid), extra=items).messages.items():
            if uid in by_uid:
                fetched[by_uid[uid]] = meta.raw
    return fetched


def parsed_messages(
    account: Account, records: Mapping[str, EmailRecord], *, header_only: bool = False
) -> Iterator[tuple[str, ParsedMessage]]:
    """(email id, parsed message) for each of ``records`` still upstream, one at a time.
    ``header_only``: the messages are parsed from their header alone (no body parts), for
    properties that read nothing else; a large message still comes through a spool, since
    its header may be as large as it is."""
    chunk_size = account.settings.blob_chunk_size
    batch: list[str] = []
    batch_octets = 0
    for email_id, record in records.items():
        if record.size > chunk_size:
            continue
        batch.append(email_id)
        batch_octets += record.size
        if batch_octets >= BATCH_CHUNKS * chunk_size:
            yield from _in_memory(account, batch, header_only)
            batch, batch_octets = [], 0
    yield from _in_memory(account, batch, header_only)
    for email_id, record in records.items():
        if record.size > chunk_size:
            yield from _spooled(account, email_id)


def _in_memory(
    account: Account, email_ids: list[str], header_only: bool
) -> Iterator[tuple[str, ParsedMessage]]:
    if not email_ids:
        return
    items, key = (HEADER_ITEMS, "BODY[HEADER]") if header_only else (WHOLE_ITEMS, "BODY[]")
    for email_id, raw in fetch_by_folder(account, email_ids, items).items():
        yield email_id, parse_message(raw.get(key) or b"")


def _spooled(account: Account, email_id: str) -> Iterator[tuple[str, ParsedMessage]]:
    with blob_source(account, blob_id(email_id)) as source:
        if source is not None:  # else gone upstream since the last sync
            yield email_id, parse_message(source)


@contextmanager
def blob_source(account: Account, value: str) -> Iterator[FileSource | None]:
    """A blob as a file to parse from: an upload's own file, anything else (a message, a
    part) spooled from the upstream; None if this user has no such blob."""
    split = split_blob_id(value)
    if split is not None and split == (value, None) and value.startswith("U"):
        stored = account.user.uploads.open(value)
        try:
            # Opened now: a sweep that deletes the upload meanwhile leaves this handle readable.
            handle = stored.path.open("rb") if stored is not None else None
        except FileNotFoundError:
            handle = None
        if handle is None:
            yield None
            return
        with handle:
            yield FileSource(handle)
        return
    chunks = open_blob(account, value) if split is not None else None
    if chunks is None:
        yield None
        return
    with open_spool(account) as spool:
        try:
            for chunk in chunks:
                spool.write(chunk)
            spool.flush()
            whole = True
        except BlobVanished:
            whole = False  # gone while read: no blob, rather than the part that arrived
        yield FileSource(spool) if whole else None
