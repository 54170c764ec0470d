"""Email/query and Email/queryChanges (RFC 8621 §4.4, §4.5).

Metadata conditions (mailboxes, dates, sizes, keywords, threads) and the receivedAt, size
and keyword sorts are answered from the cache; text conditions go to the upstream's
SEARCH, one folder at a time; header sorts use the upstream's SORT within one folder, and
sort keys the cache keeps (bridge.mail.header_sort) across folders. The common list view,
one folder by receivedAt, is a range of the cache's index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from bridge.imap.gmail_search import raw_criteria
from bridge.imap.responses import ObjectIds
from bridge.imap.search import InvalidFilter, UnsupportedFilter, plan_search
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
from bridge.mail.header_sort import header_sort_key, sort_keys_of
from bridge.mail.sync import fetch_new, new_message, uid_set
from bridge.store.cache import EMAIL
from bridge.store.records import MailboxRecord, SortKeys

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


class QueryIndex:
    """The cache's facts about every Email, loaded once per query."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.facts: dict[str, tuple[str, frozenset[str], int, int]] = {}
        self.threads: dict[str, list[str]] = {}
        for email_id, thread_id, keywords, size, received_at in account.cache.email_facts():
            self.facts[email_id] = (thread_id, frozenset(keywords.split()), size, received_at)
            self.threads.setdefault(thread_id, []).append(email_id)
        self.boxes: dict[str, set[str]] = {}
        self.by_mailbox: dict[str, dict[int, str]] = {}
        for email_id, mailbox_id, uid in account.cache.memberships():
            self.boxes.setdefault(email_id, set()).add(mailbox_id)
            self.by_mailbox.setdefault(mailbox_id, {})[uid] = email_id
        self.universe = set(self.facts)
        self.attachments: dict[str, bool] | None = None

    def where(self, test: Callable[[str], bool]) -> set[str]:
        return {email_id for email_id in self.universe if test(email_id)}

    def thread_keywords(self, email_id: str) -> list[frozenset[str]]:
        return [self.facts[other][1] for other in self.threads[self.facts[email_id][0]]]


class FilterEvaluator:
    def __init__(self, index: QueryIndex, has_attachment: Callable[[set[str]], dict[str, bool]]):
        self.index = index
        self.has_attachment = has_attachment

    def evaluate(self, node: Any) -> set[str]:
        if node is None:
            return set(self.index.universe)
        if not isinstance(node, dict):
            raise MethodError("invalidArguments", "a filter must be an object")
        if "operator" in node:
            return self._operator(node)
        unknown = set(node) - METADATA_CONDITIONS - TEXT_CONDITIONS
        if unknown:
            raise MethodError("unsupportedFilter", f"cannot filter on {', '.join(sorted(unknown))}")
        result = set(self.index.universe)
        # Cheap conditions first: the text searches then only look where candidates are.
        for name in sorted(node, key=lambda key: key in TEXT_CONDITIONS):
            result &= self._condition(name, node[name], result)
        return result

    def _operator(self, node: dict[str, Any]) -> set[str]:
        operator, conditions = node.get("operator"), node.get("conditions")
        if set(node) != {"operator", "conditions"} or not isinstance(conditions, list):
            raise MethodError("invalidArguments", "a FilterOperator has operator and conditions")
        if operator == "AND":
            result = set(self.index.universe)
            for condition in conditions:
                result &= self.evaluate(condition)
            return result
        if operator in ("OR", "NOT"):
            union: set[str] = set()
            for condition in conditions:
                union |= self.evaluate(condition)
            return union if operator == "OR" else self.index.universe - union
        raise MethodError("unsupportedFilter", f"unknown operator {operator!r}")

    def _condition(self, name: str, value: Any, candidates: set[str]) -> set[str]:
        index = self.index
        facts = index.facts
        if name == "inMailbox":
            if not isinstance(value, str):
                raise MethodError("invalidArguments", "inMailbox must be an id")
            return set(index.by_mailbox.get(value, {}).values())
        if name == "inMailboxOtherThan":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise MethodError("invalidArguments", "inMailboxOtherThan must be a list of ids")
            excluded = set(value)
            return index.where(lambda e: bool(index.boxes.get(e, set()) - excluded))
        if name in ("before", "after"):
            moment = _utc_date(value, name)
            if name == "before":
                return index.where(lambda e: facts[e][3] < moment)
            return index.where(lambda e: facts[e][3] >= moment)
        if name in ("minSize", "maxSize"):
            size = _unsigned(value, name)
            if name == "minSize":
                return index.where(lambda e: facts[e][2] >= size)
            return index.where(lambda e: facts[e][2] < size)
        if name in ("hasKeyword", "notKeyword"):
            keyword = _keyword(value, name)
            present = index.where(lambda e: keyword in facts[e][1])
            return present if name == "hasKeyword" else index.universe - present
        if name.endswith("InThreadHaveKeyword"):
            keyword = _keyword(value, name)
            test = {"all": all, "some": any}.get(name[:-19])
            if test is not None:
                return index.where(lambda e: test(keyword in k for k in index.thread_keywords(e)))
            return index.where(lambda e: not any(keyword in k for k in index.thread_keywords(e)))
        if name == "hasAttachment":
            if not isinstance(value, bool):
                raise MethodError("invalidArguments", "hasAttachment must be a boolean")
            flags = self.has_attachment(candidates)
            return {e for e in candidates if flags.get(e, False) == value}
        return self._search(name, value, candidates)

    def _search(self, name: str, value: Any, candidates: set[str]) -> set[str]:
        account = self.index.account
        try:
            plan = plan_search({name: value}, capabilities=account.imap.capabilities)
        except UnsupportedFilter as exc:
            raise MethodError("unsupportedFilter", str(exc)) from exc
        except InvalidFilter as exc:
            raise MethodError("invalidArguments", str(exc)) from exc
        criteria, utf8 = plan.criteria, plan.needs_utf8
        if account.imap.object_ids is ObjectIds.GMAIL:
            # Gmail's own search, where it answers the condition as JMAP means it.
            raw = raw_criteria(name, value)
            if raw is not None:
                criteria, utf8 = raw, not raw.isascii()
        folders = {
            mailbox_id
            for email_id in candidates
            for mailbox_id in self.index.boxes.get(email_id, ())
        }
        found: set[str] = set()
        records = account.cache.mailboxes()
        views = label_views(account.imap, records)
        for record in records:
            if record.id not in folders or not record.selectable:
                continue
            if views is not None and views.is_view(record.id):
                continue  # Gmail: its Emails are All Mail's, searched there
            account.open_folder(record.name)
            uids = account.imap.search(criteria, utf8=utf8)
            by_uid = self.index.by_mailbox.get(record.id, {})
            found.update(by_uid[uid] for uid in uids if uid in by_uid)
        return found


def _check_sort(sort: Any) -> list[dict[str, Any]]:
    return check_comparators(sort, CACHE_SORTS | set(UPSTREAM_SORTS), KEYWORD_SORTS)


class Sorter:
    def __init__(self, index: QueryIndex, sort: list[dict[str, Any]], mailbox_id: str | None):
        self.index = index
        self.sort = sort
        self.mailbox_id = mailbox_id
        self.ids: list[str] = []
        self.keys: dict[str, SortKeys] | None = None

    def order(self, ids: Iterable[str]) -> list[str]:
        # Stable sorts from the last comparator to the first; the base order is newest
        # first with the id as a final tie-break, so equal keys stay in a fixed order.
        facts = self.index.facts
        ordered = sorted(ids, key=lambda e: (facts[e][3], e), reverse=True)
        self.ids = ordered
        for position, comparator in reversed(list(enumerate(self.sort))):
            ascending = comparator.get("isAscending", True)
            key = self._key(comparator, last=position == len(self.sort) - 1)
            ordered.sort(key=key, reverse=not ascending)
        return ordered

    def _key(self, comparator: dict[str, Any], *, last: bool) -> Callable[[str], Any]:
        prop = comparator["property"]
        facts = self.index.facts
        if prop == "receivedAt":
            return lambda e: facts[e][3]
        if prop == "size":
            return lambda e: facts[e][2]
        if prop in KEYWORD_SORTS:
            keyword = comparator["keyword"].lower()
            if prop == "hasKeyword":
                return lambda e: keyword in facts[e][1]
            test = all if prop == "allInThreadHaveKeyword" else any
            return lambda e: test(keyword in k for k in self.index.thread_keywords(e))
        # The upstream's SORT leaves no ties (it breaks them by sequence number), so it
        # answers only a comparator that nothing follows.
        if last and self._upstream_sorts(prop):
            return self._upstream_key(comparator)
        if self.keys is None:
            self.keys = sort_keys_of(self.index.account, self.ids)
        return header_sort_key(prop, self.keys, lambda e: facts[e][3])

    def _upstream_sorts(self, prop: str) -> bool:
        """Whether the one folder queried is the upstream's to sort. Plain FROM/TO sort
        by the address's mailbox part, not by the name JMAP asks for (RFC 8621 §4.4.2):
        without SORT=DISPLAY the cached keys answer."""
        imap = self.index.account.imap
        return (
            self.mailbox_id is not None
            and self.index.account.cache.mailbox(self.mailbox_id) is not None
            and imap.has("SORT")
            and (not UPSTREAM_SORTS[prop].startswith(b"DISPLAY") or imap.has("SORT=DISPLAY"))
        )

    def _upstream_key(self, comparator: dict[str, Any]) -> Callable[[str], Any]:
        account = self.index.account
        record = account.cache.mailbox(self.mailbox_id or "")
        assert record is not None
        keys = UPSTREAM_SORTS[comparator["property"]]
        # Descending is the server's REVERSE, which keeps its ties in sequence order
        # (RFC 5256 §3); the ranks count down so that the reversed sort restores it.
        ascending = comparator.get("isAscending", True)
        # A Gmail label view's locations carry All Mail UIDs: All Mail sorts them.
        account.open_folder(upstream_folder(account.imap, account.cache, record))
        uids = account.imap.sort(keys if ascending else b"REVERSE " + keys)
        by_uid = self.index.by_mailbox.get(self.mailbox_id, {})
        rank: dict[str, int] = {}
        for position, uid in enumerate(uids):
            if uid in by_uid:
                rank.setdefault(by_uid[uid], position if ascending else -position)
        return lambda e: rank.get(e, len(rank) if ascending else -len(rank))


def _collapse(ids: list[str], index: QueryIndex) -> list[str]:
    seen: set[str] = set()
    kept: list[str] = []
    for email_id in ids:
        thread_id = index.facts[email_id][0]
        if thread_id not in seen:
            seen.add(thread_id)
            kept.append(email_id)
    return kept


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
    imap = account.imap
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
    added = [new_message(record, selected.uidvalidity, meta) for meta in fetched.values()]
    with account.user.syncing(), account.cache.transaction():
        account.cache.purge_orphans(
            account.cache.set_index_uidvalidity(record.id, selected.uidvalidity)
        )
        account.cache.apply_folder_delta(record.id, added=added)
    located = account.cache.locations(record.id)
    ids = list(dict.fromkeys(located[uid].email_id for uid in window if uid in located))
    return {"ids": ids, "position": min(position, selected.exists), "total": selected.exists}


def query_ids(
    account: Account,
    filter_: Any,
    sort: list[dict[str, Any]],
    collapse: bool,
    has_attachment: Callable[[set[str]], dict[str, bool]],
) -> list[str]:
    account.ensure_indexed()
    index = QueryIndex(account)
    matching = FilterEvaluator(index, has_attachment).evaluate(filter_)
    ordered = Sorter(index, sort, _single_mailbox(filter_)).order(matching)
    return _collapse(ordered, index) if collapse else ordered


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
    ids = query_ids(account, request.filter, sort, request.collapseThreads,
                    lambda candidates: has_attachment(account, candidates))  # fmt: skip
    return query_response(ctx.account_id, state, ids, request)


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
    ids = query_ids(account, request.filter, sort, request.collapseThreads,
                    lambda candidates: has_attachment(account, candidates))  # fmt: skip
    if request.collapseThreads:
        # A change to any Email of a thread can move which one stands for it.
        facts = {email_id: thread for email_id, thread, *_ in cache.email_facts()}
        changed_threads = {facts[e] for e in changed if e in facts}
        changed |= {e for e in ids if facts.get(e) in changed_threads}
    return query_changes_response(
        ctx.account_id, request.sinceQueryState, cache.encode_state(cache.state(EMAIL)),
        ids, changed, request.maxChanges, request.calculateTotal,
    )  # fmt: skip
