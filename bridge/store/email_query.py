"""Email/query over the cache in SQL: filters as WHERE clauses on ``emails e``, sorts as
ORDER BY keys, so that a page costs what the answer costs and not a load of the account.

The mail layer builds a ``Clause`` tree from a checked JMAP filter (bridge.mail.email_query)
and resolves what the cache cannot decide (text searched upstream, hasAttachment from the
summaries) into sets of Email ids (``among``) first. Every clause is a boolean SQL
expression with its parameters; no client string is ever spliced into the SQL text.

Which index serves what: a folder is ``locations``' primary key, a keyword
``email_keywords``' (keyword, email_id), receivedAt and the newest-first order the
``emails_received`` index; thread keywords join those through ``emails_thread``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence

import msgspec


class Clause(msgspec.Struct, frozen=True):
    """A boolean SQL expression over the row ``e`` of ``emails``, and its parameters."""

    sql: str
    params: tuple[object, ...] = ()
    # The same condition in the shape that costs least where a page walks the Emails in
    # received order and stops at its end (the same parameters, in the same order); None:
    # ``sql`` is that shape too.
    walked: str | None = None
    # The Emails for which ``sql`` is not true, as a few an index finds (the same
    # parameters, in the same order), where most Emails meet the condition: a total is
    # then the folder's count less these. None: no such shape.
    unmet: str | None = None


class OrderKey(msgspec.Struct, frozen=True):
    """An ORDER BY term over ``e`` (and ``r``, the upstream's ranks), and its parameters."""

    sql: str
    ascending: bool = True
    params: tuple[object, ...] = ()


_JSON = msgspec.json.Encoder()
TRUE = Clause("TRUE")
FALSE = Clause("FALSE")
# LIMIT for "all of them": SQLite takes -1, PostgreSQL no negative value; both this one.
NO_LIMIT = 2**63 - 1
# What every order ends with: newest first, then by id, so equal keys keep a fixed order.
NEWEST_FIRST = (OrderKey("e.received_at", False), OrderKey("e.id", False))

_HAS_KEYWORD = "SELECT email_id FROM email_keywords WHERE keyword = ?"
_THREADS_WITH = (
    "SELECT t.thread_id FROM email_keywords k JOIN emails t ON t.id = k.email_id "
    "WHERE k.keyword = ?"
)
_THREADS_WITHOUT = f"SELECT thread_id FROM emails WHERE id NOT IN ({_HAS_KEYWORD})"
# Emails by their thread's keywords, as sets of Email ids: SQLite then builds each set once
# (an ``e.thread_id IN`` over the same subquery was seen re-run for every row: 123 s for
# 50,000 rows).
_IN_THREADS_WITH = f"SELECT id FROM emails WHERE thread_id IN ({_THREADS_WITH})"
_IN_THREADS_WITHOUT = f"SELECT id FROM emails WHERE thread_id IN ({_THREADS_WITHOUT})"


def in_mailbox(mailbox_id: str) -> Clause:
    return Clause("e.id IN (SELECT email_id FROM locations WHERE mailbox_id = ?)", (mailbox_id,))


def in_mailbox_other_than(mailbox_ids: Sequence[str]) -> Clause:
    """A copy in some folder outside ``mailbox_ids``."""
    return Clause(
        "EXISTS (SELECT 1 FROM locations l WHERE l.email_id = e.id "
        "AND l.mailbox_id NOT IN (SELECT value FROM json_each(?)))",
        (json.dumps(list(mailbox_ids)),),
    )


def received_before(seconds: int) -> Clause:
    return Clause("e.received_at < ?", (seconds,))


def received_since(seconds: int) -> Clause:
    return Clause("e.received_at >= ?", (seconds,))


def size_at_least(size: int) -> Clause:
    return Clause("e.size >= ?", (size,))


def size_below(size: int) -> Clause:
    return Clause("e.size < ?", (size,))


def has_keyword(keyword: str) -> Clause:
    return Clause(f"e.id IN ({_HAS_KEYWORD})", (keyword,))


def some_in_thread_have(keyword: str) -> Clause:
    return Clause(f"e.id IN ({_IN_THREADS_WITH})", (keyword,))


def all_in_thread_have(keyword: str) -> Clause:
    return Clause(f"e.id NOT IN ({_IN_THREADS_WITHOUT})", (keyword,))


def has_attachment(value: bool) -> Clause:
    """Emails whose hasAttachment is known (made with the summary) and ``value``."""
    return Clause("e.has_attachment = ?", (int(value),))


ATTACHMENT_UNKNOWN = Clause("e.has_attachment IS NULL")
# A condition that this share of the Emails meets (or more) is "common", and takes
# another shape (``shaped``, ``header_holds``): an index that would find nearly every
# Email costs more than reading the rows in order. At 2.4% the index is the cheaper (a
# header total 2.2 ms against 61 ms at 50,000 Emails).
COMMON_SHARE = 0.5
# How many of the newest rows judge a share where counting all of them costs too much:
# the judgement only chooses a shape, and both shapes give one answer.
SHARE_SAMPLE = 512


def shaped(test: Clause, *, common: bool) -> Clause:
    """A condition on an Email's own row (columns of ``e``) in the shape that costs least.
    Common: tested on each row the query walks, so a page stops at its end; ``= TRUE``
    keeps SQLite from driving the query by the column's index instead (it has no
    statistics to know better; an expression is no indexed column, as with a unary ``+``,
    which PostgreSQL has no form of for a truth value; PostgreSQL drops the ``= TRUE`` and
    plans from its statistics). Otherwise the set of Emails the column's index finds,
    which the query then joins, so a total costs what the matches cost."""
    if common:
        return Clause(f"({test.sql}) = TRUE", test.params)
    inner = _EMAIL_ROW.sub("s.", test.sql)
    return Clause(f"e.id IN (SELECT s.id FROM emails s WHERE {inner})", test.params)


def among(email_ids: Iterable[str]) -> Clause:
    """The Emails of a set found elsewhere (an upstream SEARCH, the summaries, the header
    index). In the order found: sorting 2,689 ids cost four times their encoding."""
    ids = list(dict.fromkeys(email_ids))
    if not ids:
        return FALSE
    return Clause("e.id IN (SELECT value FROM json_each(?))", (_JSON.encode(ids).decode(),))


def _joined(operator: str, clauses: Iterable[Clause], unit: Clause, zero: Clause) -> Clause:
    """``clauses`` joined by AND (unit TRUE, zero FALSE) or OR (the other way round),
    constants folded."""
    parts = [c for c in clauses if c != unit]
    if zero in parts:
        return zero
    if len(parts) <= 1:
        return parts[0] if parts else unit
    walked = None
    if any(c.walked for c in parts):
        walked = f" {operator} ".join(f"({c.walked or c.sql})" for c in parts)
    unmet = None
    if operator == "OR" and any(c.unmet for c in parts):
        # Not one of them: the few that miss one, less those another condition holds.
        unmet = " AND ".join(f"({c.unmet})" if c.unmet else f"(({c.sql}) IS NOT TRUE)"
                             for c in parts)  # fmt: skip
    return Clause(
        f" {operator} ".join(f"({c.sql})" for c in parts),
        tuple(p for c in parts for p in c.params),
        walked,
        unmet,
    )


def all_of(clauses: Iterable[Clause]) -> Clause:
    return _joined("AND", clauses, TRUE, FALSE)


def any_of(clauses: Iterable[Clause]) -> Clause:
    return _joined("OR", clauses, FALSE, TRUE)


def negation(clause: Clause) -> Clause:
    if clause == TRUE:
        return FALSE
    if clause == FALSE:
        return TRUE
    walked = f"NOT ({clause.walked})" if clause.walked else None
    return Clause(f"NOT ({clause.sql})", clause.params, walked)


# -- sort keys ---------------------------------------------------------------------------


def by_column(column: str, ascending: bool) -> OrderKey:
    """receivedAt, size, or one of the header sort keys the cache keeps."""
    sql = {
        "receivedAt": "e.received_at",
        "size": "e.size",
        "from": "e.sort_from",
        "to": "e.sort_to",
        "subject": "e.sort_subject",
        # RFC 5256 §3: a message without a usable Date sorts by its INTERNALDATE.
        "sentAt": "COALESCE(e.sent_at, e.received_at)",
    }[column]
    return OrderKey(sql, ascending)


def by_keyword(keyword: str, ascending: bool) -> OrderKey:
    return OrderKey(f"e.id IN ({_HAS_KEYWORD})", ascending, (keyword,))


def by_thread_keyword(keyword: str, every: bool, ascending: bool) -> OrderKey:
    if every:
        return OrderKey(f"e.id NOT IN ({_IN_THREADS_WITHOUT})", ascending, (keyword,))
    return OrderKey(f"e.id IN ({_IN_THREADS_WITH})", ascending, (keyword,))


def by_rank(missing: int) -> OrderKey:
    """The upstream's order (``ranks`` of ``select``); an Email it did not place sorts after."""
    return OrderKey("COALESCE(r.rank, ?)", True, (missing,))


# -- the statements ----------------------------------------------------------------------


class Scope(msgspec.Struct, frozen=True):
    """A query within one folder, answered from its ``locations`` rows: a page walks the
    folder's (received_at, email_id) index and stops at the page's end, a count reads the
    index alone, and an Email's row is read only for what the folder's rows do not hold.
    Within a folder, receivedAt is the INTERNALDATE of the copy there. ``duplicates``: the
    folder holds an Email twice (two UIDs), which must count once."""

    mailbox_id: str
    duplicates: bool = False
    # Its Emails, each once (totalEmails), where the store knows the number.
    total: int | None = None


_EMAIL_ID = re.compile(r"\be\.id\b")
_RECEIVED = re.compile(r"\be\.received_at\b")
_EMAIL_ROW = re.compile(r"\be\.")
# The first UID of an Email in the folder stands for it.
_FIRST_COPY = (
    "NOT EXISTS (SELECT 1 FROM locations d WHERE d.email_id = l.email_id "
    "AND d.mailbox_id = l.mailbox_id AND d.uid < l.uid)"
)


# The keys of the order an index serves (received_at, then id), in either direction.
_RECEIVED_ORDER = frozenset({"e.received_at", "e.id"})


class _Source(msgspec.Struct, frozen=True):
    texts: list[str]  # the SQL texts, rewritten for the rows they run over
    rows: str  # the FROM clause
    condition: str  # what the scope adds to the WHERE clause
    params: tuple[object, ...] = ()


def _source(scope: Scope | None, *texts: str) -> _Source:
    if scope is None:
        return _Source(list(texts), "emails e", "TRUE")
    rewritten = [_RECEIVED.sub("l.received_at", _EMAIL_ID.sub("l.email_id", t)) for t in texts]
    rows = "locations l"
    if any(_EMAIL_ROW.search(t) for t in rewritten):
        rows += " JOIN emails e ON e.id = l.email_id"
    if not scope.mailbox_id:
        return _Source(rewritten, rows, "TRUE")
    condition = "l.mailbox_id = ?" + (f" AND {_FIRST_COPY}" if scope.duplicates else "")
    return _Source(rewritten, rows, condition, (scope.mailbox_id,))


def _order(keys: Sequence[OrderKey], prefix: str = "") -> tuple[str, tuple[object, ...]]:
    terms = [f"{prefix}{k.sql} {'ASC' if k.ascending else 'DESC'}" for k in keys]
    return ", ".join(terms), tuple(p for k in keys for p in k.params)


def select_ids(
    where: Clause,
    order: Sequence[OrderKey],
    *,
    collapse: bool,
    ranks: dict[str, int] | None,
    offset: int,
    limit: int | None,
    scope: Scope | None = None,
) -> tuple[str, tuple[object, ...]]:
    """The statement for a page of the result: ids in order. With ``collapse``, each
    thread keeps only its first Email in that order (RFC 8621 §4.4.3)."""
    keys = list(dict.fromkeys([*order, *NEWEST_FIRST]))
    join, prelude, prelude_params = "", "", ()
    if ranks is not None:
        # Materialized, the ranks get an automatic index for the join.
        join = " LEFT JOIN ranks r ON r.email_id = e.id"
        prelude = (
            "WITH ranks(email_id, rank) AS MATERIALIZED "
            "(SELECT key, CAST(value AS INTEGER) FROM json_each(?)) "
        )
        prelude_params = (json.dumps(ranks),)
    # A page in received order stops at its end: each row it walks is tested on its own.
    walks = not collapse and limit is not None and ranks is None
    walks = walks and all(k.sql in _RECEIVED_ORDER for k in keys)
    condition_sql = (where.walked if walks else None) or where.sql
    source = _source(
        scope, condition_sql, join, "e.id", "e.thread_id" if collapse else "",
        *(k.sql for k in keys),
    )  # fmt: skip
    where_sql, join, id_sql, thread_sql, *key_sql = source.texts
    rows = source.rows
    scoped = [OrderKey(sql, k.ascending, k.params) for sql, k in zip(key_sql, keys, strict=True)]
    order_sql, order_params = _order(scoped)
    window = (limit if limit is not None else NO_LIMIT, offset)
    condition = f"{source.condition} AND ({where_sql})"
    params = (*source.params, *where.params)
    if not collapse:
        sql = (
            f"{prelude}SELECT {id_sql} FROM {rows}{join} WHERE {condition} "
            f"ORDER BY {order_sql} LIMIT ? OFFSET ?"
        )
        return sql, (*prelude_params, *params, *order_params, *window)
    columns = ", ".join(f"{k.sql} AS k{i}" for i, k in enumerate(scoped))
    outer = ", ".join(f"k{i} {'ASC' if k.ascending else 'DESC'}" for i, k in enumerate(keys))
    sql = (
        f"{prelude}SELECT id FROM (SELECT {id_sql} AS id, {columns}, ROW_NUMBER() OVER "
        f"(PARTITION BY {thread_sql} ORDER BY {order_sql}) AS n FROM {rows}{join} "
        f"WHERE {condition}) AS ranked WHERE n = 1 ORDER BY {outer} LIMIT ? OFFSET ?"
    )
    return sql, (*prelude_params, *order_params, *order_params, *params, *window)


def count_unmet(
    where: Clause, *, collapse: bool, scope: Scope | None = None
) -> tuple[int, str, tuple[object, ...]] | None:
    """Where the matches are most of a folder (``Clause.unmet``): the folder's count of
    Emails, and the statement for those of them that do not match, which the store takes
    from it; None where that does not apply."""
    if collapse or where.unmet is None or scope is None or scope.total is None:
        return None
    sql, params = count(Clause(where.unmet, where.params), collapse=False, scope=scope)
    return scope.total, sql, params


def count(
    where: Clause, *, collapse: bool, scope: Scope | None = None
) -> tuple[str, tuple[object, ...]]:
    what = "COUNT(DISTINCT e.thread_id)" if collapse else "COUNT(*)"
    source = _source(scope, where.sql, what)
    where_sql, what = source.texts
    return (
        f"SELECT {what} FROM {source.rows} WHERE {source.condition} AND ({where_sql})",
        (*source.params, *where.params),
    )


def locations_of(where: Clause) -> tuple[str, tuple[object, ...]]:
    """(mailbox id, UID) of every copy of the matching Emails: where a SEARCH must look."""
    source = _source(Scope(""), where.sql)
    return (
        f"SELECT l.mailbox_id, l.uid FROM {source.rows} WHERE ({source.texts[0]}) "
        "ORDER BY l.mailbox_id, l.uid",
        where.params,
    )


HEADER_COLUMNS = {
    "from": "from_text", "to": "to_text", "cc": "cc_text", "bcc": "bcc_text",
    "subject": "subject_text",
}  # fmt: skip
# The shortest word the full-text index finds: its tokens are three characters.
TRIGRAM = 3
# A store's header_words_match: the Emails its full-text index finds for (field, words).
WordsIndex = Callable[[str, Sequence[str]], "Clause | None"]


def header_words_match(field: str, words: Sequence[str]) -> Clause | None:
    """A SELECT of the Emails (``header_text.email_id``) whose ``field``, where exact,
    holds each of ``words`` within one of its words, by the header index; None when no word
    is long enough for the index to find (every word shorter than TRIGRAM). Words are
    case-mapped as the index stores them and hold no space, so a substring of the field's
    text is one within a word.

    SQLite's form, the one piece of SQLite's own in this module: FTS5's trigram
    tokenizer (schema, migration 8), case-sensitive since both sides are case-mapped
    already, where a phrase is exactly a substring; its entries are turned into Emails by
    the covering index of migration 9, named since SQLite, without statistics, would take
    the unique one, which reads each entry's whole row for its id (2,689 entries: 5.1 ms
    against 2.0). The store passes its own form to the clauses below
    (``Store.header_words_match``): PostgreSQL's is pg_trgm's
    (bridge.store.dialect.header_words_like).
    """
    column = HEADER_COLUMNS[field]
    found = [w for w in words if len(w) >= TRIGRAM]
    if not found:
        return None
    # An FTS5 string: in double quotes, each inner one doubled (words hold none today).
    phrases = " AND ".join(f'{column} : "{w.replace(chr(34), chr(34) * 2)}"' for w in found)
    return Clause(
        "SELECT email_id FROM header_text INDEXED BY header_text_entry WHERE entry IN "
        "(SELECT rowid FROM header_words WHERE header_words MATCH ?)",
        (phrases,),
    )


def _holding(column: str, words: Sequence[str]) -> Clause:
    return Clause("".join(f" AND instr({column}, ?) > 0" for _ in words), tuple(words))


def _exact_rows(bit: int, indexed: Clause | None) -> Clause:
    """The condition on ``header_text h`` of a field that is exact and may hold the words
    the full-text index looked up (``indexed``, its answer), or, where it cannot answer
    (None), of a field that is exact: its column is read then."""
    if indexed is None:
        return Clause("(h.inexact & ?) = 0", (bit,))
    return Clause(f"h.email_id IN ({indexed.sql})", indexed.params)


def header_holds(
    field: str, bit: int, words: Sequence[str], *, index: WordsIndex, common: bool = False
) -> Clause:
    """Emails whose indexed ``field`` is exact (``bit`` clear) and has each of ``words``
    within one of its words: the cache's own answer (bridge.mail.header_text), through the
    store's full-text ``index``.

    ``common`` (most Emails match): the set is built by reading every row in the table's
    order, which beats the full-text index's scattered lookups when they would find
    nearly every row anyway (50,000 Emails all matching, in a cache filled as mail came:
    a total in 23-45 ms against 116-320 ms; testing each row as the query walks them was
    68-150 ms, its probes as scattered). A page in received order walks instead, and
    stops at its end (10,000 Emails: 0.05 ms against 3 ms). Otherwise the full-text
    index finds the set where it can, at the cost of the matches."""
    if not common:
        holders, params = header_holders(field, bit, words, index=index)
        return Clause(f"e.id IN ({holders})", params)
    column = f"h.{HEADER_COLUMNS[field]}"
    test = _holding(column, words)
    condition = f"(h.inexact & ?) = 0{test.sql}"
    # Every Email has its header_text row (NULL fields until read): the rows where the
    # condition is not true are exactly the Emails that do not hold the words.
    return Clause(
        f"e.id IN (SELECT h.email_id FROM header_text h WHERE {condition})",
        (bit, *test.params),
        walked=f"EXISTS (SELECT 1 FROM header_text h WHERE h.email_id = e.id AND {condition})",
        unmet=f"e.id IN (SELECT h.email_id FROM header_text h WHERE ({condition}) IS NOT TRUE)",
    )


def header_holders(
    field: str, bit: int, words: Sequence[str], *, index: WordsIndex
) -> tuple[str, tuple[object, ...]]:
    """The statement for the ids of the Emails ``header_holds`` finds when not common:
    the full-text index's answer, the rows read only for words too short for it. A query
    read twice (its page, then its total) runs it once (``Store.header_holders``)."""
    indexed = index(field, words)
    short = _holding(f"h.{HEADER_COLUMNS[field]}", [w for w in words if len(w) < TRIGRAM])
    if indexed is not None and not short.params:
        return indexed.sql, indexed.params
    rows = _exact_rows(bit, indexed)
    return f"SELECT h.email_id FROM header_text h WHERE {rows.sql}{short.sql}", (
        *rows.params,
        *short.params,
    )


def header_may_hold(
    field: str,
    bit: int,
    token_words: Sequence[Sequence[str]],
    *,
    exact_known: bool,
    index: WordsIndex,
) -> Clause:
    """The Emails the upstream's SEARCH of ``field`` must decide: not indexed yet, those
    whose field is inexact and whose letters and digits hold every token's (the token's
    words joined), and, unless ``exact_known`` (every token one word, which header_holds
    answers), those with the field exact that do. A token's word lies within one word of
    an exact field, so the full-text index narrows those."""
    keys = _holding(f"replace(h.{HEADER_COLUMNS[field]}, ' ', '')",
                    ["".join(words) for words in token_words])  # fmt: skip
    # The first term is header_text_uncertain's condition: that index is read, not the table.
    uncertain = (
        "SELECT h.email_id FROM header_text h WHERE (h.inexact IS NULL OR h.inexact <> 0) "
        f"AND (h.inexact IS NULL OR ((h.inexact & ?) <> 0{keys.sql}))"
    )
    params: tuple[object, ...] = (bit, *keys.params)
    if not exact_known:
        rows = _exact_rows(bit, index(field, [w for words in token_words for w in words]))
        uncertain += f" UNION ALL SELECT h.email_id FROM header_text h WHERE {rows.sql}{keys.sql}"
        params += rows.params + keys.params
    return Clause(f"e.id IN ({uncertain})", params)
