"""The HMAC-signed state cookie (RFC 9260 5.1.3): the responder keeps no state for an INIT.

Everything the responder must remember about the INIT travels in the cookie, signed with a
key only this association knows, and comes back in COOKIE ECHO.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Self

# Cookies older than this are stale (RFC 9260 15: Valid.Cookie.Life).
COOKIE_LIFETIME = 60.0
_BODY = struct.Struct("!dIIIIHHB")
_MAC_SIZE = 16
_FLAG_FORWARD_TSN = 0x01
_FLAG_RECONFIG = 0x02


@dataclass(frozen=True, slots=True)
class StateCookie:
    """What an INIT told us, plus our own tag and when we answered it."""

    created: float
    local_tag: int
    peer_tag: int
    peer_initial_tsn: int
    peer_rwnd: int
    peer_outbound_streams: int
    peer_inbound_streams: int
    peer_forward_tsn: bool
    peer_reconfig: bool

    def sign(self, key: bytes) -> bytes:
        flags = (_FLAG_FORWARD_TSN if self.peer_forward_tsn else 0) | (
            _FLAG_RECONFIG if self.peer_reconfig else 0
        )
        body = _BODY.pack(
            self.created,
            self.local_tag,
            self.peer_tag,
            self.peer_initial_tsn,
            self.peer_rwnd,
            self.peer_outbound_streams,
            self.peer_inbound_streams,
            flags,
        )
        return body + hmac.new(key, body, hashlib.sha256).digest()[:_MAC_SIZE]

    @classmethod
    def verify(cls, data: bytes, key: bytes, now: float) -> Self:
        """The cookie if its MAC is ours and it is fresh; ValueError otherwise."""
        if len(data) != _BODY.size + _MAC_SIZE:
            raise ValueError("state cookie has the wrong length")
        body, mac = data[: _BODY.size], data[_BODY.size :]
        expected = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_SIZE]
        if not hmac.compare_digest(mac, expected):
            raise ValueError("state cookie signature mismatch")
        created, local, peer, tsn, rwnd, outbound, inbound, flags = _BODY.unpack(body)
        if not 0 <= now - created <= COOKIE_LIFETIME:
            raise ValueError("stale state cookie")
        return cls(
            created,
            local,
            peer,
            tsn,
            rwnd,
            outbound,
            inbound,
            bool(flags & _FLAG_FORWARD_TSN),
            bool(flags & _FLAG_RECONFIG),
        )
