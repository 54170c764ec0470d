"""Email/query and Email/queryChanges (RFC 8621 §4.4, §4.5).

Metadata conditions (mailboxes, dates, sizes, keywords, threads) and the receivedAt, size
and keyword sorts are evaluated in the cache's SQL (bridge.store.email_query): a page reads
its rows and a total counts in an index, never a load of the account. Text conditions go
to the upstream's SEARCH, one folder at a time, restricted to the UIDs of the candidates;
for from/to/cc/bcc/subject the cache's header index narrows those first
(bridge.mail.header_text). Header sorts use the upstream's SORT within one folder, and
sort keys the cache keeps (bridge.mail.header_sort) across folders. The common list view,
one folder by receivedAt, is a range of the cache's index.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from bridge.imap.gmail_search import raw_criteria
from bridge.imap.responses import ObjectIds
from bridge.imap.search import InvalidFilter, UnsupportedFilter, plan_search, tokens
from bridge.jmap import CallContext, MethodError, decode_args
from bridge.jmap.standard import QueryArgs, QueryChangesArgs
from bridge.mail.account import Account
from bridge.mail.common import (
    account_of,
    check_comparators,
    query_changes_response,
    query_response,
    since_value,
)
from bridge.mail.gmail_labels import label_views, upstream_folder
from bridge.mail.header_sort import make_sort_keys
from bridge.mail.header_text import INDEXED_FIELDS, INEXACT_BIT, token_word, words
from bridge.mail.sync import fetch_new, new_message, uid_set
from bridge.store import email_query as sql
from bridge.store.base import Store
from bridge.store.email_query import Clause, OrderKey
from bridge.store.journal import EMAIL
from bridge.store.records import MailboxRecord

METADATA_CONDITIONS = frozenset({
    "inMailbox", "inMailboxOtherThan", "before", "after", "minSize", "maxSize",
    "allInThreadHaveKeyword", "someInThreadHaveKeyword", "noneInThreadHaveKeyword",
    "hasKeyword", "notKeyword", "hasAttachment",
})  # fmt: skip
TEXT_CONDITIONS = frozenset({"text", "from", "to", "cc", "bcc", "subject", "body", "header"})
CACHE_SORTS = frozenset({"receivedAt", "size", "hasKeyword", "allInThreadHaveKeyword",
                         "someInThreadHaveKeyword"})  # fmt: skip
UPSTREAM_SORTS = {"sentAt": b"DATE", "from": b"DISPLAYFROM", "to": b"DISPLAYTO",
                  "subject": b"SUBJECT"}  # fmt: skip
KEYWORD_SORTS = frozenset({"hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword"})
# Conditions on an Email's own row, shaped by how many Emails meet them (sql.shaped).
ROW_CONDITIONS = frozenset({"minSize", "maxSize"})
# A SEARCH is restricted to the candidates' UIDs while their set is no longer than this.
MAX_UID_SET = 16 * 1024
# The most header-index matches a query that reads them twice (page and total) keeps in
# memory to find them once (about 50 bytes each, twice: the list and its JSON).
SHARED_MATCHES = 20_000


class EmailQueryArgs(QueryArgs, forbid_unknown_fields=True):
    collapseThreads: bool = False


class EmailQueryChangesArgs(QueryChangesArgs, forbid_unknown_fields=True):
    collapseThreads: bool = False


def _utc_date(value: Any, name: str) -> int:
    if not isinstance(value, str) or not value.endswith("Z"):
        raise MethodError("invalidArguments", f"{name} must be a UTCDate")
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError as exc:
        raise MethodError("invalidArguments", f"{name} must be a UTCDate") from exc


def _unsigned(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MethodError("invalidArguments", f"{name} must be an UnsignedInt")
    return value


def _keyword(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise MethodError("invalidArguments", f"{name} must be a keyword")
    return value.lower()


class FilterPlanner:
    """A JMAP filter as a SQL clause over the cache. What the cache cannot decide is
    resolved first into the set of Emails that satisfy it: text conditions by the
    upstream's SEARCH, hasAttachment from the summaries; both look only among the
    Emails that the other conditions of their FilterCondition leave."""

    def __init__(
        self,
        account: Account,
        has_attachment: Callable[[set[str]], dict[str, bool]],
        *,
        read_twice: bool = False,
    ):
        self.account = account
        self.has_attachment = has_attachment
        # The query is read twice (a page and its total): what the header index finds is
        # found once, not once for each.
        self.read_twice = read_twice
        # The top FilterCondition's clause without its inMailbox, for a query run over
        # that folder's rows (bridge.store.email_query.Scope).
        self.within_folder: Clause | None = None

    def clause(self, node: Any) -> Clause:
        if node is None:
            return sql.TRUE
        if not isinstance(node, dict):
            raise MethodError("invalidArguments", "a filter must be an object")
        if "operator" in node:
            return self._operator(node)
        unknown = set(node) - METADATA_CONDITIONS - TEXT_CONDITIONS
        if unknown:
            raise MethodError("unsupportedFilter", f"cannot filter on {', '.join(sorted(unknown))}")
        # What the cache decides first: the searches then only look where candidates are.
        decided = [
            self._shaped(test) if name in ROW_CONDITIONS else test
            for name, value in node.items()
            if name in METADATA_CONDITIONS and name != "hasAttachment"
            for test in [_cache_condition(name, value)]
        ]
        if "hasAttachment" in node:
            decided.append(self._has_attachment(node["hasAttachment"], sql.all_of(decided)))
        for name in (name for name in node if name in TEXT_CONDITIONS):
            decided.append(self._search(name, node[name], sql.all_of(decided)))
        if "inMailbox" in node:
            folder = _cache_condition("inMailbox", node["inMailbox"])
            self.within_folder = sql.all_of(c for c in decided if c != folder)
        return sql.all_of(decided)

    def _operator(self, node: dict[str, Any]) -> Clause:
        operator, conditions = node.get("operator"), node.get("conditions")
        if set(node) != {"operator", "conditions"} or not isinstance(conditions, list):
            raise MethodError("invalidArguments", "a FilterOperator has operator and conditions")
        if operator not in ("AND", "OR", "NOT"):
            raise MethodError("unsupportedFilter", f"unknown operator {operator!r}")
        clauses = [self.clause(condition) for condition in conditions]
        if operator == "AND":
            return sql.all_of(clauses)
        union = sql.any_of(clauses)
        return union if operator == "OR" else sql.negation(union)

    def _has_attachment(self, value: Any, candidates: Clause) -> Clause:
        """The cache's column where the summary made it; the summaries read (or made)
        for the candidates that have none yet, which fills it in for them."""
        if not isinstance(value, bool):
            raise MethodError("invalidArguments", "hasAttachment must be a boolean")
        known = self._shaped(sql.has_attachment(value))
        if not self.account.cache.attachment_unknown():
            return known
        unknown = sql.all_of([candidates, sql.ATTACHMENT_UNKNOWN])
        ids = set(self.account.cache.query_page(unknown, ()))
        flags = self.has_attachment(ids) if ids else {}
        resolved = sql.among(e for e in ids if flags.get(e, False) == value)
        return sql.any_of([known, resolved])

    def _shaped(self, test: Clause) -> Clause:
        common = self.account.cache.share(test) >= sql.COMMON_SHARE
        return sql.shaped(test, common=common)

    def _search(self, name: str, value: Any, candidates: Clause) -> Clause:
        """The Emails among ``candidates`` the upstream finds, folder by folder. For an
        indexed header field, the header index answers for itself where it is exact, and
        the upstream searches only the UIDs it leaves undecided (bridge.mail.header_text)."""
        account = self.account
        try:
            plan = plan_search({name: value}, capabilities=account.imap.capabilities)
        except UnsupportedFilter as exc:
            raise MethodError("unsupportedFilter", str(exc)) from exc
        except InvalidFilter as exc:
            raise MethodError("invalidArguments", str(exc)) from exc
        decided = sql.FALSE
        if name in INDEXED_FIELDS:
            searched = tokens(value)
            if not searched:
                return sql.TRUE
            single = [token_word(token) for token in searched]
            exact_known = all(word is not None for word in single)
            if exact_known:
                found, bit = [w or "" for w in single], INEXACT_BIT[name]
                common = account.cache.header_common(name, found) is not False
                index = account.cache.header_words_match
                decided = sql.header_holds(name, bit, found, common=common, index=index)
                if self.read_twice and not common:
                    # Its matches' ids, once: looking the words up in the full-text index
                    # is most of the cost (subject at 50,000 Emails: 5 of 6 ms). So many
                    # that their list would cost more memory than it saves time: as it is.
                    held = account.cache.header_holders(name, bit, found, SHARED_MATCHES)
                    decided = decided if held is None else sql.among(held)
            token_words = [words(token) for token in searched]
            # The narrowing first: SQLite then walks its (few) Emails, not the folder's.
            candidates = sql.all_of([
                sql.header_may_hold(
                    name, INEXACT_BIT[name], token_words, exact_known=exact_known,
                    index=account.cache.header_words_match,
                ),
                candidates,
            ])  # fmt: skip
        searched_for, utf8 = plan.criteria, plan.needs_utf8
        if account.imap.object_ids is ObjectIds.GMAIL:
            # Gmail's own search, where it answers the condition as JMAP means it.
            raw = raw_criteria(name, value)
            if raw is not None:
                searched_for, utf8 = raw, not raw.isascii()
        found: set[str] = set()
        where = account.cache.query_locations(candidates)
        records = account.cache.mailboxes()
        views = label_views(account.imap, records)
        for record in records:
            uids = where.get(record.id)
            if not record.selectable or not uids:
                continue
            if views is not None and views.is_view(record.id):
                continue  # Gmail: its Emails are All Mail's, searched there
            criteria = searched_for
            # Gmail's X-GM-RAW stands alone: its own index needs no UID narrowing.
            narrow = searched_for is plan.criteria
            if narrow and len(uids) < account.cache.location_count(record.id):
                within = uid_set(uids).encode()
                if len(within) <= MAX_UID_SET:
                    criteria = b"UID " + within + b" " + criteria
            hits = account.folder(record.name).search(criteria, utf8=utf8)
            found |= account.cache.uids_to_emails(record.id, hits)
        return sql.any_of([decided, sql.among(found)])


def _cache_condition(name: str, value: Any) -> Clause:
    if name == "inMailbox":
        if not isinstance(value, str):
            raise MethodError("invalidArguments", "inMailbox must be an id")
        return sql.in_mailbox(value)
    if name == "inMailboxOtherThan":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise MethodError("invalidArguments", "inMailboxOtherThan must be a list of ids")
        return sql.in_mailbox_other_than(value)
    if name == "before":
        return sql.received_before(_utc_date(value, name))
    if name == "after":
        return sql.received_since(_utc_date(value, name))
    if name == "minSize":
        return sql.size_at_least(_unsigned(value, name))
    if name == "maxSize":
        return sql.size_below(_unsigned(value, name))
    keyword = _keyword(value, name)
    if name == "hasKeyword":
        return sql.has_keyword(keyword)
    if name == "notKeyword":
        return sql.negation(sql.has_keyword(keyword))
    if name == "allInThreadHaveKeyword":
        return sql.all_in_thread_have(keyword)
    if name == "someInThreadHaveKeyword":
        return sql.some_in_thread_have(keyword)
    return sql.negation(sql.some_in_thread_have(keyword))


def _check_sort(sort: Any) -> list[dict[str, Any]]:
    return check_comparators(sort, CACHE_SORTS | set(UPSTREAM_SORTS), KEYWORD_SORTS)


class CacheQuery(msgspec.Struct, frozen=True):
    """A planned Email/query: what matches, in what order, ready to page or count."""

    cache: Store
    where: Clause
    order: list[OrderKey]
    collapse: bool
    ranks: dict[str, int] | None = None
    # The one folder the filter keeps to (a FilterCondition with inMailbox).
    mailbox_id: str | None = None

    def page(self, offset: int = 0, limit: int | None = None) -> list[str]:
        return self.cache.query_page(
            self.where, self.order, collapse=self.collapse, ranks=self.ranks,
            offset=offset, limit=limit, mailbox_id=self.mailbox_id,
        )  # fmt: skip

    def count(self) -> int:
        return self.cache.query_count(
            self.where, collapse=self.collapse, mailbox_id=self.mailbox_id
        )


class SortPlanner:
    """Comparators as SQL order keys. The base order, newest first and then by id, is
    appended by the store: equal keys stay in a fixed order."""

    def __init__(self, account: Account, where: Clause, mailbox_id: str | None):
        self.account = account
        self.where = where
        self.mailbox_id = mailbox_id
        self.ranks: dict[str, int] | None = None

    def order(self, sort: list[dict[str, Any]]) -> list[OrderKey]:
        return [
            self._key(comparator, last=position == len(sort) - 1)
            for position, comparator in enumerate(sort)
        ]

    def _key(self, comparator: dict[str, Any], *, last: bool) -> OrderKey:
        prop = comparator["property"]
        ascending = comparator.get("isAscending", True)
        if prop in ("receivedAt", "size"):
            return sql.by_column(prop, ascending)
        if prop in KEYWORD_SORTS:
            keyword = comparator["keyword"].lower()
            if prop == "hasKeyword":
                return sql.by_keyword(keyword, ascending)
            return sql.by_thread_keyword(keyword, prop == "allInThreadHaveKeyword", ascending)
        # The upstream's SORT leaves no ties (it breaks them by sequence number), so it
        # answers only a comparator that nothing follows.
        if last and self._upstream_sorts(prop):
            return self._upstream_key(prop, ascending)
        make_sort_keys(self.account, self.account.cache.query_without_sort_keys(self.where))
        return sql.by_column(prop, ascending)

    def _upstream_sorts(self, prop: str) -> bool:
        """Whether the one folder queried is the upstream's to sort. Plain FROM/TO sort
        by the address's mailbox part, not by the name JMAP asks for (RFC 8621 §4.4.2):
        without SORT=DISPLAY the cached keys answer."""
        imap = self.account.imap
        return (
            self.mailbox_id is not None
            and self.account.cache.mailbox(self.mailbox_id) is not None
            and imap.has("SORT")
            and (not UPSTREAM_SORTS[prop].startswith(b"DISPLAY") or imap.has("SORT=DISPLAY"))
        )

    def _upstream_key(self, prop: str, ascending: bool) -> OrderKey:
        account = self.account
        record = account.cache.mailbox(self.mailbox_id or "")
        assert record is not None
        # Descending is the server's REVERSE, which keeps its ties in sequence order
        # (RFC 5256 §3): the rank is the place in the server's answer either way.
        keys = UPSTREAM_SORTS[prop]
        # A Gmail label view's locations carry All Mail UIDs: All Mail sorts them.
        folder = account.folder(upstream_folder(account.imap, account.cache, record))
        uids = folder.sort(keys if ascending else b"REVERSE " + keys)
        by_uid = {
            uid: location.email_id for uid, location in account.cache.locations(record.id).items()
        }
        ranks: dict[str, int] = {}
        for position, uid in enumerate(uids):
            if uid in by_uid:
                ranks.setdefault(by_uid[uid], position)
        self.ranks = ranks
        return sql.by_rank(len(ranks))


def _single_mailbox(filter_: Any) -> str | None:
    if isinstance(filter_, dict) and "operator" not in filter_:
        value = filter_.get("inMailbox")
        return value if isinstance(value, str) else None
    return None


def _fast_page(account: Account, request: EmailQueryArgs) -> dict[str, Any] | None:
    """One folder by receivedAt (or size) with no other condition: an index range."""
    mailbox_id = _single_mailbox(request.filter)
    sort = request.sort or [{"property": "receivedAt", "isAscending": False}]
    if (
        mailbox_id is None
        or set(request.filter or {}) != {"inMailbox"}
        or request.collapseThreads
        or request.anchor is not None
        or request.position < 0
        or len(sort) != 1
        or sort[0].get("property") not in ("receivedAt", "size")
    ):
        return None
    record = account.cache.mailbox(mailbox_id)
    if record is None or not record.selectable:
        # Unknown, \Noselect, or a folder the upstream will not open: it holds nothing.
        return {"ids": [], "position": 0, "total": 0}
    if not record.indexed:
        views = label_views(account.imap, account.cache.mailboxes())
        if not account.imap.has("SORT") or (views is not None and views.is_view(mailbox_id)):
            return None  # a Gmail label view is All Mail's to fill, never SELECTed
        return upstream_page(
            account, record, sort[0]["property"], sort[0].get("isAscending", True),
            request.position, request.limit,
        )  # fmt: skip
    total = record.counts.total_emails
    ids = account.cache.mailbox_page(
        mailbox_id,
        sort[0]["property"],
        sort[0].get("isAscending", True),
        request.position,
        request.limit,
    )
    return {"ids": ids, "position": min(request.position, total), "total": total}


def upstream_page(
    account: Account,
    record: MailboxRecord,
    prop: str,
    ascending: bool,
    position: int,
    limit: int | None,
) -> dict[str, Any]:
    """A page of a folder not indexed yet: the server sorts, bridge fetches only the page."""
    imap = account.connection_for(record.name)
    selected = imap.select(record.name)
    keys = b"ARRIVAL" if prop == "receivedAt" else b"SIZE"
    keys = keys if ascending else b"REVERSE " + keys
    if not selected.exists or position >= selected.exists or limit == 0:
        window: list[int] = []
    elif limit is not None and imap.can_sort_partial():
        window = imap.sort_partial(keys, position + 1, min(position + limit, selected.exists))
    else:
        window = imap.sort(keys)[position : None if limit is None else position + limit]
    known = account.cache.locations(record.id)
    if record.index_uidvalidity != selected.uidvalidity:
        known = {}
    missing = [uid for uid in window if uid not in known]
    fetched = {}
    if missing:
        # With the summaries the list view that follows needs, in the same command.
        fetched = fetch_new(imap, uid_set(missing))
    added = [new_message(record, selected.uidvalidity, m, page=True) for m in fetched.values()]
    with account.user.syncing(), account.cache.transaction():
        account.cache.purge_orphans(
            account.cache.set_index_uidvalidity(record.id, selected.uidvalidity)
        )
        account.cache.apply_folder_delta(record.id, added=added)
    located = account.cache.locations(record.id)
    ids = list(dict.fromkeys(located[uid].email_id for uid in window if uid in located))
    return {"ids": ids, "position": min(position, selected.exists), "total": selected.exists}


def plan_query(
    account: Account,
    filter_: Any,
    sort: list[dict[str, Any]],
    collapse: bool,
    has_attachment: Callable[[set[str]], dict[str, bool]],
    *,
    read_twice: bool = False,
) -> CacheQuery:
    account.ensure_indexed()
    planner = FilterPlanner(account, has_attachment, read_twice=read_twice)
    where = planner.clause(filter_)
    mailbox_id = _single_mailbox(filter_)
    sorter = SortPlanner(account, where, mailbox_id)
    order = sorter.order(sort)
    if mailbox_id is not None and planner.within_folder is not None:
        where = planner.within_folder
    else:
        mailbox_id = None
    return CacheQuery(account.cache, where, order, collapse, sorter.ranks, mailbox_id)


def email_query(
    ctx: CallContext, args: dict[str, Any], has_attachment: Callable[..., dict[str, bool]]
) -> dict[str, Any]:
    request = decode_args(EmailQueryArgs, args)
    sort = _check_sort(request.sort)
    account = account_of(ctx)
    account.sync()
    cache = account.cache
    state = cache.encode_state(cache.state(EMAIL))
    fast = _fast_page(account, request)
    if fast is not None:
        response: dict[str, Any] = {
            "accountId": ctx.account_id, "queryState": state, "canCalculateChanges": True,
            "position": fast["position"], "ids": fast["ids"],
        }  # fmt: skip
        if request.calculateTotal:
            response["total"] = fast["total"]
        return response
    from_start = request.anchor is None and request.position >= 0
    query = plan_query(account, request.filter, sort, request.collapseThreads,
                       lambda candidates: has_attachment(account, candidates),
                       read_twice=from_start and request.calculateTotal)  # fmt: skip
    if not from_start:
        return query_response(ctx.account_id, state, query.page(), request)
    # A page from the start: the store reads no further than the page's end.
    response = {
        "accountId": ctx.account_id, "queryState": state, "canCalculateChanges": True,
        "position": request.position, "ids": query.page(request.position, request.limit),
    }  # fmt: skip
    if request.calculateTotal:
        response["total"] = query.count()
    return response


def email_query_changes(
    ctx: CallContext, args: dict[str, Any], has_attachment: Callable[..., dict[str, bool]]
) -> dict[str, Any]:
    request = decode_args(EmailQueryChangesArgs, args)
    sort = _check_sort(request.sort)
    account = account_of(ctx)
    account.sync()
    cache = account.cache
    since = since_value(cache, EMAIL, request.sinceQueryState)
    changed = cache.changed_since(EMAIL, since)
    ids = plan_query(account, request.filter, sort, request.collapseThreads,
                     lambda candidates: has_attachment(account, candidates)).page()  # fmt: skip
    if request.collapseThreads:
        # A change to any Email of a thread can move which one stands for it.
        changed_threads = {record.thread_id for record in cache.emails(list(changed)).values()}
        in_threads = cache.thread_emails(sorted(changed_threads))
        listed = set(ids)
        changed |= {e for members in in_threads.values() for e in members if e in listed}
    return query_changes_response(
        ctx.account_id, request.sinceQueryState, cache.encode_state(cache.state(EMAIL)),
        ids, changed, request.maxChanges, request.calculateTotal,
    )  # fmt: skip
