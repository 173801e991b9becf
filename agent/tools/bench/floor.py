"""The floor a per-packet path is measured against: per packet and viewer, only SRTP protect
(libsrtp through our SrtpContext) and one ``sendto`` on loopback, in a tight loop. Whatever
the agent spends above this is its own Python overhead (stamping, bookkeeping, the loop)."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time

from agent.rtc.dtls import SrtpKeys, SrtpProfile
from agent.rtc.h264 import packetize
from agent.rtc.srtp import SrtpContext
from hw.frame import EncodedFrame


def floor_us_per_packet(frames: list[EncodedFrame], viewers: int) -> tuple[float, int]:
    """CPU microseconds per packet, and the packets sent, for ``frames`` to ``viewers``."""
    profile = SrtpProfile.AEAD_AES_128_GCM
    contexts = [
        SrtpContext(
            SrtpKeys(profile, os.urandom(profile.master_length), os.urandom(profile.master_length))
        )
        for _ in range(viewers)
    ]
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    addr = sink.getsockname()
    header = struct.Struct("!BBHII")
    payloads = [packetize(frame.nal_units) for frame in frames]
    sent = 0
    started = time.process_time()
    for index, frame_payloads in enumerate(payloads):
        for viewer, context in enumerate(contexts):
            for seq, payload in enumerate(frame_payloads):
                rtp = header.pack(0x80, 102, (index * 64 + seq) & 0xFFFF, index * 3000, viewer)
                # A full buffer drops: the kernel's cost, as on a real path.
                with contextlib.suppress(OSError):
                    sender.sendto(context.protect_parts(rtp, payload), addr)
                sent += 1
    elapsed = time.process_time() - started
    sender.close()
    sink.close()
    return elapsed / max(sent, 1) * 1e6, sent
