"""The Email ``preview``: the start of the body as one line of plain text (RFC 8621 §4.1.4)."""

from __future__ import annotations

import html
import re

PREVIEW_LENGTH = 256
# Enough HTML to find the first few hundred characters of text behind a large <head>; the
# regular expressions below stay linear on it.
HTML_SCAN_LIMIT = 512 * 1024

_INVISIBLE = re.compile(
    r"<!--.*?(?:-->|\Z)|<(script|style|head|title|template)\b.*?(?:</\1\s*>|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_TAG = re.compile(r"<[a-zA-Z/!?][^>]*>?")


def preview_from_text(text: str, limit: int = PREVIEW_LENGTH) -> str:
    """``text`` with all white space runs collapsed to one space, cut to ``limit`` characters."""
    # Words of one character or more, one space between: this many always reach the limit.
    enough = limit // 2 + 1
    words = text.split(None, enough)
    if len(words) > enough:
        words.pop()  # the unsplit rest
    return " ".join(words)[:limit]


def html_to_text(markup: str) -> str:
    """The visible text of an HTML document, roughly: tags dropped, entities decoded."""
    markup = _INVISIBLE.sub(" ", markup[:HTML_SCAN_LIMIT])
    return html.unescape(_TAG.sub(" ", markup))
