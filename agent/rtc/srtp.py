"""SRTP/SRTCP protection for one DTLS-SRTP association, on pylibsrtp (libsrtp 2).

One outbound session (any SSRC we send) keyed with our master key+salt, one inbound
session (any SSRC the peer sends) keyed with the peer's. libsrtp keeps the replay
windows and rollover counters per SSRC inside each session.

Outbound replay protection stays on: libsrtp refuses to protect the same sequence number
twice, which with AES-GCM would reuse a nonce. A NACK must therefore be answered with the
SRTP bytes already sent (or an RTX packet with its own sequence number), not by
protecting the same RTP packet again.
"""

from __future__ import annotations

from typing import Any

import pylibsrtp
from pylibsrtp._binding import ffi, lib  # the cffi library pylibsrtp itself wraps

from agent.rtc.dtls import SrtpKeys, SrtpProfile

# The packet buffer of the fast path: a UDP payload on a 1500-byte MTU is the most anyone
# sends, and libsrtp may append up to SRTP_MAX_TRAILER_LEN after the packet.
_BUFFER_SIZE = 1500
_MAX_PLAINTEXT = _BUFFER_SIZE - pylibsrtp.SRTP_MAX_TRAILER_LEN

_LIBSRTP_PROFILE = {
    SrtpProfile.AEAD_AES_128_GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    SrtpProfile.AES128_CM_SHA1_80: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
}


class SrtpError(ValueError):
    """A packet that could not be protected or unprotected; the reason is libsrtp's."""


class SrtpContext:
    """Protects what we send and unprotects what the peer sends, with `SrtpKeys`.

    `protect` is on the media hot path: it is one call into libsrtp with nothing added
    but the exception translation, which costs nothing when no error is raised.
    """

    def __init__(self, keys: SrtpKeys) -> None:
        profile = keys.profile
        for which, master in (("local", keys.local_master), ("remote", keys.remote_master)):
            if len(master) != profile.master_length:
                raise ValueError(
                    f"{which} SRTP master key+salt is {len(master)} bytes, "
                    f"{profile.name} needs {profile.master_length}"
                )
        libsrtp_profile = _LIBSRTP_PROFILE[profile]
        outbound = pylibsrtp.Session(
            pylibsrtp.Policy(
                key=keys.local_master,
                ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                srtp_profile=libsrtp_profile,
            )
        )
        inbound = pylibsrtp.Session(
            pylibsrtp.Policy(
                key=keys.remote_master,
                ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                srtp_profile=libsrtp_profile,
            )
        )
        self.profile = profile
        self._outbound = outbound
        # The media hot path protects in place in one preallocated buffer: header and payload
        # are copied into it once, with none of Session.protect's per-call allocations.
        self._srtp_t: Any = outbound._srtp[0]
        self._cdata: Any = ffi.new("char[]", _BUFFER_SIZE)
        self._buffer: Any = ffi.buffer(self._cdata)
        self._length: Any = ffi.new("int *")
        # Bound methods looked up once, not on every packet.
        self._protect = outbound.protect
        self._protect_rtcp = outbound.protect_rtcp
        self._unprotect = inbound.unprotect
        self._unprotect_rtcp = inbound.unprotect_rtcp

    def protect(self, rtp: bytes) -> bytes:
        """RTP packet -> SRTP packet. SrtpError if libsrtp refuses (too long, repeated)."""
        try:
            return self._protect(rtp)
        except (pylibsrtp.Error, ValueError) as exc:
            raise SrtpError(f"srtp protect failed: {exc}") from exc

    def protect_parts(self, header: bytes | bytearray, payload: bytes | memoryview) -> bytes:
        """Protect the RTP packet ``header + payload`` without joining them first.

        Same output as ``protect(header + payload)``; the per-viewer, per-packet path.
        """
        size = len(header)
        end = size + len(payload)
        if end > _MAX_PLAINTEXT:
            raise SrtpError(f"srtp protect failed: packet of {end} bytes is too long")
        buffer = self._buffer
        buffer[0:size] = header
        buffer[size:end] = payload
        length = self._length
        length[0] = end
        status = lib.srtp_protect(self._srtp_t, self._cdata, length)
        if status != lib.srtp_err_status_ok:
            errors = pylibsrtp.ERRORS
            reason = errors[status] if 0 <= status < len(errors) else f"status {status}"
            raise SrtpError(f"srtp protect failed: {reason}")
        result: bytes = buffer[0 : length[0]]
        return result

    def unprotect(self, srtp: bytes) -> bytes:
        """SRTP packet from the peer -> RTP packet. SrtpError on authentication or replay."""
        try:
            return self._unprotect(srtp)
        except (pylibsrtp.Error, ValueError) as exc:
            raise SrtpError(f"srtp unprotect failed: {exc}") from exc

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """RTCP compound packet -> SRTCP packet."""
        try:
            return self._protect_rtcp(rtcp)
        except (pylibsrtp.Error, ValueError) as exc:
            raise SrtpError(f"srtcp protect failed: {exc}") from exc

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """SRTCP packet from the peer -> RTCP compound packet."""
        try:
            return self._unprotect_rtcp(srtcp)
        except (pylibsrtp.Error, ValueError) as exc:
            raise SrtpError(f"srtcp unprotect failed: {exc}") from exc
