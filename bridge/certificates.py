"""What a TLS connection and its server certificate say, for reasons and for ``doctor``."""

from __future__ import annotations

import ssl
from datetime import UTC
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from cryptography import x509


class TlsInfo(msgspec.Struct, frozen=True):
    version: str
    cipher: str
    subject: str
    issuer: str
    not_after: str  # ISO 8601, UTC
    names: tuple[str, ...]  # what the certificate is valid for


def tls_info(sock: object) -> TlsInfo | None:
    """The TLS version, cipher and certificate of ``sock``; None for a plain socket."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    der = sock.getpeercert(binary_form=True)
    cipher = sock.cipher()
    certificate = load_der(der) if der else None
    return TlsInfo(
        version=sock.version() or "",
        cipher=cipher[0] if cipher else "",
        subject=certificate.subject.rfc4514_string() if certificate else "",
        issuer=certificate.issuer.rfc4514_string() if certificate else "",
        not_after=expiry(certificate) if certificate else "",
        names=tuple(names(certificate)) if certificate else (),
    )


def load_der(der: bytes) -> x509.Certificate:
    # cryptography loads only when a certificate is read (a failure explained, doctor):
    # an idle bridge does not carry it.
    from cryptography import x509

    return x509.load_der_x509_certificate(der)


def expiry(certificate: x509.Certificate) -> str:
    return certificate.not_valid_after_utc.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def names(certificate: x509.Certificate) -> list[str]:
    """The names a certificate is valid for: its subjectAltName entries, else its CN."""
    from cryptography import x509

    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        common = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return [str(attribute.value) for attribute in common] or ["no name"]
    found = extension.value
    return [*found.get_values_for_type(x509.DNSName)] + [
        str(address) for address in found.get_values_for_type(x509.IPAddress)
    ]
