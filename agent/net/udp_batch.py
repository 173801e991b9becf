"""Many datagrams to one address in one system call: ``sendmmsg(2)`` through ctypes.

Python's socket module has no ``sendmmsg``; a frame of 720p video is 5-60 packets to each
viewer, and one ``sendto`` per packet made the system call, not SRTP, the largest cost of
the fan-out (py-spy: half of the per-packet time; docs/BENCHMARKS.md, "Before / after").
Here the frame's packets are joined into one buffer (a single C-level copy), an ``iovec``
per packet points into it, and one ``sendmmsg`` hands them all to the kernel.

Only on Linux (glibc or musl export ``sendmmsg``); :func:`batch_sender` returns None
elsewhere, or for an address it cannot encode, and the caller sends one by one. The
structures are declared with ctypes so their layout follows the platform (a 32-bit Raspberry
Pi OS included).
"""

from __future__ import annotations

import array
import ctypes
import errno
import itertools
import os
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

# Datagrams one system call takes; a longer list goes in several calls. Linux's own cap
# (UIO_MAXIOV) is 1024; a keyframe of 720p at 2 Mbit/s is about 60 packets.
MAX_BATCH = 64


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


def _load_sendmmsg() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.sendmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_sendmmsg = _load_sendmmsg()
# The iovec array is shared by every sender: sending is synchronous on the event loop's
# thread and the kernel has copied the data when sendmmsg returns, so one array serves all.
_iovecs = (_IoVec * MAX_BATCH)()
# The same memory as size_t words (base, length, base, length, ...): filled by two slice
# assignments per call instead of two ctypes attribute writes per packet. "L" (unsigned
# long) is size_t and a pointer on Linux, 32-bit and 64-bit alike.
_iovec_words = memoryview(_iovecs).cast("B").cast("L")
_BLOCKED = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)

# UDP GSO (linux/udp.h): a control message (SOL_UDP, UDP_SEGMENT, u16 segment size).
_UDP_SEGMENT = 103
_SOL_UDP = 17
GSO_MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS
GSO_MAX_BYTES = 60000  # one buffer must fit an IP datagram (64 KiB) with its headers
_SEGMENT = struct.Struct("=H")
_GSO_POSSIBLE = _sendmmsg is not None and hasattr(socket, "CMSG_SPACE")
_CMSG_SPACE = socket.CMSG_SPACE(_SEGMENT.size) if _GSO_POSSIBLE else 0
_CMSG_DATA = socket.CMSG_LEN(0) if _GSO_POSSIBLE else 0
# struct cmsghdr {size_t cmsg_len; int cmsg_level; int cmsg_type;} then the data.
_CMSG_TEMPLATE = (
    struct.pack("@Nii", socket.CMSG_LEN(_SEGMENT.size), _SOL_UDP, _UDP_SEGMENT).ljust(
        _CMSG_SPACE, b"\0"
    )
    if _GSO_POSSIBLE
    else b""
)
# What a kernel (before 4.18: ENOPROTOOPT/EINVAL) or a path (EIO: no checksum offload,
# IPsec) that cannot segment answers.
_GSO_REFUSED = (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP)


def _sockaddr(family: int, addr: tuple[str, int]) -> ctypes.Array[ctypes.c_char] | None:
    """``struct sockaddr_in``/``sockaddr_in6`` for ``addr``, or None if it is not plain."""
    host, port = addr[0], addr[1]
    if not 0 < port < 65536:
        return None
    try:
        packed = socket.inet_pton(family, host)
    except (OSError, ValueError):
        return None  # a name, a scoped IPv6 address, or the other family
    family_bytes = family.to_bytes(2, sys.byteorder)
    port_bytes = port.to_bytes(2, "big")
    if family == socket.AF_INET:
        raw = family_bytes + port_bytes + packed + bytes(8)
    elif family == socket.AF_INET6:
        raw = family_bytes + port_bytes + bytes(4) + packed + bytes(4)
    else:
        return None
    return ctypes.create_string_buffer(raw, len(raw))


class DatagramSocket(Protocol):
    """What is needed of the socket: a ``socket.socket`` or asyncio's ``TransportSocket``."""

    @property
    def family(self) -> int: ...

    @property
    def type(self) -> int: ...

    def fileno(self) -> int: ...


def segment_runs(lengths: Sequence[int]) -> list[tuple[int, int, int]]:
    """Group datagram lengths for UDP GSO: (first index, count, segment size) per run of
    equal lengths, a shorter last one allowed (what the kernel segments back into the
    same datagrams); segment size 0 for a datagram sent as it is."""
    runs: list[tuple[int, int, int]] = []
    index, total = 0, len(lengths)
    while index < total:
        size = lengths[index]
        count = 1
        limit = min(GSO_MAX_SEGMENTS, GSO_MAX_BYTES // size) if size else 1
        while index + count < total and count < limit and lengths[index + count] == size:
            count += 1
        if index + count < total and count < limit and 0 < lengths[index + count] < size:
            count += 1  # the kernel allows the last segment to be shorter
        runs.append((index, count, size if count > 1 else 0))
        index += count
    return runs


class UdpBatchSender:
    """Sends lists of datagrams from one UDP socket to one address, ``sendmmsg`` per list.

    With ``gso``, each run of equal-sized datagrams (a NAL's FU-A fragments) goes as one
    buffer the kernel cuts into those datagrams (UDP_SEGMENT, Linux 4.18+): the network
    stack is walked once a run instead of once a packet. A kernel or device that refuses
    it turns it off for this sender and the datagrams go one by one. A datagram refused
    because the socket buffer is full is dropped (UDP media: the viewer's NACK or the next
    keyframe repairs it), as a failed ``sendto`` would be; other errors raise OSError.
    """

    def __init__(
        self, sock: DatagramSocket, name: ctypes.Array[ctypes.c_char], *, gso: bool = True
    ) -> None:
        self._sock = sock
        self._name = name  # kept alive: every header points at it
        self._headers = (_MMsgHdr * MAX_BATCH)()
        # One UDP_SEGMENT control message a header, filled in once but for its size.
        self._control = ctypes.create_string_buffer(_CMSG_SPACE * MAX_BATCH)
        self._control_words = memoryview(self._control).cast("B")
        iovec_base = ctypes.addressof(_iovecs)
        step = ctypes.sizeof(_IoVec)
        for index, header in enumerate(self._headers):
            header.msg_hdr.msg_name = ctypes.addressof(name)
            header.msg_hdr.msg_namelen = len(name)
            header.msg_hdr.msg_iov = iovec_base + index * step
            header.msg_hdr.msg_iovlen = 1
            header.msg_hdr.msg_control = ctypes.addressof(self._control) + index * _CMSG_SPACE
            self._control_words[index * _CMSG_SPACE : (index + 1) * _CMSG_SPACE] = _CMSG_TEMPLATE
        self.gso = gso and _GSO_POSSIBLE
        self.dropped = 0

    def send(self, datagrams: Sequence[bytes]) -> None:
        """Send ``datagrams`` in order; drops what a full socket buffer refuses."""
        # Asked every time: a closed socket says -1, and its old number may belong to
        # another socket by now.
        fd = self._sock.fileno()
        if fd < 0:
            raise OSError(errno.EBADF, "socket closed")
        for start in range(0, len(datagrams), MAX_BATCH):
            self._send_chunk(fd, datagrams[start : start + MAX_BATCH])

    def _send_chunk(self, fd: int, chunk: Sequence[bytes]) -> None:
        assert _sendmmsg is not None
        blob = b"".join(chunk)  # alive until sendmmsg returns
        lengths = array.array("L", map(len, chunk))
        runs = segment_runs(lengths) if self.gso else [(i, 1, 0) for i in range(len(chunk))]
        base = ctypes.cast(ctypes.c_char_p(blob), ctypes.c_void_p).value or 0
        offsets = list(itertools.accumulate(lengths, initial=0))
        count = len(runs)
        _iovec_words[0 : 2 * count : 2] = array.array("L", (base + offsets[r[0]] for r in runs))
        _iovec_words[1 : 2 * count : 2] = array.array(
            "L", (offsets[r[0] + r[1]] - offsets[r[0]] for r in runs)
        )
        headers = self._headers
        for index, (_, _, segment) in enumerate(runs):
            header = headers[index].msg_hdr
            if segment:
                _SEGMENT.pack_into(self._control, index * _CMSG_SPACE + _CMSG_DATA, segment)
                header.msg_controllen = _CMSG_SPACE
            else:
                header.msg_controllen = 0
        done = 0
        while done < count:
            offset = done * ctypes.sizeof(_MMsgHdr)
            sent = _sendmmsg(fd, ctypes.addressof(headers) + offset, count - done, 0)
            if sent >= 0:
                done += sent
                continue
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            if code in _BLOCKED:
                self.dropped += len(chunk) - runs[done][0]
                return  # this chunk's tail is lost; a later one may find room
            if self.gso and code in _GSO_REFUSED:
                self.gso = False  # e.g. EIO: a device without checksum offload
                self._send_chunk(fd, chunk[runs[done][0] :])
                return
            raise OSError(code, os.strerror(code))


def batch_sender(sock: DatagramSocket, addr: tuple[str, int]) -> UdpBatchSender | None:
    """A batch sender on ``sock`` to ``addr``, or None where sendmmsg cannot be used."""
    if _sendmmsg is None or sock.type != socket.SOCK_DGRAM:
        return None
    name = _sockaddr(sock.family, addr)
    if name is None:
        return None
    return UdpBatchSender(sock, name)
