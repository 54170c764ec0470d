"""SearchSnippet/get (RFC 8621 §5): the subject and a piece of the body, with the words
the filter looked for wrapped in <mark>, everything else HTML-escaped."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import msgspec

from bridge.imap.search import tokens
from bridge.jmap import CallContext, MethodError, decode_args
from bridge.mail.blobs import blob_id
from bridge.mail.common import account_of
from bridge.mail.email_get import load_summaries
from bridge.mail.messages import parsed_messages
from bridge.mime import ParsedMessage, email_properties, html_to_text

# Conditions whose text can show in the subject or in the body.
SUBJECT_CONDITIONS = ("text", "subject")
BODY_CONDITIONS = ("text", "body")
PREVIEW_OCTETS = 255
LEAD = 60  # characters of context kept before the first match
# The body text searched for a snippet: a match further in than this shows no snippet.
BODY_TEXT_LIMIT = 1 << 20


class SnippetArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    accountId: str
    filter: dict[str, Any] | None = None
    emailIds: list[str]


def _terms(node: Any, conditions: tuple[str, ...]) -> Iterator[str]:
    if not isinstance(node, dict):
        return
    if "operator" in node:
        if node.get("operator") == "NOT":
            return  # what must be absent is not what matched
        for condition in node.get("conditions") or []:
            yield from _terms(condition, conditions)
        return
    for name in conditions:
        value = node.get(name)
        if isinstance(value, str):
            yield from (term for term in tokens(value) if term.strip())


def _pattern(terms: list[str]) -> re.Pattern[str] | None:
    if not terms:
        return None
    alternatives = sorted({re.escape(term) for term in terms}, key=len, reverse=True)
    return re.compile("|".join(alternatives), re.IGNORECASE)


def highlight(text: str, pattern: re.Pattern[str]) -> str:
    out: list[str] = []
    position = 0
    for match in pattern.finditer(text):
        out.append(html.escape(text[position : match.start()], quote=False))
        out.append(f"<mark>{html.escape(match.group(), quote=False)}</mark>")
        position = match.end()
    out.append(html.escape(text[position:], quote=False))
    return "".join(out)


def body_snippet(text: str, pattern: re.Pattern[str]) -> str | None:
    """The stretch of ``text`` around its first match, marked up, at most 255 octets."""
    text = " ".join(text.split())
    first = pattern.search(text)
    if first is None:
        return None
    start = max(0, first.start() - LEAD)
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < first.start() else start
    words = text[start:].split(" ")
    # Drop words from the end until the marked-up form fits; the match sits near the start.
    while words:
        snippet = highlight(" ".join(words), pattern)
        if len(snippet.encode()) <= PREVIEW_OCTETS:
            return snippet
        words.pop()
    return None


def _body_text(message: ParsedMessage, email_id: str) -> str:
    props = email_properties(
        message, ["textBody", "htmlBody", "bodyValues"],
        blob_id_for=lambda part: blob_id(email_id, part), fetch_all=True,
        max_body_value_bytes=BODY_TEXT_LIMIT,
    )  # fmt: skip
    values = props.get("bodyValues") or {}
    parts = props.get("textBody") or props.get("htmlBody") or []
    texts = []
    for part in parts:
        value = values.get(part.get("partId"), {}).get("value", "")
        texts.append(html_to_text(value) if part.get("type") == "text/html" else value)
    return " ".join(texts)


def search_snippet_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    request = decode_args(SnippetArgs, args)
    ctx.check_max_objects(len(request.emailIds), "maxObjectsInGet")
    if request.filter is not None and not isinstance(request.filter, dict):
        raise MethodError("invalidArguments", "filter must be an object")
    account = account_of(ctx)
    account.sync()
    records = account.cache.emails(request.emailIds)
    subject_pattern = _pattern(list(_terms(request.filter, SUBJECT_CONDITIONS)))
    body_pattern = _pattern(list(_terms(request.filter, BODY_CONDITIONS)))
    summaries = load_summaries(account, records) if subject_pattern else {}
    # Each body is searched as it is read: only the snippets stay.
    body_snippets: dict[str, str | None] = {}
    if body_pattern is not None:
        for email_id, message in parsed_messages(account, records):
            body_snippets[email_id] = body_snippet(_body_text(message, email_id), body_pattern)
    found = []
    for email_id in dict.fromkeys(request.emailIds):
        if email_id not in records:
            continue
        subject = preview = None
        if subject_pattern is not None:
            text = str(summaries.get(email_id, {}).get("subject") or "")
            if subject_pattern.search(text):
                subject = highlight(text, subject_pattern)
        preview = body_snippets.get(email_id)
        found.append({"emailId": email_id, "subject": subject, "preview": preview})
    not_found = [e for e in dict.fromkeys(request.emailIds) if e not in records]
    return {"accountId": ctx.account_id, "list": found, "notFound": not_found or None}
