"""`edgecam bench inprocess`: the per-packet path alone, in one process and without ICE.

Encodes a few seconds of the test pattern once, sets up N real viewer sessions (our DTLS
handshake against a DTLS server in memory, so each viewer has its own SRTP context), then
pushes the frames through the fan-out as fast as it can: packetize once per frame, and per
viewer stamp the header, SRTP-protect and sendto() a local UDP socket. The figure is CPU
time per viewer per second of video, the number that decides how many viewers a Pi serves.
With --datachannel it also measures viewers that each hold one open, idle datachannel
(an established SCTP association): that must not slow the media path.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Sequence

from agent.media.fanout import FanOut
from agent.rtc.certificate import Certificate
from agent.rtc.datachannel import (
    ChannelOpened,
    ChannelOptions,
    ChannelsReady,
    DataChannels,
    SctpParams,
    data_channels_for,
)
from agent.rtc.dtls import (
    DtlsApplicationData,
    DtlsConnected,
    DtlsRole,
    DtlsState,
    DtlsTransport,
    SrtpProfile,
)
from agent.rtc.peer import PeerSession, PeerState, VideoSendParams
from agent.tools.args import Parser, integer, number, plain
from agent.tools.args import size as frame_size
from agent.tools.bench.pattern import encode_test_pattern
from hw.frame import EncodedFrame

UNLIMITED = 100_000_000  # bit/s


class _UdpSink:
    """What the peer driver does per frame: the peer's hot path, then its pacer's timers
    up to the next frame (in the frames' own time), each batch with one sendto a packet."""

    def __init__(
        self, peer: PeerSession, sock: socket.socket, addr: tuple[str, int], interval: float
    ) -> None:
        self.peer = peer
        self.sock = sock
        self.addr = addr
        self.interval = interval

    def send_frame(self, payloads: Sequence[bytes], pts_90k: int, now: float) -> None:
        peer = self.peer
        peer.send_frame(payloads, pts_90k, now)
        self._send()
        until = now + self.interval
        while (timer := peer.get_timer()) is not None and timer <= until:
            peer.handle_timer(max(timer, now))
            self._send()

    def _send(self) -> None:
        send, addr = self.sock.sendto, self.addr
        for datagram in self.peer.datagrams_to_send():
            send(datagram, addr)


def connected_peer(
    certificate: Certificate, profile: SrtpProfile, *, datachannel: bool = False
) -> PeerSession:
    """A viewer session whose DTLS handshake ran against an in-memory DTLS server; with
    ``datachannel``, also an SCTP association to in-memory datachannels and one open
    channel (`control`, idle from then on)."""
    remote_cert = Certificate.generate()
    peer = PeerSession(
        certificate=certificate,
        dtls_role=DtlsRole.CLIENT,
        remote_fingerprints=[("sha-256", remote_cert.fingerprint("sha-256"))],
        # No receiver sends feedback here, so the estimate stays where it starts: start it
        # above any stream the bench sends, so the pacer paces but never drops (this
        # measures CPU, not the estimator's choices).
        video=VideoSendParams(
            payload_type=102,
            ssrc=0x1234,
            cname="bench",
            start_bitrate=UNLIMITED,
            max_bitrate=UNLIMITED,
        ),
        srtp_profiles=[profile],
        sctp=SctpParams() if datachannel else None,
    )
    server = DtlsTransport(
        remote_cert, DtlsRole.SERVER, [("sha-256", certificate.fingerprint("sha-256"))]
    )
    remote = (
        data_channels_for(SctpParams(), dtls_client=False, name="bench") if datachannel else None
    )
    opened = not datachannel
    peer.start(0.0)
    for _ in range(40):
        for datagram in peer.datagrams_to_send():
            server.receive(datagram, 0.0)
        _serve_remote(server, remote)
        for datagram in server.datagrams_to_send():
            peer.receive(datagram, 0.0)
        while (event := peer.next_event()) is not None:
            if isinstance(event, ChannelsReady) and peer.channels is not None:
                peer.channels.open_channel(ChannelOptions("control"), 0.0)
            opened = opened or isinstance(event, ChannelOpened)
        connected = peer.state is PeerState.CONNECTED and server.state is DtlsState.CONNECTED
        if connected and opened:
            return peer
    raise RuntimeError("the in-memory DTLS (and SCTP) handshake did not finish")


def _serve_remote(server: DtlsTransport, remote: DataChannels | None) -> None:
    """The in-memory viewer's datachannels: DTLS application data in and out."""
    while (event := server.next_event()) is not None:
        if remote is None:
            continue
        if isinstance(event, DtlsConnected):
            remote.start(0.0)
        elif isinstance(event, DtlsApplicationData):
            remote.receive(event.data, 0.0)
    if remote is not None:
        while remote.next_event() is not None:
            pass
        for packet in remote.datagrams_to_send():
            server.send_application_data(packet)


def run_fanout(
    frames: list[EncodedFrame],
    viewers: int,
    profile: SrtpProfile,
    *,
    datachannel: bool = False,
    framerate: float = 30.0,
) -> float:
    """CPU seconds to fan ``frames`` out to ``viewers`` (pacers drained between frames)."""
    certificate = Certificate.generate()
    sink_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink_socket.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    addr = sink_socket.getsockname()
    fanout = FanOut(lambda: None)
    for _ in range(viewers):
        peer = connected_peer(certificate, profile, datachannel=datachannel)
        fanout.add(_UdpSink(peer, sender, addr, 1 / framerate), 0.0)
    # Nobody reads the receiving socket: its buffer fills and the kernel drops, which costs
    # the sender the same as a real path.
    started = time.process_time()
    for frame in frames:
        fanout.push(frame, frame.pts_90k / 90000)
    elapsed = time.process_time() - started
    sender.close()
    sink_socket.close()
    return elapsed


def build_parser() -> Parser:
    parser = Parser(
        prog="edgecam bench inprocess",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--viewers",
        type=integer(1, 1000),
        default=10,
        help="viewers to measure with, 1..1000 (default 10)",
    )
    parser.add_argument(
        "--size",
        type=frame_size,
        default=(1280, 720),
        help="test pattern WIDTHxHEIGHT, even (default 1280x720)",
    )
    parser.add_argument(
        "--framerate",
        type=integer(1, 120),
        default=30,
        help="frames per second, 1..120 (default 30)",
    )
    parser.add_argument(
        "--bitrate",
        type=integer(50_000, 50_000_000),
        default=2_000_000,
        help="bits per second, 50000..50000000 (default 2000000)",
    )
    parser.add_argument(
        "--seconds",
        type=number(1, 600),
        default=10.0,
        help="seconds of video to send, 1..600 (default 10)",
    )
    parser.add_argument(
        "--profile",
        choices=[p.name for p in SrtpProfile],
        default="AEAD_AES_128_GCM",
        help="SRTP protection profile (default AEAD_AES_128_GCM)",
    )
    parser.add_argument(
        "--datachannel",
        action="store_true",
        help="also measure viewers that each hold one open, idle datachannel",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    width, height = args.size
    print(
        f"encoding {args.seconds:g} s of {width}x{height}@{args.framerate} at {args.bitrate} bit/s"
    )
    frames = encode_test_pattern(width, height, args.framerate, args.seconds, args.bitrate)
    video_seconds = len(frames) / args.framerate
    size = sum(f.size for f in frames)
    print(f"{len(frames)} frames, {size * 8 / video_seconds / 1e6:.2f} Mbit/s")
    profile = SrtpProfile[args.profile]
    base = run_fanout(frames, 0, profile, framerate=args.framerate)
    loaded = run_fanout(frames, args.viewers, profile, framerate=args.framerate)
    per_viewer = (loaded - base) / args.viewers / video_seconds
    print(f"packetize only (0 viewers): {base / video_seconds * 100:.2f}% of one core")
    print(
        f"{args.viewers} viewers: {loaded / video_seconds * 100:.1f}% of one core; "
        f"per viewer: {per_viewer * 100:.2f}% of one core "
        f"({per_viewer * 1e3:.2f} ms CPU per second of video, {args.profile})"
    )
    if args.datachannel:
        with_channel = run_fanout(
            frames, args.viewers, profile, datachannel=True, framerate=args.framerate
        )
        per_viewer_dc = (with_channel - base) / args.viewers / video_seconds
        print(
            f"{args.viewers} viewers with an idle datachannel each: per viewer "
            f"{per_viewer_dc * 100:.2f}% of one core "
            f"({(per_viewer_dc / per_viewer - 1) * 100:+.1f}% against without)"
        )
    return 0
