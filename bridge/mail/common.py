"""What every data type's handlers share: states, /changes over the change log, and the
mapping of upstream failures to JMAP errors."""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from bridge.imap.errors import CommandFailed, UpstreamTimeout, UpstreamUnavailable
from bridge.jmap import CallContext, MethodError, MethodResult
from bridge.jmap.standard import ChangesArgs, QueryArgs, page_query
from bridge.mail.account import Account
from bridge.store.base import Store
from bridge.store.health import CacheDamaged, StoreUnavailable, is_full

log = logging.getLogger("bridge.mail")

Handler = Callable[[CallContext, dict[str, Any]], dict[str, Any] | MethodResult]


def account_of(ctx: CallContext) -> Account:
    account = ctx.account
    assert isinstance(account, Account)
    return account


def translating_upstream_errors(handler: Handler) -> Handler:
    """The one place where an upstream failure becomes a method-level JMAP error."""

    @functools.wraps(handler)
    def wrapper(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any] | MethodResult:
        try:
            return handler(ctx, args)
        except UpstreamTimeout as exc:
            log.warning("upstream timed out during %s: %s", ctx.method_name, exc)
            raise MethodError(
                "serverFail",
                "the upstream did not answer in time; whether anything changed shows at the "
                "next sync",
            ) from exc
        except UpstreamUnavailable as exc:
            log.warning("upstream unavailable during %s: %s", ctx.method_name, exc)
            raise MethodError(
                "serverUnavailable", "the upstream IMAP server is unavailable"
            ) from exc
        except CommandFailed as exc:
            log.warning("upstream refused %s during %s", exc.command, ctx.method_name)
            raise MethodError("serverFail", f"upstream refused {exc.command}") from exc
        except StoreUnavailable as exc:
            log.warning("store unavailable during %s: %s", ctx.method_name, exc)
            raise MethodError("serverUnavailable", "the store's database is unavailable") from exc
        except CacheDamaged as exc:
            # The next request of the user finds the cache rebuilt (UserRegistry.get).
            log.warning("cache damaged during %s: %s", ctx.method_name, exc)
            raise MethodError("serverFail", "the cache was damaged and is being rebuilt") from exc
        except (OSError, sqlite3.OperationalError) as exc:
            if not is_full(exc):
                raise
            log.warning("disk full during %s: %s", ctx.method_name, exc)
            raise MethodError("serverFail", "the server's disk is full") from exc

    return wrapper


def since_value(cache: Store, type_name: str, state: str) -> int:
    """The counter value a client's state names, or cannotCalculateChanges."""
    since = cache.decode_state(state)
    if since is None or since < cache.horizon(type_name):
        raise MethodError("cannotCalculateChanges", "state unknown or too old; resync")
    return since


def changes_response(
    cache: Store, type_name: str, args: ChangesArgs, account_id: str
) -> tuple[dict[str, Any], bool]:
    """RFC 8620 §5.2 over the change log; also says whether only counts were updated."""
    since = since_value(cache, type_name, args.sinceState)
    changes = cache.changes(type_name, since, args.maxChanges)
    response = {
        "accountId": account_id,
        "oldState": args.sinceState,
        "newState": cache.encode_state(changes.new_modseq),
        "hasMoreChanges": changes.has_more,
        "created": changes.created,
        "updated": changes.updated,
        "destroyed": changes.destroyed,
    }
    return response, changes.counts_only and bool(changes.updated)


def query_changes_response(
    account_id: str,
    old_state: str,
    new_state: str,
    ids: list[str],
    changed: set[str],
    max_changes: int | None,
    calculate_total: bool,
) -> dict[str, Any]:
    """RFC 8620 §5.6 from the change log: every object changed since the old state is
    removed, and added back at its index if it is still in the results. That is exact
    whatever the sort and filter look at; upToId could only shorten it for immutable ones."""
    added = [
        {"id": object_id, "index": i} for i, object_id in enumerate(ids) if object_id in changed
    ]
    removed = sorted(changed)
    if max_changes is not None and len(added) + len(removed) > max_changes:
        raise MethodError("tooManyChanges", "more changes than maxChanges")
    response: dict[str, Any] = {
        "accountId": account_id,
        "oldQueryState": old_state,
        "newQueryState": new_state,
        "removed": removed,
        "added": added,
    }
    if calculate_total:
        response["total"] = len(ids)
    return response


def check_comparators(
    sort: Any, supported: Iterable[str], needs_keyword: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """A /query sort (RFC 8620 §5.5): Comparators on supported properties. Keys beyond
    property, isAscending and collation are left alone: real clients send some."""
    if sort is None:
        return []
    if not isinstance(sort, list):
        raise MethodError("invalidArguments", "sort must be a list of Comparators")
    supported, needs_keyword = set(supported), set(needs_keyword)
    for comparator in sort:
        if not isinstance(comparator, dict) or not isinstance(comparator.get("property"), str):
            raise MethodError("invalidArguments", "a Comparator needs a property")
        prop = comparator["property"]
        if prop not in supported:
            raise MethodError("unsupportedSort", f"cannot sort by {prop}")
        if prop in needs_keyword and not isinstance(comparator.get("keyword"), str):
            raise MethodError("invalidArguments", f"a {prop} sort needs a keyword")
        if not isinstance(comparator.get("isAscending", True), bool):
            raise MethodError("invalidArguments", "isAscending must be a boolean")
    return sort


# A FilterCondition's property -> the test its value must pass, and what it must be.
ConditionTypes = dict[str, tuple[Callable[[Any], bool], str]]


def filter_matches(
    node: dict[str, Any] | None, condition_holds: Callable[[dict[str, Any]], bool]
) -> bool:
    """Whether a checked filter (RFC 8620 §5.5) holds; ``condition_holds`` decides each
    FilterCondition, this the operators above them."""
    if not node:
        return True
    if "operator" in node:
        results = (filter_matches(condition, condition_holds) for condition in node["conditions"])
        if node["operator"] == "AND":
            return all(results)
        if node["operator"] == "OR":
            return any(results)
        return not any(results)
    return condition_holds(node)


def check_filter(node: Any, conditions: ConditionTypes) -> None:
    """A /query filter (RFC 8620 §5.5): FilterOperators nest; every condition names a
    supported property (else unsupportedFilter) with a value of the right type."""
    if node is None:
        return
    if not isinstance(node, dict):
        raise MethodError("invalidArguments", "filter must be an object")
    if "operator" in node:
        if node["operator"] not in ("AND", "OR", "NOT"):
            raise MethodError("unsupportedFilter", f"unknown operator {node['operator']!r}")
        children = node.get("conditions")
        if not isinstance(children, list) or set(node) != {"operator", "conditions"}:
            raise MethodError("invalidArguments", "a FilterOperator needs only conditions[]")
        for child in children:
            check_filter(child, conditions)
        return
    unknown = set(node) - set(conditions)
    if unknown:
        raise MethodError("unsupportedFilter", f"cannot filter on {', '.join(sorted(unknown))}")
    for key in set(node) & set(conditions):
        test, what = conditions[key]
        if not test(node[key]):
            raise MethodError("invalidArguments", f"filter {key} must be {what}")


def query_response(
    account_id: str, query_state: str, ids: list[str], request: QueryArgs
) -> dict[str, Any]:
    """RFC 8620 §5.5's answer for the whole result list ``ids``: the requested page."""
    page, position = page_query(
        ids, request.position, request.anchor, request.anchorOffset, request.limit
    )
    response: dict[str, Any] = {
        "accountId": account_id,
        "queryState": query_state,
        "canCalculateChanges": True,
        "position": position,
        "ids": page,
    }
    if request.calculateTotal:
        response["total"] = len(ids)
    return response
