"""Message encryption for Web Push (RFC 8291), when a PushSubscription has keys.

The ``aes128gcm`` content coding itself (RFC 8188) is the ``http_ece`` library's, written
by that RFC's author; this module checks the client's keys and makes the per-message
sender key pair and salt that RFC 8291 §3.1 calls for.
"""

from __future__ import annotations

import base64
import binascii
import os

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec

CONTENT_ENCODING = "aes128gcm"
AUTH_SECRET_LENGTH = 16  # RFC 8291 §3.2


class InvalidKeys(ValueError):
    pass


def _b64url(value: str, name: str) -> bytes:
    # RFC 8620 §7.2 says "URL-safe base64"; clients differ on padding, so accept both.
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise InvalidKeys(f"{name} is not URL-safe base64") from None


def receiver_keys(p256dh: str, auth: str) -> tuple[ec.EllipticCurvePublicKey, bytes]:
    """The client's P-256 public key and authentication secret, or InvalidKeys."""
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), _b64url(p256dh, "p256dh")
        )
    except ValueError as exc:
        if isinstance(exc, InvalidKeys):
            raise
        raise InvalidKeys("p256dh is not an uncompressed P-256 public key") from None
    secret = _b64url(auth, "auth")
    if len(secret) != AUTH_SECRET_LENGTH:
        raise InvalidKeys(f"auth must be {AUTH_SECRET_LENGTH} octets")
    return public, secret


def encrypt(body: bytes, p256dh: str, auth: str) -> bytes:
    """``body`` as one aes128gcm record for this receiver (RFC 8291 §4)."""
    public, secret = receiver_keys(p256dh, auth)
    sender = ec.generate_private_key(ec.SECP256R1())
    encrypted: bytes = http_ece.encrypt(
        body,
        salt=os.urandom(16),
        private_key=sender,
        dh=public,
        auth_secret=secret,
        version=CONTENT_ENCODING,
    )
    return encrypted
