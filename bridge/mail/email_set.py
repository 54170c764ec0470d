"""Email/set (RFC 8621 §4.6): keywords and mailboxIds by STORE, MOVE, COPY and UID
EXPUNGE; destroy by UID EXPUNGE of exactly the Email's messages.

Updates run before destroys (RFC 8620 §5.3). Nothing is reported updated or destroyed
that the upstream did not confirm: if the connection drops part way, the call fails with
serverPartialFail once anything changed upstream, so the client knows to resync. The
cache learns the outcome from the sync that follows, like any other client's change.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, BinaryIO, TypeVar

import msgspec

from bridge.imap.errors import CommandFailed, DeadlinePassed, UpstreamUnavailable
from bridge.imap.flags import keyword_to_flag
from bridge.imap.responses import ObjectIds, format_sequence_set
from bridge.imap.search import plan_search
from bridge.jmap import CallContext, MethodError, decode_args
from bridge.jmap.standard import CopyArgs, SetArgs, check_in_state
from bridge.mail.account import Account
from bridge.mail.blobs import BlobVanished, blob_id, open_blob
from bridge.mail.common import account_of
from bridge.mail.gmail_filing import GmailFiling, creation_plan
from bridge.mail.gmail_labels import LabelViews, label_views
from bridge.mail.identity import account_default
from bridge.mail.setting import CopyMissed, Refused, apply_each, attempt, patched
from bridge.mail.spool import (
    header_block,
    header_section_within,
    open_spool,
    size_of,
    to_crlf,
)
from bridge.mail.threading import header_fields, message_ids
from bridge.mime.compose import BlobsNotFound, ComposeError, compose
from bridge.mime.dates import parse_utc_date
from bridge.store.journal import EMAIL

SETTABLE = frozenset({"keywords", "mailboxIds"})
CREATABLE = frozenset({
    "mailboxIds", "keywords", "receivedAt", "from", "to", "cc", "bcc", "replyTo", "sender",
    "subject", "sentAt", "messageId", "inReplyTo", "references", "textBody", "htmlBody",
    "attachments", "bodyValues", "bodyStructure",
})  # fmt: skip
# How often an update or destroy is tried again after missing a copy another client had
# just moved or expunged: each try follows a sync, so a miss needs a new change every time.
WRITE_TRIES = 3
_T = TypeVar("_T")


def _last_received(header_block: bytes) -> datetime | None:
    """RFC 8621 §4.8: by default, the time of the most recent Received header."""
    header = header_block.replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ")
    for line in header.split(b"\r\n"):
        if line[:9].lower() == b"received:" and b";" in line:
            try:
                return email.utils.parsedate_to_datetime(
                    line.rsplit(b";", 1)[1].decode("ascii", "replace").strip()
                )
            except (TypeError, ValueError):
                return None
    return None


def _received_at(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = parse_utc_date(value) if isinstance(value, str) else None
    if moment is None:
        raise Refused("invalidProperties", "receivedAt must be a UTCDate", ["receivedAt"])
    return moment


def _keyword_map(value: Any) -> set[str]:
    if value is None:
        return set()
    if not isinstance(value, dict) or any(v is not True for v in value.values()):
        raise Refused("invalidProperties", "keywords maps each keyword to true", ["keywords"])
    keywords = {str(k).lower() for k in value}
    for keyword in keywords:
        try:
            keyword_to_flag(keyword)
        except ValueError as exc:
            raise Refused("invalidProperties", f"bad keyword {keyword!r}", ["keywords"]) from exc
    return keywords


def _without_false(keywords: Any) -> Any:
    """An update's keywords with those mapped to false left out. RFC 8621 maps each keyword
    to true, but clients patch ``"keywords/$draft": false`` to remove one (Stalwart takes
    it so): what they mean is plain, and nothing else is lost. A create stays strict."""
    if not isinstance(keywords, dict):
        return keywords
    return {keyword: value for keyword, value in keywords.items() if value is not False}


class EmailSetter:
    def __init__(self, ctx: CallContext, request: SetArgs) -> None:
        self.ctx = ctx
        self.request = request
        self.account: Account = account_of(ctx)
        self.cache = self.account.cache
        # Set before each upstream write is sent: one whose answer never came may have
        # happened, and then the method must not end in an error that says nothing did.
        self.changed_upstream = False

    def _wrote(self) -> None:
        self.changed_upstream = True

    def _label_views(self) -> LabelViews | None:
        """Gmail's label views (bridge.mail.gmail_labels); None on other servers."""
        if self.account.imap.object_ids is not ObjectIds.GMAIL:
            return None
        return label_views(self.account.imap, self.cache.mailboxes())

    def run(self) -> dict[str, Any]:
        self.account.sync(writing=True)
        old_state = self.cache.encode_state(self.cache.state(EMAIL))
        check_in_state(self.request.ifInState, old_state)
        try:
            results = apply_each(self.request, self._create, self._update, self._destroy)
        except UpstreamUnavailable as exc:
            if self.changed_upstream:
                raise MethodError(
                    "serverPartialFail", "the upstream went away part way; resync Emails"
                ) from exc
            raise
        if self.changed_upstream:
            self.account.sync_after_writes()
        return {
            "accountId": self.ctx.account_id,
            "oldState": old_state,
            "newState": self.cache.encode_state(self.cache.state(EMAIL)),
            **results,
        }

    def _create(self, creation_id: str, obj: Any) -> dict[str, Any]:
        """Compose the message into a spool, APPEND it to one mailbox and COPY it to the
        others, so the copies stay one Email."""
        if not isinstance(obj, dict):
            raise Refused("invalidProperties", "an Email must be an object")
        unknown = sorted(k for k in obj if k not in CREATABLE and not k.startswith("header:"))
        if unknown:
            raise Refused("invalidProperties", "not settable on create", unknown)
        targets, names, labels = self._targets(obj.get("mailboxIds"))
        keywords = _keyword_map(obj.get("keywords"))
        received = _received_at(obj.get("receivedAt"))
        with open_spool(self.account) as spool:
            try:
                message_id = compose(
                    obj,
                    self._open_blob,
                    spool,
                    max_header_length=self.account.settings.max_header_length,
                    domain=self._domain,
                )
            except BlobsNotFound as exc:
                raise Refused("blobNotFound", "blobs not found", notFound=exc.blob_ids) from exc
            except ComposeError as exc:
                raise Refused("invalidProperties", str(exc), exc.properties) from exc
            limit = self.ctx.request_limits.max_header_size
            if not header_section_within(spool, limit):
                raise Refused("tooLarge", f"the message's header is larger than {limit} octets")
            try:
                return self._store_new(
                    creation_id, spool, message_id, targets, names, keywords, received, labels
                )
            except UpstreamUnavailable as exc:
                if exc.timed_out or isinstance(exc, DeadlinePassed):
                    # The server went silent with the APPEND perhaps still to run: nothing
                    # read now could prove it will not, so the method ends serverPartialFail.
                    # Or the request's time is up: nothing more can be asked.
                    raise
                # The connection dropped with the APPEND perhaps done: ask a fresh
                # connection whether the message (known by its Message-ID) arrived, and
                # answer truly.
                self.account.reconnect()
                return self._created_after_all(creation_id, message_id, names[targets[0]],
                                               targets[0], labels)  # fmt: skip

    @property
    def _domain(self) -> str | None:
        """The user's mail domain, for the Message-IDs bridge makes (RFC 5322 §3.6.4
        wants the right side to name the host or domain the message comes from)."""
        address = account_default(self.account)
        return address.rpartition("@")[2].lower() if address else None

    def _uid_of(self, message_id: str, name: str) -> int | None:
        """The newest message of folder ``name`` with this Message-ID: how a message just
        appended is found where the upstream did not say its UID (no APPENDUID, or the
        connection lost before the answer)."""
        plan = plan_search({"header": ["Message-ID", f"<{message_id}>"]},
                           capabilities=self.account.imap.capabilities)  # fmt: skip
        folder = self.account.folder(name)
        uids = folder.search(plan.criteria, utf8=plan.needs_utf8)
        return max(uids) if uids else None

    def _created_after_all(
        self, creation_id: str, message_id: str, name: str, mailbox_id: str, labels: list[str]
    ) -> dict[str, Any]:
        uid = self._uid_of(message_id, name)
        if uid is None:
            raise Refused("serverFail", "the upstream connection was lost before the APPEND")
        self.account.sync(force=True)
        self._put_labels(name, uid, labels)
        location = self.cache.locations(mailbox_id, uids=[uid]).get(uid)
        if location is None:
            raise Refused("serverFail", "the new Email could not be read back")
        record = self.cache.emails([location.email_id])[location.email_id]
        self.ctx.created_ids[creation_id] = record.id
        return {"id": record.id, "blobId": blob_id(record.id), "threadId": record.thread_id,
                "size": record.size}  # fmt: skip

    def _store_new(
        self,
        creation_id: str,
        spool: BinaryIO,
        message_id: str | None,
        targets: list[str],
        names: dict[str, str],
        keywords: set[str],
        received: datetime | None,
        labels: list[str],
    ) -> dict[str, Any]:
        """APPEND the spooled message to the first mailbox, COPY to the rest (on Gmail:
        put ``labels`` on it); the id comes from APPENDUID, else from a search for its
        Message-ID."""
        imap = self.account.imap
        limit = imap.append_limit
        size = size_of(spool)
        if limit is not None and size > limit:
            raise Refused("tooLarge", f"the message is larger than the upstream's {limit:,} "
                          "bytes", maxSize=limit)  # fmt: skip
        flags = sorted(keyword_to_flag(k) for k in keywords)
        # From here on the upstream may have changed, even if no answer comes (see run).
        self.changed_upstream = True
        self._arriving(targets[0], names[targets[0]])
        try:
            appended = imap.append(names[targets[0]], spool, flags, received,
                                   chunk_size=self.account.settings.blob_chunk_size)  # fmt: skip
        except CommandFailed as exc:
            # RFC 7889 answers TOOBIG; Dovecot's quota_max_mail_size answers LIMIT.
            if exc.code in ("TOOBIG", "LIMIT"):
                raise Refused("tooLarge", f"the upstream refused: {exc.text}") from exc
            raise
        self.account.sync(force=True)
        if appended is not None:
            uid = appended[1]
        else:
            uid = self._appended_uid(message_id, names[targets[0]], flags)
        email_id = self._appended_email(targets[0], uid)
        self._refuse_duplicate(email_id, targets[0], names[targets[0]], uid)
        self._put_labels(names[targets[0]], uid, labels)
        if targets[1:]:
            for other in targets[1:]:
                folder = self.account.folder(names[targets[0]], writable=True)
                self._arriving(other, names[other])
                folder.copy(str(uid), names[other])
            self.account.sync(force=True)
            email_id = self._appended_email(targets[0], uid)
        record = self.cache.emails([email_id])[email_id]
        self.ctx.created_ids[creation_id] = record.id
        return {"id": record.id, "blobId": blob_id(record.id), "threadId": record.thread_id,
                "size": record.size}  # fmt: skip

    def _put_labels(self, name: str, uid: int, labels: list[str]) -> None:
        """On Gmail, the labels a new message was asked into, on its All Mail UID."""
        if not labels:
            return
        self.account.folder(name, writable=True).change_labels(str(uid), labels, [])
        self.account.sync(force=True)

    def _appended_uid(self, message_id: str | None, name: str, flags: list[str]) -> int:
        """The UID of a message just appended where the upstream gave no APPENDUID: the
        message is upstream, so it must be found, never answered as not created. Searched
        after a sync, whose view of the folder the cache holds (GNU imap4d renumbers new
        mail when a folder is looked at), and again after setting flags the upstream
        dropped from the APPEND (imap4d does)."""
        if message_id is None:
            raise Refused("serverFail", "appended, but without APPENDUID or a Message-ID the "
                          "new Email cannot be found upstream")  # fmt: skip
        uid = self._uid_of(message_id, name)
        if uid is not None and flags:
            self.account.folder(name, writable=True).store_flags(str(uid), flags, add=True)
            self.account.written.stored(name, [uid])
            self.account.sync(force=True)
            uid = self._uid_of(message_id, name)
        if uid is None:
            raise Refused("serverFail", "the new Email could not be found upstream")
        return uid

    def _appended_email(self, mailbox_id: str, uid: int) -> str:
        location = self.cache.locations(mailbox_id, uids=[uid]).get(uid)
        if location is None:
            raise Refused("forbidden", "the new Email was not found upstream")
        return location.email_id

    def _refuse_duplicate(self, email_id: str, mailbox_id: str, name: str, uid: int) -> None:
        """A message the upstream files under an Email it had already is a duplicate: Cyrus
        derives EMAILID from the content, so the same bytes appended twice are one Email
        with two messages. Answered as RFC 8621 §4.8 lets a server that forbids duplicates
        (alreadyExists, existingId), and the message just appended is removed, exactly it,
        so that no second copy hides inside the existing Email. On Gmail a message APPENDed
        to a label folder shows in All Mail as well, under the same X-GM-MSGID, and in its
        label views under the All Mail UID: no duplicate."""
        views = self._label_views()
        shown_in_all = (
            {r.id for r in self.cache.mailboxes() if r.role == "all"}
            if self.account.imap.object_ids is ObjectIds.GMAIL
            else set()
        )

        def others(locations: dict[str, list[int]]) -> bool:
            outside = locations if views is None else views.outside(locations)
            return any(
                (mailbox, other) != (mailbox_id, uid) and mailbox not in shown_in_all
                for mailbox, uids in outside.items()
                for other in uids
            )

        if not others(self.cache.email_locations(email_id)):
            return
        # Before the new message goes for them: the others, read again upstream.
        if not others(self.account.email_locations(email_id, everywhere=True)[0]):
            return
        folder = self.account.folder(name, writable=True)
        self._leaving(name, [uid])
        folder.expunge_uids(str(uid))
        self.account.sync(force=True)
        raise Refused("alreadyExists", "the account has this message already", existingId=email_id)

    def _targets(self, boxes: Any) -> tuple[list[str], dict[str, str], list[str]]:
        """Where a new message goes: the mailboxes to APPEND and COPY to, their names, and
        on Gmail the labels to put on it (gmail_filing.creation_plan)."""
        if not isinstance(boxes, dict) or not boxes or any(v is not True for v in boxes.values()):
            raise Refused("invalidProperties", "an Email needs a mailbox", ["mailboxIds"])
        targets = sorted(self.ctx.resolve_creation_id(b) or b for b in boxes)
        names = {r.id: r.name for r in self.cache.mailboxes() if r.selectable}
        if not set(targets) <= set(names):
            raise Refused("invalidProperties", "no such mailbox", ["mailboxIds"])
        views = self._label_views()
        if views is None:
            return targets, names, []
        targets, labels = creation_plan(views, targets)
        return targets, names, labels

    def import_one(self, creation_id: str, item: Any) -> dict[str, Any]:
        """Email/import (RFC 8621 §4.8): a stored blob becomes an Email, copied into a
        spool on the way."""
        if not isinstance(item, dict) or not isinstance(item.get("blobId"), str):
            raise Refused("invalidProperties", "an EmailImport needs a blobId", ["blobId"])
        unknown = sorted(set(item) - {"blobId", "mailboxIds", "keywords", "receivedAt"})
        if unknown:
            raise Refused("invalidProperties", "unknown EmailImport properties", unknown)
        targets, names, labels = self._targets(item.get("mailboxIds"))
        keywords = _keyword_map(item.get("keywords"))
        received = _received_at(item.get("receivedAt"))
        chunks = self._open_blob(item["blobId"])
        if chunks is None:
            raise Refused("invalidProperties", "no such blob", ["blobId"])
        with open_spool(self.account) as spool:
            nul = False
            try:
                for chunk in to_crlf(chunks):
                    nul = nul or b"\x00" in chunk
                    spool.write(chunk)
            except BlobsNotFound as exc:
                raise Refused("invalidProperties", "no such blob", ["blobId"]) from exc
            header = header_block(spool)
            if nul or b":" not in header:
                raise Refused("invalidEmail", "the blob is not an RFC 5322 message")
            received = received or _last_received(header)
            own = message_ids(header_fields(header).get("message-id", []))
            return self._store_new(
                creation_id, spool, own[0] if own else None, targets, names, keywords, received,
                labels,
            )  # fmt: skip

    def _open_blob(self, value: str) -> Iterator[bytes] | None:
        chunks = open_blob(self.account, value)
        return None if chunks is None else _whole(chunks, value)

    def _arriving(self, mailbox_id: str, name: str) -> None:
        """Note, before it is sent, a write that puts mail in a folder: the sync after it
        reads the folder's new mail back if the indexer has not finished it."""
        record = self.cache.mailbox(mailbox_id)
        if record is not None and record.status is not None:
            self.account.written.arriving(name, record.status.uidnext)

    def _leaving(self, name: str, uids: list[int]) -> None:
        """Note, before it is sent, a write that moves or expunges mail out of a folder."""
        self.changed_upstream = True
        self.account.written.removed(name, uids)

    def _update(self, email_id: str, patch: Any) -> dict[str, Any] | None:
        return self._where_it_is_now(self._update_once, email_id, patch)

    def _destroy(self, email_id: str) -> None:
        self._where_it_is_now(self._destroy_once, email_id)

    def _where_it_is_now(self, write: Callable[..., _T], email_id: str, *args: Any) -> _T:
        """``write`` of an Email, again after a sync where it missed a copy: another client
        moved or expunged it since the request's sync, and a UID STORE, MOVE or EXPUNGE of
        a message no longer there is OK in IMAP. Never `updated` or `destroyed` for a
        write that reached nothing."""
        for _ in range(WRITE_TRIES):
            try:
                return write(email_id, *args)
            except CopyMissed:
                self.account.sync(force=True)
        raise Refused("serverFail", "the Email kept moving upstream while it was written")

    def _update_once(self, email_id: str, patch: Any) -> dict[str, Any] | None:
        record = self.cache.emails([email_id]).get(email_id)
        if record is None:
            raise Refused("notFound", "no such Email")
        if not isinstance(patch, dict):
            raise Refused("invalidPatch", "an update must be a PatchObject")
        locations, read_again = self.account.email_locations(email_id)
        if read_again:  # where the cache lagged: the record may have changed with it
            record = self.cache.emails([email_id]).get(email_id)
            if record is None:
                raise Refused("notFound", "the Email is in no folder upstream")
        current = {
            "keywords": dict.fromkeys(record.keywords, True),
            "mailboxIds": dict.fromkeys(record.mailbox_ids, True),
        }
        tops = {key.split("/", 1)[0] for key in patch}
        if tops - SETTABLE:
            raise Refused("invalidProperties", "only keywords and mailboxIds can change",
                           sorted(tops - SETTABLE))  # fmt: skip
        wanted = patched(current, patch)
        keywords = _keyword_map(_without_false(wanted.get("keywords") or {}))
        boxes = wanted.get("mailboxIds")
        if not isinstance(boxes, dict) or not boxes or any(v is not True for v in boxes.values()):
            raise Refused("invalidProperties", "an Email needs a mailbox", ["mailboxIds"])
        targets = {self.ctx.resolve_creation_id(b) or b for b in boxes}
        names = {r.id: r.name for r in self.cache.mailboxes() if r.selectable}
        if not targets <= set(names):
            raise Refused("invalidProperties", "no such mailbox", ["mailboxIds"])
        views = self._label_views()
        if views is None:
            self._store_keywords(locations, names, set(record.keywords), keywords)
            self._file(email_id, locations, names, targets)
            return None
        # Gmail: flags belong to the message, STOREd where it really is; labels by GmailFiling.
        self._store_keywords(views.outside(locations), names, set(record.keywords), keywords)
        return GmailFiling(self.account, views, self._wrote).file(locations, targets)

    def _store_keywords(
        self, locations: dict[str, list[int]], names: dict[str, str], old: set[str], new: set[str]
    ) -> None:
        add = sorted(keyword_to_flag(k) for k in new - old)
        remove = sorted(keyword_to_flag(k) for k in old - new)
        if not add and not remove:
            return
        missed = False
        for mailbox_id, uids in locations.items():
            folder = self.account.folder(names[mailbox_id], writable=True)
            uid_set = format_sequence_set(uids)
            self.changed_upstream = True
            self.account.written.stored(names[mailbox_id], uids)
            missed = folder.change_flags(uid_set, add, remove) != set(uids) or missed
        if missed:
            raise CopyMissed

    def _file(
        self,
        email_id: str,
        locations: dict[str, list[int]],
        names: dict[str, str],
        targets: set[str],
    ) -> None:
        """Put the Email in exactly ``targets``: MOVE where it leaves a folder for another,
        COPY for further folders, an exact expunge (``expunge_uids``) where it leaves
        without MOVE."""
        imap = self.account.imap
        leaving = [m for m in locations if m not in targets]
        arriving = [m for m in sorted(targets) if m not in locations]
        moves = min(len(leaving), len(arriving)) if imap.has("MOVE") else 0
        if len(leaving) > moves:
            # A copy goes by expunge, trusting the others (or a COPY from one of them):
            # each read again upstream first, so that none is a copy another client has
            # moved away since the cache last looked.
            locations, _ = self.account.email_locations(email_id, everywhere=True)
            leaving = [m for m in locations if m not in targets]
            arriving = [m for m in sorted(targets) if m not in locations]
        if arriving and not locations:
            raise Refused("notFound", "the Email is in no folder upstream")
        for destination in arriving:
            if leaving and imap.has("MOVE"):
                source = leaving.pop(0)
                folder = self.account.folder(names[source], writable=True)
                self._arriving(destination, names[destination])
                self._leaving(names[source], locations[source])
                placed = folder.move(format_sequence_set(locations[source]), names[destination])
            else:
                source = next(iter(locations))
                folder = self.account.folder(names[source], writable=True)
                self.changed_upstream = True
                self._arriving(destination, names[destination])
                placed = folder.copy(format_sequence_set(locations[source]), names[destination])
            if imap.has("UIDPLUS") and len(placed) < len(locations[source]):
                raise CopyMissed  # COPYUID names every message that went
        for source in leaving:
            folder = self.account.folder(names[source], writable=True)
            self._leaving(names[source], locations[source])
            expunged = folder.expunge_uids(format_sequence_set(locations[source]))
            if expunged != set(locations[source]):
                raise CopyMissed  # gone before: a COPY from it (without MOVE) copied nothing

    def _destroy_once(self, email_id: str) -> None:
        if self.cache.emails([email_id]).get(email_id) is None:
            raise Refused("notFound", "no such Email")
        names = {r.id: r.name for r in self.cache.mailboxes()}
        locations, _ = self.account.email_locations(email_id)
        if not locations:
            raise Refused("notFound", "the Email is in no folder upstream")
        if self.account.imap.object_ids is ObjectIds.GMAIL:
            views = self._label_views()
            if views is not None:
                locations = views.outside(locations)  # a view's UIDs are All Mail's
            locations = self._into_gmail_trash(locations, names)
        missed = False
        for mailbox_id, uids in locations.items():
            folder = self.account.folder(names[mailbox_id], writable=True)
            self._leaving(names[mailbox_id], uids)
            missed = folder.expunge_uids(format_sequence_set(uids)) != set(uids) or missed
        if missed:
            raise CopyMissed

    def _into_gmail_trash(
        self, locations: dict[str, list[int]], names: dict[str, str]
    ) -> dict[str, list[int]]:
        """On Gmail an expunge from a label folder only removes that label, and what
        leaves the last folder showing it is archived, trashed or deleted as the account's
        ImapSettings.expungeBehavior says. Moved to the Trash (which takes every label off)
        and expunged there, a message is deleted whatever the setting. Where to expunge
        once moved."""
        trash = next((r for r in self.cache.mailboxes() if r.role == "trash"), None)
        if trash is None or not self.account.imap.has("MOVE"):
            raise Refused("forbidden", "Gmail deletes through its Trash, which is missing")
        labelled = [m for m in locations if m != trash.id]
        if not labelled:
            return locations
        source = labelled[0]
        folder = self.account.folder(names[source], writable=True)
        moved = folder.move(format_sequence_set(locations[source]), trash.name)
        self.changed_upstream = True
        if not moved:
            raise CopyMissed  # gone meanwhile (or no COPYUID): found again by a sync
        return {trash.id: sorted({*locations.get(trash.id, []), *moved})}


def email_set(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(SetArgs, args)
    ctx.check_max_objects(request.object_count(), "maxObjectsInSet")
    return EmailSetter(ctx, request).run()


class EmailImportArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    accountId: str
    ifInState: str | None = None
    emails: dict[str, Any]


def email_import(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(EmailImportArgs, args)
    ctx.check_max_objects(len(request.emails), "maxObjectsInSet")
    setter = EmailSetter(ctx, SetArgs(accountId=request.accountId))
    setter.account.sync(writing=True)
    cache = setter.cache
    old_state = cache.encode_state(cache.state(EMAIL))
    check_in_state(request.ifInState, old_state)
    created: dict[str, Any] = {}
    not_created: dict[str, Any] = {}
    try:
        for creation_id, item in request.emails.items():
            attempt(setter.import_one, creation_id, item, done=created,
                            failed=not_created)  # fmt: skip
    except UpstreamUnavailable as exc:
        if setter.changed_upstream:
            raise MethodError("serverPartialFail", "the upstream went away part way") from exc
        raise
    return {
        "accountId": ctx.account_id,
        "oldState": old_state,
        "newState": cache.encode_state(cache.state(EMAIL)),
        "created": created or None,
        "notCreated": not_created,  # {} when empty, as every /set (bridge.mail.setting)
    }


def email_copy(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """RFC 8621 §4.7 copies between accounts; each user here has exactly one."""
    request = decode_args(CopyArgs, args)
    if request.fromAccountId == request.accountId:
        raise MethodError("invalidArguments", "fromAccountId must differ from accountId")
    raise MethodError("fromAccountNotFound", "this server has one account per user")


def _whole(chunks: Iterator[bytes], value: str) -> Iterator[bytes]:
    """The blob's chunks; a blob whose message went away while it was read is a blob not
    found, never a shorter message stored in its place."""
    try:
        yield from chunks
    except BlobVanished as exc:
        raise BlobsNotFound([value]) from exc
