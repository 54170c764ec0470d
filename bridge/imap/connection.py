"""One logged-in IMAP session, with typed methods for what bridge asks of a server.

Every client-supplied string reaches the wire through ``quoting``; every response is read
by the pure parsers in ``responses``. Opening (TLS, authentication, capabilities) is
``session``'s business.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import re
import select
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import BinaryIO, ParamSpec, TypeVar

import msgspec

from bridge.imap import quoting
from bridge.imap.errors import CommandFailed, UpstreamUnavailable
from bridge.imap.expunge import expunge_outcome, uids_by_number
from bridge.imap.flagview import FolderView
from bridge.imap.models import (
    FetchResult,
    MailboxListing,
    MailboxStatus,
    MessageMeta,
    QresyncParams,
    QuotaRoot,
    SelectResult,
)
from bridge.imap.refusals import REFUSED
from bridge.imap.responses import (
    ListEntry,
    ObjectIds,
    atoms,
    build_listings,
    collect_fetches,
    copied_uids,
    fetch_uid_and_flags,
    format_sequence_set,
    ordered_sequence,
    parse_esearch,
    parse_list,
    parse_myrights,
    parse_namespace_delimiter,
    parse_quota,
    parse_quotaroot,
    parse_search,
    parse_sequence_set,
    parse_status,
    parse_vanished,
    select_result,
    sequence_set_covers,
)
from bridge.imap.session import (
    Session,
    UpstreamConfig,
    dovecot_greeting,
    open_session,
    shutdown_quietly,
)
from bridge.imap.wire import Reply, Untagged

__all__ = [
    "FetchResult",
    "ImapConnection",
    "MailboxListing",
    "MailboxStatus",
    "MessageMeta",
    "QresyncParams",
    "SelectResult",
    "UpstreamConfig",
]

log = logging.getLogger("bridge.imap")

P = ParamSpec("P")
R = TypeVar("R")

_SEQUENCE_SET = re.compile(r"(\d+|\*)(:(\d+|\*))?(,(\d+|\*)(:(\d+|\*))?)*")
_FETCH_ITEM = re.compile(r"[\x20-\x7e]+")
_BASE_STATUS_ITEMS = ("MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY")
LOGOUT_TIMEOUT = 5.0
APPEND_CHUNK = 1 << 20
# Refusals that say "not now" or "not this message" (RFC 5530): never an extension's fault.
_PASSING_CODES = {"UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG", "EXPUNGEISSUED"}
_NOTIFY_SET = (
    b"NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"
)


def _guarded(method: Callable[P, R]) -> Callable[P, R]:
    """A response bridge cannot read leaves the session in an unknown state: mark it broken."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except UpstreamUnavailable:
            connection = args[0]
            assert isinstance(connection, ImapConnection)
            connection._wire.broken = True
            raise

    return wrapper


class ImapConnection:
    """A logged-in session. Not thread-safe: the pool lends it to one thread at a time."""

    def __init__(self, session: Session, config: UpstreamConfig) -> None:
        self._client = session.client
        self._wire = session.wire
        self._config = config
        self.greeting = session.greeting
        self.capabilities = session.capabilities
        self.enabled = session.enabled
        self.object_ids = session.object_ids
        self.selected: str | None = None
        self._selected_readonly = True
        # What this session has been told about the selected folder since it opened it.
        self.view: FolderView | None = None
        self._wire.observer = self._observe
        # Folder ids asked for alone (ObjectIds.status_item_alone), by name and UIDVALIDITY:
        # a folder keeps its id for good, a renamed or re-created one is asked again.
        self._folder_ids: dict[tuple[str, int], str] = {}
        self._delimiter: str | None = None
        # The command count after a NOOP with a folder open, and the statuses of a
        # LIST-STATUS sent right after it with the count after the listing's last command
        # (``_listed_status``).
        self._refreshed_at = -1
        self._listed: tuple[int, dict[str, MailboxStatus]] | None = None

    @classmethod
    def open(cls, config: UpstreamConfig, username: str, password: str) -> ImapConnection:
        """Connect, TLS as configured, authenticate, ENABLE QRESYNC/CONDSTORE if offered.
        AuthFailed if the credentials are refused, UpstreamUnavailable for anything else."""
        return cls(open_session(config, username, password), config)

    # -- state ------------------------------------------------------------------------------

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    @property
    def broken(self) -> bool:
        """True once the session is unusable; the pool then closes it instead of reusing."""
        return self._wire.broken

    @broken.setter
    def broken(self, value: bool) -> None:
        if not value and self._wire.broken:
            raise ValueError("a broken connection cannot be mended")
        self._wire.broken = value

    @property
    def command_count(self) -> int:
        return self._wire.command_count

    @property
    def commands(self) -> list[str]:
        """Names of the last commands sent (never their arguments)."""
        return list(self._wire.commands)

    @property
    def modseq(self) -> bool:
        """Whether mod-sequences may be used (CONDSTORE or QRESYNC advertised)."""
        return "CONDSTORE" in self.capabilities or "QRESYNC" in self.capabilities

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def delimiter(self) -> str:
        """The personal namespace's hierarchy delimiter ("" for a flat namespace)."""
        if self._delimiter is None:
            self._delimiter = self._find_delimiter()
        return self._delimiter

    @_guarded
    def _find_delimiter(self) -> str:
        if "NAMESPACE" in self.capabilities:
            reply = self._wire.run(b"NAMESPACE").check()
            for response in reply.of("NAMESPACE"):
                found = parse_namespace_delimiter(response)
                if found is not None:
                    return found
        reply = self._wire.run(b'LIST "" ""').check()
        for response in reply.of("LIST"):
            return parse_list(response).delimiter or ""
        return ""

    # -- extensions the server advertised but refuses ---------------------------------------

    def with_extension(
        self,
        extension: str,
        extended: Callable[[], R],
        plain: Callable[[], R],
        *,
        no_refuses: bool = False,
    ) -> R:
        """The work done with ``extension`` while this upstream offers it, else the plain way.

        A server may advertise what it does not serve. A BAD to the extended command (and,
        with ``no_refuses``, a NO: for reads, where doing the work again costs nothing),
        unless its code says "not now", sends the work the plain way; if that succeeds,
        the extension is dropped for this upstream for the life of the process
        (``refusals``) and logged once. If the plain way fails too, the fault was not the
        extension's: that failure is raised."""
        if not self._offers(extension):
            return plain()
        try:
            return extended()
        except CommandFailed as exc:
            refused = exc.status == "BAD" or (no_refuses and exc.status == "NO")
            if not refused or exc.code in _PASSING_CODES:
                raise
            refusal = exc
        result = plain()
        self._drop(extension, refusal)
        return result

    def _offers(self, extension: str) -> bool:
        ids = self.object_ids
        return extension in self.capabilities or (ids is not None and ids.extension == extension)

    def _drop(self, extension: str, refusal: CommandFailed) -> None:
        self.capabilities = self.capabilities - {extension}
        if self.object_ids is not None and self.object_ids.extension == extension:
            self.object_ids = self._fallback_ids()
        config = self._config
        if REFUSED.add(config.host, config.port, extension):
            log.warning("upstream %s:%d advertises %s but refused it (%s); working without it",
                        config.host, config.port, extension, refusal)  # fmt: skip

    def _fallback_ids(self) -> ObjectIds | None:
        """The ids to use once the current kind is refused: Dovecot's X-GUID on a Dovecot."""
        refused = REFUSED.of(self._config.host, self._config.port)
        if (
            self.object_ids is not ObjectIds.DOVECOT
            and ObjectIds.DOVECOT.extension not in refused
            and dovecot_greeting(self.greeting)
        ):
            return ObjectIds.DOVECOT
        return None

    def _with_ids(self, run: Callable[[ObjectIds | None], R]) -> R:
        """Run a command that asks for object ids; refused, with the next-best kind."""
        ids = self.object_ids
        if ids is None:
            return run(None)
        fallback = self._fallback_ids()
        return self.with_extension(ids.extension, lambda: run(ids), lambda: run(fallback))

    # -- folders ----------------------------------------------------------------------------

    @property
    def _guid_alone(self) -> bool:
        return self.object_ids is not None and self.object_ids.status_item_alone

    def _status_items(self, ids: ObjectIds | None) -> list[str]:
        items = list(_BASE_STATUS_ITEMS)
        if self.modseq:
            items.append("HIGHESTMODSEQ")
        if ids is not None and ids.status_item and not ids.status_item_alone:
            items.append(ids.status_item)
        return items

    def _add_guids(
        self, statuses: dict[str, MailboxStatus], list_status: bool
    ) -> dict[str, MailboxStatus]:
        """The folder ids of a server that must be asked for them alone: from what this
        connection learnt, the rest by one LIST-STATUS (or a STATUS each) of the id only.
        Other servers' ids came with the statuses already."""
        if not self._guid_alone:
            return statuses
        missing = [n for n, s in statuses.items() if (n, s.uidvalidity) not in self._folder_ids]
        if missing:
            found = self._with_ids(lambda ids: self._ids_alone(ids, missing, list_status))
            for name in missing:
                guid = found[name].guid if name in found else None
                if guid is not None:
                    self._folder_ids[(name, statuses[name].uidvalidity)] = guid
        return {
            name: msgspec.structs.replace(
                status, guid=self._folder_ids.get((name, status.uidvalidity))
            )
            for name, status in statuses.items()
        }

    def _ids_alone(
        self, ids: ObjectIds | None, names: Sequence[str], list_status: bool
    ) -> dict[str, MailboxStatus]:
        """STATUS of ``ids``' folder id item only, for ``names``: by one LIST-STATUS for
        several, else a STATUS each (a folder gone meanwhile gets none). A BAD raises, for
        ``with_extension`` to judge."""
        item = ids.status_item if ids is not None else None
        if item is None:
            return {}
        if list_status and len(names) > 1:
            reply = self._wire.run(f'LIST "" "*" RETURN (STATUS ({item}))'.encode("ascii"))
            return dict(parse_status(response) for response in reply.check().of("STATUS"))
        found: dict[str, MailboxStatus] = {}
        for name in names:
            command = b"STATUS " + quoting.mailbox_name(name) + f" ({item})".encode("ascii")
            reply = self._wire.run(command)
            if reply.status == "BAD":
                reply.check()
            found.update(parse_status(response) for response in reply.of("STATUS"))
        return found

    @_guarded
    def list_mailboxes(self) -> list[MailboxListing]:
        """Every folder, with STATUS and subscription. One round trip with LIST-EXTENDED and
        LIST-STATUS (and one more for MAILBOXID while this connection has not seen a folder,
        see _add_guids); else LIST (+ LSUB without LIST-EXTENDED) and the STATUS of every
        folder, pipelined."""

        def extended() -> list[MailboxListing]:
            return self.with_extension(
                "LIST-STATUS", lambda: self._list_extended(True),
                lambda: self._list_extended(False), no_refuses=True,
            )  # fmt: skip

        return self.with_extension("LIST-EXTENDED", extended, self._list_plain, no_refuses=True)

    def _list_extended(self, with_status: bool) -> list[MailboxListing]:
        options = ["SUBSCRIBED", "CHILDREN"]
        if "SPECIAL-USE" in self.capabilities:
            options.append("SPECIAL-USE")

        def run(ids: ObjectIds | None) -> list[Untagged]:
            status = f"STATUS ({' '.join(self._status_items(ids))})"
            returns = [*options, status] if with_status else options
            command = b'LIST "" "*" RETURN (' + " ".join(returns).encode("ascii") + b")"
            return list(self._wire.run(command).check().untagged)

        refreshed = self.selected is not None and self._refreshed_at == self.command_count
        untagged = self._with_ids(run) if with_status else run(None)
        entries = [parse_list(u) for u in untagged if u.kind == "LIST"]
        statuses = dict(parse_status(u) for u in untagged if u.kind == "STATUS")
        if not with_status:
            statuses = self._statuses(entries)
        statuses = self._add_guids(statuses, list_status=with_status)
        if with_status and refreshed:
            # The listing's own commands (a second LIST for folder ids, on Cyrus) select
            # nothing: its STATUS stands for the open folder until the next command.
            self._listed = (self.command_count, statuses)
        return build_listings(entries, statuses)

    def _list_plain(self) -> list[MailboxListing]:
        entries = [parse_list(u) for u in self._wire.run(b'LIST "" "*"').check().of("LIST")]
        lsub = self._wire.run(b'LSUB "" "*"').check()
        subscribed = [parse_list(response).name for response in lsub.of("LSUB")]
        statuses = self._add_guids(self._statuses(entries), list_status=False)
        return build_listings(entries, statuses, subscribed)

    def _statuses(self, entries: Sequence[ListEntry]) -> dict[str, MailboxStatus]:
        """STATUS of every selectable folder in ``entries``, pipelined: one round trip for
        them all rather than one each (50 folders on GNU imap4d, whose every round trip
        waited for a delayed ACK: 2.2 s one by one, 45 ms together).
        A folder gone since LIST, or not ours to read, is left out (listed without one)."""
        names = [e.name for e in entries if not e.attributes & {"\\noselect", "\\nonexistent"}]

        def run(ids: ObjectIds | None) -> list[Reply]:
            items = self._status_items(ids)
            suffix = f" ({' '.join(items)})".encode("ascii")
            commands = [b"STATUS " + quoting.mailbox_name(name) + suffix for name in names]
            replies = self._wire.pipeline(commands)
            if ids is not None and ids.status_item in items:
                # A BAD with the id item asked: with_extension retries without it.
                for reply in replies:
                    if reply.status == "BAD":
                        reply.check()
            return replies

        replies = self._with_ids(run)
        # Each STATUS response names its folder: read them from every reply, whichever
        # command they arrived under.
        return dict(parse_status(response) for reply in replies for response in reply.of("STATUS"))

    @_guarded
    def status(self, name: str) -> MailboxStatus:
        """STATUS of a folder. Dovecot answers it for the folder this session has open from
        the session's view, so that one is brought up to date by a NOOP first."""
        if self.selected == name:
            self.noop()
        return self._status(name)

    def _status(self, name: str) -> MailboxStatus:
        quoted = quoting.mailbox_name(name)

        def run(ids: ObjectIds | None) -> list[Untagged]:
            items = f" ({' '.join(self._status_items(ids))})".encode("ascii")
            return self._wire.run(b"STATUS " + quoted + items).check().of("STATUS")

        responses = self._with_ids(run)
        if not responses:
            raise UpstreamUnavailable("STATUS answered without a STATUS response")
        status = parse_status(responses[-1])[1]
        return self._add_guids({name: status}, list_status=False)[name]

    @_guarded
    def myrights(self, name: str) -> str | None:
        def myrights() -> str | None:
            reply = self._wire.run(b"MYRIGHTS " + quoting.mailbox_name(name)).check()
            for response in reply.of("MYRIGHTS"):
                return parse_myrights(response)[1]
            return None

        # Without ACL the user owns every folder (None); a NO is about this folder.
        return self.with_extension("ACL", myrights, lambda: None)

    @_guarded
    def quota_roots(self, mailbox: str) -> list[QuotaRoot]:
        """The quota roots ``mailbox`` is subject to, with their resources, by GETQUOTAROOT
        (RFC 9208 §4.3; STORAGE in KiB). [] when the upstream does not advertise QUOTA."""
        command = b"GETQUOTAROOT " + quoting.mailbox_name(mailbox)
        return self.with_extension("QUOTA", lambda: self._quota_roots(command), list)

    def _quota_roots(self, command: bytes) -> list[QuotaRoot]:
        reply = self._wire.run(command).check()
        names: list[str] = []
        for response in reply.of("QUOTAROOT"):
            names.extend(parse_quotaroot(response)[1])
        resources = dict(parse_quota(response) for response in reply.of("QUOTA"))
        # Roots in the order QUOTAROOT named them; a QUOTA for a root it did not name counts
        # too (some servers send only QUOTA).
        for name in resources:
            if name not in names:
                names.append(name)
        return [
            QuotaRoot(name=name, resources=tuple(resources.get(name, ())))
            for name in dict.fromkeys(names)
        ]

    @_guarded
    def create(self, name: str, special_use: str | None = None) -> None:
        """CREATE; with CREATE-SPECIAL-USE the folder gets ``special_use`` (e.g. "\\Drafts").
        Without it the folder is created plain: check ``has("CREATE-SPECIAL-USE")`` first if
        the use matters."""
        command = b"CREATE " + quoting.mailbox_name(name)
        if special_use is not None:
            use = quoting.special_use(special_use)
            if "CREATE-SPECIAL-USE" in self.capabilities:
                command += b" (USE (" + use + b"))"
        self._wire.run(command).check()

    @_guarded
    def rename(self, old: str, new: str) -> None:
        command = b"RENAME " + quoting.mailbox_name(old) + b" " + quoting.mailbox_name(new)
        self._leave_mailbox(old)
        self._wire.run(command).check()

    @_guarded
    def delete(self, name: str) -> None:
        command = b"DELETE " + quoting.mailbox_name(name)
        self._leave_mailbox(name)
        self._wire.run(command).check()

    def _leave_mailbox(self, name: str) -> None:
        """Before renaming or deleting ``name``. Dovecot ends a session whose selected
        mailbox (or an ancestor) is renamed or deleted: leave it first, if the server lets
        us. Any other folder stays open: the sync after the change asks an open INBOX for
        news with a NOOP, where a SELECT of a big one costs Dovecot a directory scan."""
        if self.selected is None:
            return
        folder, changed = self.selected.casefold(), name.casefold()
        # The delimiter (a NAMESPACE the first time) only where the names could nest.
        if folder != changed and not (
            folder.startswith(changed)
            and self.delimiter
            and folder.startswith(changed + self.delimiter.casefold())
        ):
            return
        with contextlib.suppress(CommandFailed):
            self.unselect()

    @_guarded
    def subscribe(self, name: str) -> None:
        self._wire.run(b"SUBSCRIBE " + quoting.mailbox_name(name)).check()

    @_guarded
    def unsubscribe(self, name: str) -> None:
        self._wire.run(b"UNSUBSCRIBE " + quoting.mailbox_name(name)).check()

    # -- messages ---------------------------------------------------------------------------

    @_guarded
    def select(
        self,
        name: str,
        *,
        readonly: bool = True,
        qresync: QresyncParams | None = None,
        fresh: bool = False,
    ) -> SelectResult:
        """SELECT (EXAMINE when ``readonly``), or for the folder open already what a SELECT
        would say (``_reopened``); ``fresh``: that one brought up to date by a NOOP even
        where this session's LIST-STATUS gave its status (Dovecot answers a UID FETCH from
        the session's view, which may not have heard of another session's expunge yet)."""
        if qresync is not None and not self.qresync:
            raise ValueError("QRESYNC is not enabled on this connection")
        if self.selected == name and (readonly or self.selected_writable):
            # Open read-write already (a write opened it) reads as well: every FETCH of
            # a body PEEKs, so nothing is marked \Seen by reading.
            return self._reopened(name, qresync, fresh)
        command = (b"EXAMINE " if readonly else b"SELECT ") + quoting.mailbox_name(name)
        if qresync is not None:
            known = ""
            if qresync.known_uids is not None:
                _check_sequence_set(qresync.known_uids)
                known = f" {qresync.known_uids}"
            params = f" (QRESYNC ({int(qresync.uidvalidity)} {int(qresync.modseq)}{known}))"
            command += params.encode("ascii")
        elif "CONDSTORE" in self.capabilities and "CONDSTORE" not in self.enabled:
            command += b" (CONDSTORE)"  # no ENABLE on this server: switch it on per SELECT
        # A SELECT, even a failed one, leaves the previous mailbox (RFC 3501 §6.3.1).
        self.selected = None
        self.view = None
        reply = self._wire.run(command).check()
        result = select_result(name, reply, readonly)
        self.selected = name
        self.view = FolderView(name, result.uidvalidity, result.exists)
        self._selected_readonly = result.readonly
        if not self.modseq and result.highestmodseq is not None:
            result = msgspec.structs.replace(result, highestmodseq=None)
        return result

    def _reopened(self, name: str, qresync: QresyncParams | None, fresh: bool) -> SelectResult:
        """What a SELECT would say of the folder this session has open already (INBOX is
        kept open between requests): a NOOP brings the session's view up to date, STATUS
        reads it, and with QRESYNC one FETCH names what changed since. A new SELECT would
        cost Dovecot a scan of a big Maildir (~125 ms at 50,000 messages)."""
        status = self._listed_status(name)
        if status is None or fresh:
            self.noop()
        if status is None:
            status = self._status(name)
        vanished: frozenset[int] = frozenset()
        changed: dict[int, MessageMeta] = {}
        if qresync is not None and qresync.uidvalidity == status.uidvalidity:
            told = self.view.take_vanished() if self.view is not None else set()
            found = self.fetch_meta("1:*", changedsince=qresync.modseq, vanished=True)
            vanished, changed = found.vanished | told, found.messages
            if qresync.known_uids is not None:  # as QRESYNC limits VANISHED to them
                vanished &= frozenset(parse_sequence_set(qresync.known_uids))
        return SelectResult(
            name=name,
            uidvalidity=status.uidvalidity,
            uidnext=status.uidnext,
            exists=status.messages,
            highestmodseq=status.highestmodseq if self.modseq else None,
            permanent_flags=frozenset(),
            readonly=not self.selected_writable,
            vanished=vanished,
            changed=changed,
        )

    @_guarded
    def fetch_meta(
        self,
        uids: str,
        *,
        changedsince: int | None = None,
        vanished: bool = False,
        extra: Sequence[str] = (),
    ) -> FetchResult:
        """UID FETCH of flags, mod-sequence and object ids, plus ``extra`` items (which come
        back in MessageMeta.raw). ``uids`` is a UID sequence set such as "1:*"."""
        _check_sequence_set(uids)
        modifiers = ""
        if vanished and (changedsince is None or not self.qresync):
            raise ValueError("VANISHED needs CHANGEDSINCE and QRESYNC")
        if changedsince is not None:
            if not self.modseq:
                raise ValueError("CHANGEDSINCE needs CONDSTORE")
            modifiers = f" (CHANGEDSINCE {int(changedsince)}{' VANISHED' if vanished else ''})"

        def run(ids: ObjectIds | None) -> Reply:
            command = f"UID FETCH {uids} ({' '.join(self._meta_items(ids, extra))}){modifiers}"
            return self._wire.run(command.encode("ascii")).check()

        reply = self._with_ids(run)
        gone: set[int] = set()
        for response in reply.of("VANISHED"):
            gone.update(parse_vanished(response)[1])
        # Only the UIDs asked for: another session's flag change comes as an unsolicited
        # FETCH (FLAGS) of whatever message it touched, without the items asked for. "*"
        # is the highest UID, which "n:*" names even below n (RFC 3501 §6.4.8).
        fetched = collect_fetches(reply.untagged)
        if uids != "1:*":  # which asks for every message there is
            asked = sequence_set_covers(uids)
            highest = max(fetched) if "*" in uids and fetched else None
            fetched = {uid: m for uid, m in fetched.items() if asked(uid) or uid == highest}
        messages = {uid: meta for uid, meta in fetched.items() if uid not in gone}
        return FetchResult(messages=messages, vanished=frozenset(gone))

    def meta_items(self, extra: Sequence[str] = ()) -> list[str]:
        """The items ``fetch_meta`` asks for: UID, flags, mod-sequence, object ids, extra."""
        return self._meta_items(self.object_ids, extra)

    def _meta_items(self, ids: ObjectIds | None, extra: Sequence[str]) -> list[str]:
        items = ["UID", "FLAGS"]
        if self.modseq:
            items.append("MODSEQ")
        if ids is not None:
            items.extend(ids.fetch_items)
        for item in extra:
            if not _FETCH_ITEM.fullmatch(item):
                raise ValueError("FETCH items must be printable ASCII")
            items.append(item)
        return items

    @_guarded
    def search_all_uids(self) -> list[int]:
        """Every UID in the selected mailbox: the expunge check when QRESYNC is missing.

        This is the session's view: an expunge by another client shows once the server has
        told this session (SELECT, NOOP, ...). Dovecot does not do so during UID SEARCH."""
        return self.search(b"ALL")

    @_guarded
    def search(self, criteria: bytes, *, utf8: bool = False) -> list[int]:
        """UID SEARCH in the selected mailbox. ``criteria`` must come from the search
        planner, which builds every client string through quoting.py."""
        arguments = (b"CHARSET UTF-8 " if utf8 else b"") + criteria

        def esearch() -> list[int]:
            reply = self._wire.run(b"UID SEARCH RETURN (ALL) " + arguments).check()
            uids: set[int] = set()
            for response in reply.of("ESEARCH"):
                found = parse_esearch(response)[2].get("ALL")
                if found is not None:
                    uids.update(parse_sequence_set(found))
            return sorted(uids)

        def search() -> list[int]:
            reply = self._wire.run(b"UID SEARCH " + arguments).check()
            return sorted({uid for found in reply.of("SEARCH") for uid in parse_search(found)})

        return self.with_extension("ESEARCH", esearch, search, no_refuses=True)

    @_guarded
    def sort(self, keys: bytes, criteria: bytes = b"ALL", *, utf8: bool = False) -> list[int]:
        """UID SORT (RFC 5256) of the selected mailbox: UIDs in the order the keys give."""
        if "SORT" not in self.capabilities:
            raise ValueError("the upstream has no SORT")
        charset = b"UTF-8" if utf8 else b"US-ASCII"
        reply = self._wire.run(b"UID SORT (" + keys + b") " + charset + b" " + criteria).check()
        return [
            uid for response in reply.of("SORT") for uid in atoms(response, "SORT")
            if isinstance(uid, int)
        ]  # fmt: skip

    # -- writes to the selected mailbox (opened read-write) -------------------------------

    @_guarded
    def store_flags(self, uids: str, flags: Sequence[str], *, add: bool) -> None:
        """UID STORE +FLAGS.SILENT / -FLAGS.SILENT; keywords go through quoting.py."""
        _check_sequence_set(uids)
        if not flags:
            return
        names = b" ".join(_flag_bytes(flag) for flag in flags)
        action = b" +FLAGS.SILENT (" if add else b" -FLAGS.SILENT ("
        self._wire.run(b"UID STORE " + uids.encode("ascii") + action + names + b")").check()

    @_guarded
    def change_flags(self, uids: str, add: Sequence[str], remove: Sequence[str]) -> set[int]:
        """UID STORE +FLAGS ``add`` and -FLAGS ``remove``, answered: the UIDs of ``uids``
        still in the folder, which the STOREs reached. A UID STORE of a message no longer
        there (another client moved or expunged it) is OK in IMAP and changes nothing; only
        a missing FETCH tells. Keywords go through quoting.py."""
        return self._stored(uids, [
            (b"+FLAGS", b" ".join(_flag_bytes(flag) for flag in add)),
            (b"-FLAGS", b" ".join(_flag_bytes(flag) for flag in remove)),
        ])  # fmt: skip

    @_guarded
    def change_labels(self, uids: str, add: Sequence[str], remove: Sequence[str]) -> set[int]:
        """UID STORE +X-GM-LABELS / -X-GM-LABELS (Gmail's IMAP extensions), answered as
        change_flags: system labels as atoms, user labels by name, through quoting.py."""
        return self._stored(uids, [
            (b"+X-GM-LABELS", b" ".join(quoting.gmail_label(label) for label in add)),
            (b"-X-GM-LABELS", b" ".join(quoting.gmail_label(label) for label in remove)),
        ])  # fmt: skip

    def _stored(self, uids: str, changes: list[tuple[bytes, bytes]]) -> set[int]:
        """Each non-empty (item, values) as a UID STORE of ``uids``; those the answers
        named, and of the rest those still in the folder (Dovecot and Cyrus answer nothing
        for a message a STORE left as it was)."""
        changes = [(item, values) for item, values in changes if values]
        asked = self._named_safely(uids) if changes else set()
        if not asked:
            return set()
        named = format_sequence_set(sorted(asked)).encode("ascii")
        answered: set[int | None] = set()
        for item, values in changes:
            command = b"UID STORE " + named + b" " + item + b" (" + values + b")"
            answered |= _fetched_uids(self._wire.run(command).check())
        reached = asked.intersection(answered)
        if reached != asked:
            reached |= self._still_there(asked - reached)
        return reached

    def _named_safely(self, uids: str) -> set[int]:
        """The UIDs of a sequence set that a write may name. On a server without UIDPLUS
        only those still in the folder: GNU imap4d (which has none) reads a UID above the
        folder's highest as its last message, so a write to one that another client has
        just expunged would change another message."""
        _check_sequence_set(uids)
        asked = set(parse_sequence_set(uids))
        return asked if "UIDPLUS" in self.capabilities else self._still_there(asked)

    def _still_there(self, uids: set[int]) -> set[int]:
        """Those of ``uids`` in the selected folder now (UID FETCH); none where the server
        refuses the set (GNU imap4d answers BAD for a gone UID below the highest)."""
        command = b"UID FETCH " + format_sequence_set(sorted(uids)).encode("ascii") + b" (UID)"
        try:
            return uids.intersection(_fetched_uids(self._wire.run(command).check()))
        except CommandFailed:
            return set()

    @_guarded
    def copy(self, uids: str, destination: str) -> list[int]:
        """UID COPY; the UIDs the copies got, from COPYUID (RFC 4315 §3), or empty."""
        named = self._named_safely(uids)
        if not named:
            return []
        command = b"UID COPY " + format_sequence_set(sorted(named)).encode("ascii")
        return _copied(self._wire.run(command + b" " + quoting.mailbox_name(destination)).check())

    @_guarded
    def move(self, uids: str, destination: str) -> list[int]:
        """UID MOVE (RFC 6851); callers check has("MOVE") and fall back to copy+expunge.
        The UIDs the messages got in ``destination``, from COPYUID (RFC 4315 §3); empty
        when the server sent none."""
        _check_sequence_set(uids)
        if "MOVE" not in self.capabilities:
            raise ValueError("the upstream has no MOVE")
        command = b"UID MOVE " + uids.encode("ascii") + b" " + quoting.mailbox_name(destination)

        def moved() -> list[int]:
            return _copied(self._wire.run(command).check())

        def copy_and_expunge() -> list[int]:
            # A BAD moved nothing: COPY, then expunge exactly these messages.
            copied = self.copy(uids, destination)
            self.expunge_uids(uids)
            return copied

        return self.with_extension("MOVE", moved, copy_and_expunge)

    @_guarded
    def expunge_uids(self, uids: str) -> set[int]:
        """Remove exactly these messages of the selected (read-write) folder: \\Deleted,
        then UID EXPUNGE (UIDPLUS, RFC 4315 §2.1); without UIDPLUS, see _expunge_exactly.
        A message of ``uids`` no longer in the folder is not an error: it is gone already
        (moved or expunged by another client); the UIDs that were there are returned.
        CommandFailed if one of them is still there afterwards."""
        if "UIDPLUS" not in self.capabilities:
            _check_sequence_set(uids)
            return self._expunge_exactly(set(parse_sequence_set(uids)))
        present = self.change_flags(uids, ["\\Deleted"], [])
        self._wire.run(b"UID EXPUNGE " + uids.encode("ascii")).check()
        return present

    def _expunge_exactly(self, ours: set[int]) -> set[int]:
        """A bare EXPUNGE removes every \\Deleted message of the folder, other clients'
        pending deletions too (RFC 4315 §1 says why UID EXPUNGE exists). So the others'
        marks are lifted around it: UID SEARCH DELETED finds them, -FLAGS takes their mark
        off, ours are marked by their numbers in a FETCH 1:* (UID), EXPUNGE, +FLAGS puts
        the others' back (also when EXPUNGE fails; a failure to put them back is logged
        with the UIDs). What went is read from the EXPUNGE responses against that FETCH
        (from VANISHED, with QRESYNC), and anything but exactly ours is logged. Returns
        ours that were there.

        The residual race: a message another client marks \\Deleted between our SEARCH
        and our EXPUNGE goes with ours, earlier than that client chose; a client that
        EXPUNGEs, or reads flags, while the marks are off sees the others' messages
        unmarked (its EXPUNGE leaves them, and they come back \\Deleted after). The
        window is three round trips."""
        others = sorted(set(self.search(b"DELETED")) - ours)
        others_set = format_sequence_set(others) if others else None
        try:
            if others_set is not None:
                self.store_flags(others_set, ["\\Deleted"], add=False)
            numbered = self._numbered_uids()
            present = ours.intersection(numbered)
            if not present:
                return present  # gone already
            # Marked by number, not UID: GNU imap4d reads a UID above the folder's highest
            # (ours, expunged by another client since) as its last message. The numbers
            # hold: no EXPUNGE may come during FETCH or STORE (RFC 3501 §7.4.1).
            marked = [number for number, uid in enumerate(numbered, 1) if uid in present]
            command = b"STORE " + format_sequence_set(marked).encode("ascii")
            self._wire.run(command + b" +FLAGS.SILENT (\\Deleted)").check()
            reply = self._wire.run(b"EXPUNGE").check()
        finally:
            if others_set is not None:
                self._mark_again(others_set)
        numbers = [r.number for r in reply.of("EXPUNGE") if r.number is not None]
        vanished = [uid for r in reply.of("VANISHED") for uid in parse_vanished(r)[1]]
        outcome = expunge_outcome(numbered, numbers, present, vanished)
        if outcome.unexpected or outcome.unknown_numbers:
            log.warning(
                "EXPUNGE without UIDPLUS in %s removed more than ours: UIDs %s and %d "
                "message(s) newer than its count, marked \\Deleted or expunged by another "
                "client meanwhile",
                self.selected, ",".join(map(str, outcome.unexpected)) or "none",
                outcome.unknown_numbers,
            )  # fmt: skip
        if outcome.kept:
            raise CommandFailed("EXPUNGE", "NO", None, "messages still there after EXPUNGE")
        return present

    def _numbered_uids(self) -> list[int]:
        """The UIDs of the selected folder by sequence number - 1. A FETCH, not a UID FETCH: the
        server may not send EXPUNGE during it (RFC 3501 §7.4.1), so the numbers hold."""
        if self.view is not None and self.view.exists == 0:
            return []  # "1:*" names no message in an empty folder
        reply = self._wire.run(b"FETCH 1:* (UID)").check()
        numbered: dict[int, int] = {}
        for response in reply.of("FETCH"):
            uid = fetch_uid_and_flags(response)[0]
            if uid is not None and response.number is not None:
                numbered[response.number] = uid
        try:
            return uids_by_number(numbered)
        except ValueError as exc:
            raise UpstreamUnavailable("FETCH 1:* (UID) left messages out") from exc

    def _mark_again(self, others: str) -> None:
        try:
            self.store_flags(others, ["\\Deleted"], add=True)
        except (CommandFailed, UpstreamUnavailable) as exc:
            if isinstance(exc, UpstreamUnavailable):
                self._wire.broken = True
            log.warning(
                "could not mark UIDs %s of %s \\Deleted again after EXPUNGE (%s): another "
                "client's pending deletions are lost", others, self.selected, exc,
            )  # fmt: skip

    @_guarded
    def append(
        self,
        mailbox: str,
        message: bytes | BinaryIO,
        flags: Sequence[str],
        when: datetime | None,
        *,
        chunk_size: int = APPEND_CHUNK,
    ) -> tuple[int, int] | None:
        """APPEND; (UIDVALIDITY, UID) of the new message from APPENDUID (UIDPLUS), else
        None. The message travels as a literal, never as command text; a file is sent
        from its start in pieces of ``chunk_size``."""
        command = b"APPEND " + quoting.mailbox_name(mailbox)
        command += b" (" + b" ".join(_flag_bytes(flag) for flag in flags) + b")"
        if when is not None:
            command += b' "' + _internal_date(when) + b'"'
        if isinstance(message, bytes):
            reply = self._wire.run(command + b" " + quoting.literal(message)).check()
        else:
            size = message.seek(0, io.SEEK_END)
            message.seek(0)
            reply = self._wire.run_with_literal(command, message, size, chunk_size).check()
        for code, args in reply.codes():
            if code == "APPENDUID" and args:
                numbers = args.split()
                if len(numbers) >= 2 and numbers[0].isdigit() and numbers[1].isdigit():
                    return int(numbers[0]), int(numbers[1])
        return None

    @property
    def append_limit(self) -> int | None:
        """The largest message the server takes (APPENDLIMIT=n, RFC 7889), if it says."""
        for capability in self.capabilities:
            name, _, value = capability.partition("=")
            if name == "APPENDLIMIT" and value.isdigit():
                return int(value)
        return None

    @property
    def selected_writable(self) -> bool:
        return self.selected is not None and not self._selected_readonly

    def can_sort_partial(self) -> bool:
        return "ESORT" in self.capabilities and bool(
            {"CONTEXT=SORT", "CONTEXT=SEARCH"} & self.capabilities
        )

    @_guarded
    def sort_partial(self, keys: bytes, first: int, last: int) -> list[int]:
        """Positions ``first``..``last`` (1-based) of UID SORT of the whole mailbox, by
        ESORT's PARTIAL (RFC 5267): a page without the other UIDs on the wire."""
        if not self.can_sort_partial():
            raise ValueError("the upstream has no ESORT with PARTIAL")
        command = f"UID SORT RETURN (PARTIAL {int(first)}:{int(last)}) (".encode()

        def partial() -> list[int]:
            reply = self._wire.run(command + keys + b") US-ASCII ALL").check()
            for response in reply.of("ESEARCH"):
                found = parse_esearch(response)[2].get("PARTIAL")
                if isinstance(found, tuple) and len(found) == 2 and found[1] is not None:
                    return ordered_sequence(found[1])
            return []

        def whole() -> list[int]:
            return self.sort(keys)[int(first) - 1 : int(last)]

        return self.with_extension("ESORT", partial, whole, no_refuses=True)

    @_guarded
    def unselect(self) -> None:
        """Leave the selected mailbox, if any, without expunging anything.

        UNSELECT where offered, CLOSE for a mailbox opened read-only (which expunges
        nothing); a read-write mailbox on a server without UNSELECT stays selected, since
        CLOSE would expunge its \\Deleted messages."""
        if self.selected is None:
            return
        if "UNSELECT" in self.capabilities:
            self._wire.run(b"UNSELECT").check()
        elif self._selected_readonly:
            self._wire.run(b"CLOSE").check()
        else:
            return
        self.selected = None
        self.view = None

    # -- session ----------------------------------------------------------------------------

    def _observe(self, responses: Sequence[Untagged]) -> None:
        if self.view is not None:
            self.view.observe(responses)

    @_guarded
    def noop(self) -> None:
        self._wire.run(b"NOOP").check()
        self._refreshed_at = self.command_count

    def _listed_status(self, name: str) -> MailboxStatus | None:
        """The open folder's STATUS as the last command, a LIST-STATUS sent right after a
        NOOP, gave it: what a NOOP and a STATUS now would say, short of a change in the
        moment between (a sync's LIST-STATUS followed by its folder's reopening: two round
        trips saved). None when any other command came between."""
        listed = self._listed
        if listed is None or listed[0] != self.command_count or self.selected != name:
            return None
        return listed[1].get(name)

    # -- watching ---------------------------------------------------------------------------

    @_guarded
    def notify_changes(self) -> bool:
        """Ask for news of every folder of the user's own (NOTIFY, RFC 5465): STATUS and LIST
        responses then arrive while the session idles with nothing selected. Without
        CONDSTORE enabled a flag change outside the selected folder goes unreported
        (RFC 5465 §5.2), so callers still sweep then. False if the server refuses (Dovecot
        without its mailbox list index answers NO [NOTIFICATIONOVERFLOW]): watch another way."""

        def notify() -> bool:
            self._wire.run(_NOTIFY_SET).check()
            return True

        return self.with_extension("NOTIFY", notify, lambda: False, no_refuses=True)

    @_guarded
    def idle(self, timeout: float, wake_fd: int | None = None) -> list[Untagged]:
        """IDLE until the server says something, ``timeout`` seconds pass or ``wake_fd``
        turns readable; then DONE. Returns what the server said meanwhile."""
        fds = [self._client.socket().fileno()]
        if wake_fd is not None:
            fds.append(wake_fd)

        def wait() -> None:
            if not self._wire.transport.pending():
                _wait_readable(fds, timeout)

        return list(self._wire.idle(wait).check().untagged)

    def is_alive(self, *, probe: bool = False) -> bool:
        """False if the session is certainly gone. Without ``probe`` no round trip is made
        unless the server sent something unasked (a BYE, or EOF); with it, a NOOP decides."""
        if self.broken:
            return False
        try:
            sock = self._client.socket()
            if sock.fileno() < 0:
                return False
            readable = _wait_readable([sock.fileno()], 0)  # the server sent something unasked
        except (OSError, ValueError):
            return False
        if probe or readable:
            try:
                self.noop()
            except (UpstreamUnavailable, CommandFailed):
                return False
        return not self.broken

    def close(self) -> None:
        """LOGOUT and drop the socket. Never raises: the session is over either way."""
        if not self._wire.broken:
            # A failed goodbye changes nothing.
            with contextlib.suppress(Exception):
                self._client.socket().settimeout(min(self._config.timeout, LOGOUT_TIMEOUT))
                self._wire.run(b"LOGOUT")
        self._wire.broken = True
        shutdown_quietly(self._client)

    def __enter__(self) -> ImapConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "broken" if self.broken else "open"
        return f"<ImapConnection {self._config.host}:{self._config.port} {state}>"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _fetched_uids(reply: Reply) -> set[int | None]:
    return {fetch_uid_and_flags(response)[0] for response in reply.of("FETCH")}


def _copied(reply: Reply) -> list[int]:
    return next((copied_uids(args) for code, args in reply.codes() if code == "COPYUID"), [])


def _internal_date(when: datetime) -> bytes:
    """RFC 3501 date-time, with English month names whatever the locale."""
    offset = when.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    text = f"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} {when:%H:%M:%S} {zone}"
    return text.encode("ascii")


_SYSTEM_FLAGS = {"\\seen", "\\flagged", "\\answered", "\\draft", "\\deleted"}


def _flag_bytes(flag: str) -> bytes:
    if flag.lower() in _SYSTEM_FLAGS:
        return flag.encode("ascii")
    return quoting.atom_keyword(flag)


def _check_sequence_set(value: str) -> None:
    if not _SEQUENCE_SET.fullmatch(value):
        raise ValueError("not an IMAP sequence set")


def _wait_readable(fds: Sequence[int], timeout: float) -> bool:
    """Whether any of ``fds`` turns readable within ``timeout`` seconds; poll, as select()
    fails for fd >= 1024."""
    if not hasattr(select, "poll"):
        return bool(select.select(list(fds), [], [], timeout)[0])
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))
