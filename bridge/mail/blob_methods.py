"""Blob methods: Blob/copy (RFC 8620 §6.3) and the Blob capability (RFC 9404): Blob/upload,
Blob/get and Blob/lookup.

Every blob is read as a stream (bridge.mail.blobs): a message's or a part's from the
upstream by partial FETCH, an upload's from the user's upload store. What a call holds in
memory is what it answers with: Blob/get keeps only the selected range of the blobs whose
data was asked for, at most maxSizeUpload octets in all (there is no RFC limit for it;
larger ranges are what the download endpoint is for), and computes sizes and digests as
the octets pass. Blob/upload writes its sources straight into the upload store, so a
blob made of other blobs never sits whole in memory either.

Decisions the RFCs leave open:
- Blob/copy: each user has one account, so a copy can only be to that same account: the
  blob is already there, and ``copied`` maps each blob id to itself (RFC 8620 §6.3 says
  blobs move "between" accounts but forbids nothing else). Any other fromAccountId is
  fromAccountNotFound.
- Blob/get needs ``ids``: "all blobs" (ids null) is invalidArguments.
- Blob/lookup: a message's blob (``B<email id>`` or a part of it) is referenced by its
  Email, that Email's Thread and the Mailboxes holding it; an upload references nothing
  until an Email is made of it (then the Email has blob ids of its own).
- Blob/upload: more than maxDataSources sources, or a range past the end of its blob, is
  invalidProperties; more than maxSizeBlobSet octets is tooLarge; no room in the user's
  upload storage is overQuota.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from bridge.jmap import CallContext, MethodError, decode_args, set_error
from bridge.jmap.standard import StandardArgs, UnsignedInt
from bridge.mail.account import Account
from bridge.mail.blobs import open_blob, parse_blob_id, split_blob_id
from bridge.mail.capabilities import BLOB_LOOKUP_TYPES, DIGEST_ALGORITHMS, MAIL, MAX_DATA_SOURCES
from bridge.mail.common import account_of
from bridge.mail.setting import Refused, attempt
from bridge.store.uploads import DEFAULT_TYPE, UploadWriter

DIGESTS: dict[str, Callable[[], Any]] = {
    "sha": hashlib.sha1,
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}
assert tuple(DIGESTS) == DIGEST_ALGORITHMS
_DATA = ("data", "data:asText", "data:asBase64")
_FLAGS = ("isEncodingProblem", "isTruncated")
_PROPERTIES = frozenset({"id", "size", *_DATA, *_FLAGS, *(f"digest:{d}" for d in DIGESTS)})
_DEFAULT_PROPERTIES = ("data", "size")
_MEDIA_TYPE_MAX = 255


class BlobCopyArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    fromAccountId: str
    accountId: str
    blobIds: list[str]


class BlobGetArgs(StandardArgs, kw_only=True):
    ids: list[str] | None = None
    properties: list[str] | None = None
    offset: UnsignedInt | None = None
    length: UnsignedInt | None = None


class BlobUploadArgs(StandardArgs, kw_only=True):
    create: dict[str, Any]


class BlobLookupArgs(StandardArgs, kw_only=True):
    typeNames: list[str]
    ids: list[str]


class DataSource(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One piece of a Blob/upload: literal text or base64, or a range of another blob."""

    text: str | None = msgspec.field(default=None, name="data:asText")
    base64: str | None = msgspec.field(default=None, name="data:asBase64")
    blobId: str | None = None
    offset: UnsignedInt | None = None
    length: UnsignedInt | None = None


class UploadObject(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    data: list[DataSource]
    type: str | None = None


def blob_copy(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(BlobCopyArgs, args)
    if request.fromAccountId != ctx.account_id:
        raise MethodError("fromAccountNotFound", f"no account {request.fromAccountId!r}")
    account = account_of(ctx)
    copied: dict[str, str] = {}
    not_copied: dict[str, Any] = {}
    for given in dict.fromkeys(request.blobIds):
        blob_id = ctx.resolve_creation_id(given) or given
        if _exists(account, blob_id):
            copied[given] = blob_id
        else:
            not_copied[given] = set_error("notFound", "no such blob")
    return {
        "fromAccountId": request.fromAccountId,
        "accountId": ctx.account_id,
        "copied": copied or None,
        "notCopied": not_copied,
    }


def blob_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(BlobGetArgs, args)
    if request.ids is None:
        raise MethodError("invalidArguments", "Blob/get needs ids: blobs cannot be listed")
    ctx.check_max_objects(len(request.ids), "maxObjectsInGet")
    wanted = set(request.properties or _DEFAULT_PROPERTIES)
    unknown = sorted(wanted - _PROPERTIES)
    if unknown:
        raise MethodError("invalidArguments", f"unknown properties: {', '.join(unknown)}")
    account = account_of(ctx)
    budget = _Budget(ctx.limits.max_size_upload)
    start = request.offset or 0
    stop = None if request.length is None else start + request.length
    found: list[dict[str, Any]] = []
    not_found: list[str] = []
    for given in dict.fromkeys(request.ids):
        # A blob made earlier in the request may be named by its creation id (#cid).
        blob_id = ctx.resolve_creation_id(given) or given
        chunks = open_blob(account, blob_id)
        if chunks is None:
            not_found.append(given)
            continue
        found.append(_blob_item(blob_id, chunks, wanted, start, stop, budget))
    return {"accountId": ctx.account_id, "list": found, "notFound": not_found}


def blob_upload(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(BlobUploadArgs, args)
    ctx.check_max_objects(len(request.create), "maxObjectsInSet")
    uploader = _Uploader(ctx)
    created: dict[str, Any] = {}
    not_created: dict[str, Any] = {}
    for creation_id, obj in request.create.items():
        attempt(uploader.create, creation_id, obj, done=created, failed=not_created)
    return {"accountId": ctx.account_id, "created": created or None, "notCreated": not_created}


def blob_lookup(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(BlobLookupArgs, args)
    ctx.check_max_objects(len(request.ids), "maxObjectsInGet")
    for name in request.typeNames:
        # A type is known only with its capability in "using" (RFC 9404 §4.3).
        if name not in BLOB_LOOKUP_TYPES or MAIL not in ctx.using:
            raise MethodError("unknownDataType", f"no data type {name!r} to look in")
    account = account_of(ctx)
    found: list[dict[str, Any]] = []
    not_found: list[str] = []
    for given in dict.fromkeys(request.ids):
        blob_id = ctx.resolve_creation_id(given) or given
        if not _exists(account, blob_id):
            not_found.append(given)
            continue
        references = _references(account, blob_id)
        matched = {name: references.get(name, []) for name in request.typeNames}
        found.append({"id": blob_id, "matchedIds": matched})
    return {"accountId": ctx.account_id, "list": found, "notFound": not_found}


def _exists(account: Account, blob_id: str) -> bool:
    """Whether this user has the blob: an upload is looked up in the store, anything else
    opened (one partial FETCH) and let go."""
    split = split_blob_id(blob_id)
    if split is None:
        return False
    if blob_id.startswith("U") and split[1] is None:
        return account.user.uploads.open(blob_id) is not None
    chunks = open_blob(account, blob_id)
    if chunks is None:
        return False
    _close(chunks)
    return True


def _references(account: Account, blob_id: str) -> dict[str, list[str]]:
    """The objects a message's blob is found in; none for an upload."""
    parsed = parse_blob_id(blob_id)
    record = account.cache.emails([parsed[0]]).get(parsed[0]) if parsed else None
    if record is None:
        return {}
    return {"Email": [record.id], "Thread": [record.thread_id],
            "Mailbox": sorted(record.mailbox_ids)}  # fmt: skip


class _Budget:
    """The octets of data one Blob/get may still answer with."""

    def __init__(self, octets: int) -> None:
        self.left = octets

    def take(self, octets: int) -> None:
        self.left -= octets
        if self.left < 0:
            raise MethodError(
                "requestTooLarge",
                "the data asked for is larger than maxSizeUpload: ask for less with "
                "offset and length, or use the download endpoint",
            )


def _blob_item(
    blob_id: str,
    chunks: Iterable[bytes],
    wanted: set[str],
    start: int,
    stop: int | None,
    budget: _Budget,
) -> dict[str, Any]:
    """One Blob object of a Blob/get: the selected range [start, stop) read as the blob
    streams past, kept only if its data was asked for."""
    digests = {name: DIGESTS[name.removeprefix("digest:")]() for name in wanted
               if name.startswith("digest:")}  # fmt: skip
    keep = bool(wanted & set(_DATA))
    selected = bytearray()
    window = _Window(start, stop, whole="size" in wanted)
    for piece in window.pieces(chunks):
        for digest in digests.values():
            digest.update(piece)
        if keep:
            budget.take(len(piece))
            selected += piece
    _close(chunks)
    item: dict[str, Any] = {"id": blob_id}
    if "size" in wanted:
        item["size"] = window.size
    for name, digest in digests.items():
        item[name] = base64.b64encode(digest.digest()).decode("ascii")
    truncated = not window.satisfied
    text = _utf8(bytes(selected)) if wanted & {"data", "data:asText"} else None
    problem = text is None and bool(wanted & {"data", "data:asText"})
    if "data:asText" in wanted or ("data" in wanted and text is not None):
        item["data:asText"] = text
    if "data:asBase64" in wanted or ("data" in wanted and text is None):
        item["data:asBase64"] = base64.b64encode(selected).decode("ascii")
    if problem or "isEncodingProblem" in wanted:
        item["isEncodingProblem"] = problem
    if truncated or "isTruncated" in wanted:
        item["isTruncated"] = truncated
    return item


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _Uploader:
    """Blob/upload's creates: each a new blob in the user's upload store, made of its data
    sources in order."""

    def __init__(self, ctx: CallContext) -> None:
        self.ctx = ctx
        self.account = account_of(ctx)
        self.limit = ctx.limits.max_size_upload
        self.quota = self.account.settings.max_upload_storage_per_user

    def create(self, creation_id: str, obj: Any) -> dict[str, Any]:
        try:
            upload = msgspec.convert(obj, UploadObject)
        except msgspec.ValidationError as exc:
            raise Refused("invalidProperties", str(exc)) from None
        if len(upload.data) > MAX_DATA_SOURCES:
            raise Refused("invalidProperties", f"at most {MAX_DATA_SOURCES} data sources",
                          ["data"])  # fmt: skip
        media_type = upload.type or DEFAULT_TYPE
        if len(media_type) > _MEDIA_TYPE_MAX or "/" not in media_type:
            raise Refused("invalidProperties", "type must be a media type", ["type"])
        store = self.account.user.uploads
        with store.begin() as writer:
            size = 0
            for index, source in enumerate(upload.data):
                for piece in self._octets(source, index):
                    size += len(piece)
                    if size > self.limit:
                        raise Refused("tooLarge", f"larger than maxSizeBlobSet ({self.limit})")
                    self._write(writer, piece)
            blob = writer.commit(media_type)
        self.ctx.created_ids[creation_id] = blob.blob_id
        return {"id": blob.blob_id, "type": blob.type, "size": blob.size}

    def _write(self, writer: UploadWriter, piece: bytes) -> None:
        if not writer.write_within(piece, self.quota):
            raise Refused("overQuota", "no room left in this user's upload storage")

    def _octets(self, source: DataSource, index: int) -> Iterator[bytes]:
        where = [f"data/{index}"]
        given = [v for v in (source.text, source.base64, source.blobId) if v is not None]
        if len(given) != 1:
            raise Refused("invalidProperties", "a data source is data:asText, data:asBase64 "
                          "or blobId, exactly one", where)  # fmt: skip
        if source.blobId is None and (source.offset is not None or source.length is not None):
            raise Refused("invalidProperties", "offset and length go with blobId", where)
        if source.text is not None:
            return iter((source.text.encode("utf-8"),))
        if source.base64 is not None:
            try:
                return iter((base64.b64decode(source.base64, validate=True),))
            except binascii.Error:
                raise Refused("invalidProperties", "data:asBase64 is not base64", where) from None
        assert source.blobId is not None
        return self._range(source.blobId, source.offset or 0, source.length, where)

    def _range(
        self, blob_id: str, offset: int, length: int | None, where: list[str]
    ) -> Iterator[bytes]:
        """The octets [offset, offset + length) of another blob (to its end without a
        length); a range past the end is refused (RFC 9404 §4.1)."""
        chunks = open_blob(self.account, self.ctx.resolve_creation_id(blob_id) or blob_id)
        if chunks is None:
            raise Refused("invalidProperties", f"no blob {blob_id!r}", where)
        window = _Window(offset, None if length is None else offset + length)
        try:
            yield from window.pieces(chunks)
        finally:
            _close(chunks)
        if not window.satisfied:
            raise Refused("invalidProperties", f"the range is past the end of {blob_id}", where)


class _Window:
    """The octets [start, stop) of a stream (to its end when ``stop`` is None), piece by
    piece; the stream is read no further than ``stop`` unless ``whole`` (to learn its size)."""

    def __init__(self, start: int, stop: int | None, whole: bool = False) -> None:
        self.start = start
        self.stop = stop
        self.whole = whole
        self.size = 0  # octets of the stream read so far

    def pieces(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            read = self.size
            self.size += len(chunk)
            low = max(self.start - read, 0)
            high = len(chunk) if self.stop is None else min(self.stop - read, len(chunk))
            if low < high:
                yield chunk[low:high]
            if not self.whole and self.stop is not None and self.size >= self.stop:
                return

    @property
    def satisfied(self) -> bool:
        """Whether the stream, read to the end, held the whole range."""
        return self.start <= self.size and (self.stop is None or self.stop <= self.size)


def _close(chunks: Iterable[bytes]) -> None:
    """Let go of a blob stream not read to its end (a generator holds a FETCH loop)."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
