"""JMAP ids derived from stable upstream keys.

An id is a hash of the upstream's own stable identifier (MAILBOXID/EMAILID, Dovecot's
X-GUID, Gmail's X-GM-MSGID, or a key the cache mints), so the same message keeps the same
id even after the cache is deleted and rebuilt. 96 bits keep collisions out of reach for
any mailbox a person can own, and 16 base64url characters are within RFC 8620 §1.2's
alphabet.
"""

from __future__ import annotations

import base64
import hashlib
import secrets


def derive_id(prefix: str, upstream_key: str) -> str:
    digest = hashlib.blake2b(upstream_key.encode(), digest_size=12).digest()
    return prefix + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def random_token(length: int = 8) -> str:
    return secrets.token_urlsafe(length)[:length].replace("-", "x").replace("_", "y")
