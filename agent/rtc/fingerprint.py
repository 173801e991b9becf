"""The certificate fingerprint hashes (RFC 8122 a=fingerprint), in one table.

SDP parsing (which hash names an offer may use, and how long each digest is), the certificate
(computing our own fingerprint) and DTLS (checking the peer's) all read this table, so the
three can never disagree on what is supported.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from cryptography.hazmat.primitives import hashes

# Names as registered for SDP `a=fingerprint` (RFC 8122, IANA "Hash Function Textual Names").
FINGERPRINT_HASHES: Final[Mapping[str, type[hashes.HashAlgorithm]]] = MappingProxyType(
    {
        "sha-1": hashes.SHA1,
        "sha-224": hashes.SHA224,
        "sha-256": hashes.SHA256,
        "sha-384": hashes.SHA384,
        "sha-512": hashes.SHA512,
    }
)
SUPPORTED_FINGERPRINT_ALGORITHMS: Final[frozenset[str]] = frozenset(FINGERPRINT_HASHES)


def hash_for(algorithm: str) -> hashes.HashAlgorithm:
    """A fresh hash object for an SDP hash name (any case); ValueError if unsupported."""
    try:
        return FINGERPRINT_HASHES[algorithm.lower()]()
    except KeyError:
        supported = ", ".join(sorted(FINGERPRINT_HASHES))
        raise ValueError(
            f"unsupported fingerprint algorithm {algorithm!r} (supported: {supported})"
        ) from None


def digest_size(algorithm: str) -> int:
    """Length in bytes of a fingerprint made with `algorithm`; ValueError if unsupported."""
    return hash_for(algorithm).digest_size


def format_fingerprint(digest: bytes) -> str:
    """Uppercase hex pairs joined by colons, the SDP `a=fingerprint` spelling."""
    return digest.hex(":").upper()
