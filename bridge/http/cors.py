"""CORS: which web pages may call bridge from a browser (the ``cors_origins`` setting).

A webmail on its own origin preflights every request that carries Authorization, and reads
an answer only if it names the page's origin. Two policies, because credentials decide
what an origin may do:

- Listed origins (``["https://mail.example.com"]``) are trusted with credentials: their
  pages may send the ``jmap_token`` cookie and Basic credentials the browser has cached,
  so the answer names the origin and says ``Access-Control-Allow-Credentials: true``.
- ``"*"`` lets every page in, without credentials: browsers refuse a ``*`` answer to a
  request that carries cookies or cached Basic credentials, so a page must hold the
  password or a token itself and put it in Authorization (allowed because it is listed
  by name in Allow-Headers; a ``*`` there would not cover it). No page can ride on
  credentials a user left in the browser. Mirroring the origin with credentials, which
  starlette does for ``*`` with ``allow_credentials``, would hand every site the
  user's mail, so ``*`` never allows credentials.

Every answer to an allowed origin carries the headers, errors (401, 413, 429) included,
so the page can read why; ``Vary: Origin`` keeps caches from serving one origin's answer
to another. WebSocket upgrades are not CORS requests: bridge.http.websocket checks their
Origin itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

METHODS = ("GET", "POST", "DELETE")
# Beyond the always-allowed (Accept, Content-Type with a form's types...): Content-Type
# with application/json is not safelisted, and Last-Event-ID is what an EventSource
# polyfill resends on reconnect.
REQUEST_HEADERS = ("Authorization", "Content-Type", "Last-Event-ID")
# What a page reads of an answer beyond the safelisted headers: why it was refused and
# when to retry, a download's file name, and where a redirect points.
RESPONSE_HEADERS = ("WWW-Authenticate", "Retry-After", "Content-Disposition", "Location")
PREFLIGHT_CACHE_SECONDS = 600


def cors_middleware(origins: Sequence[str]) -> list[Middleware]:
    """The middleware for ``cors_origins`` (checked by Settings.validate); none when empty,
    so that browsers keep their same-origin rule."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=METHODS,
            allow_headers=REQUEST_HEADERS,
            allow_credentials="*" not in origins,
            expose_headers=RESPONSE_HEADERS,
            max_age=PREFLIGHT_CACHE_SECONDS,
        )
    ]
