"""The bitrate controller with real viewer sessions (virtual-time peers, real DTLS/SRTP) and
bwe's real policy: the encoder follows the weakest viewer above the floor, and only it.
The camera is a stand-in for the hardware, with a source's set_bitrate."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.config import CameraConfig
from agent.net.session_stats import viewer_key
from agent.rtc import rtcp
from agent.rtc.dtls import DtlsRole, DtlsTransport
from agent.rtc.peer import PeerSession, VideoSendParams
from agent.runtime.bitrate import ENCODER_SHARE, BitrateController
from hw.source import StreamSettings
from tests.rtc.test_peer import AGENT_CERT, SSRC, VIEWER_CERT, Viewer, events, handshake


class FakeSource:
    """The part of a VideoSource the controller uses: settings and set_bitrate."""

    def __init__(self, bitrate: int) -> None:
        self.settings = StreamSettings(640, 360, 30, bitrate)
        self.calls: list[int] = []

    def set_bitrate(self, bitrate: int) -> None:
        self.calls.append(bitrate)
        self.settings = StreamSettings(640, 360, 30, bitrate)


@dataclass
class Camera:
    camera: CameraConfig
    source: FakeSource


@dataclass
class Viewers:
    peers_by_client: dict[str, PeerSession]
    max_bitrate: int = 0
    start_bitrate: int = 0
    below_floor: frozenset[str] = field(default_factory=frozenset)

    def peers(self) -> list[tuple[str, str, PeerSession]]:
        return [(client, "s1", peer) for client, peer in self.peers_by_client.items()]


def connected_viewer() -> tuple[PeerSession, object]:
    # As the session manager makes them: the estimate starts at and may reach what an
    # encoder at camera.bitrate (2 Mbit/s) needs.
    path = round(2_000_000 / ENCODER_SHARE)
    peer = PeerSession(
        certificate=AGENT_CERT,
        dtls_role=DtlsRole.CLIENT,
        remote_fingerprints=[("sha-256", VIEWER_CERT.fingerprint("sha-256"))],
        video=VideoSendParams(102, SSRC, "cam", start_bitrate=path, max_bitrate=path),
    )
    viewer = Viewer(
        DtlsTransport(VIEWER_CERT, DtlsRole.SERVER, [("sha-256", AGENT_CERT.fingerprint())])
    )
    handshake(peer, viewer)
    events(peer)
    return peer, viewer


def remb(peer: PeerSession, viewer: object, bitrate: int, now: float) -> None:
    srtp = viewer.srtp  # type: ignore[attr-defined]
    packet = rtcp.Remb(sender_ssrc=1, bitrate=bitrate, ssrcs=(SSRC,))
    peer.receive(srtp.protect_rtcp(rtcp.serialize_compound([packet])), now)


def rig(floor: int) -> tuple[BitrateController, Viewers, FakeSource, dict[str, object]]:
    (fast, fast_end), (slow, slow_end) = connected_viewer(), connected_viewer()
    viewers = Viewers({"fast": fast, "slow": slow})
    source = FakeSource(2_000_000)
    camera = Camera(CameraConfig(bitrate=2_000_000, min_bitrate=floor), source)
    clock = [0.0]
    controller = BitrateController(viewers, camera, lambda: clock[0])  # type: ignore[arg-type]
    return controller, viewers, source, {"fast": fast_end, "slow": slow_end, "clock": clock}


def test_the_encoder_follows_the_weakest_viewer_above_the_floor() -> None:
    controller, viewers, source, ends = rig(floor=300_000)
    remb(viewers.peers_by_client["slow"], ends["slow"], 800_000, 0.0)
    controller.step()
    assert source.calls[-1] <= 800_000 * ENCODER_SHARE
    assert controller.encoder_bitrate == source.calls[-1]
    assert viewers.below_floor == frozenset()
    # New viewers start where the encoder is.
    assert viewers.start_bitrate == round(controller.encoder_bitrate / ENCODER_SHARE)


def test_a_viewer_below_the_floor_does_not_lower_the_encoder() -> None:
    controller, viewers, source, ends = rig(floor=500_000)
    remb(viewers.peers_by_client["slow"], ends["slow"], 200_000, 0.0)
    controller.step()
    assert source.calls == []  # still at camera.bitrate: the fast viewer decides
    assert controller.encoder_bitrate == 2_000_000
    assert viewers.below_floor == frozenset({viewer_key("slow", "s1")})
    slow, fast = viewers.peers_by_client["slow"].sender, viewers.peers_by_client["fast"].sender
    assert slow is not None and fast is not None
    assert slow.below_floor and not fast.below_floor  # its pacer asks for no keyframes
    described = controller.describe()
    assert described["encoder_bitrate"] == 2_000_000 and described["floor"] == 500_000


def test_a_new_ceiling_reaches_every_viewer_estimate() -> None:
    controller, viewers, _source, _ends = rig(floor=300_000)
    controller.configure(CameraConfig(bitrate=1_000_000, min_bitrate=300_000))
    # Estimates are of the path: they may reach what the encoder needs with its headroom.
    assert viewers.max_bitrate == round(1_000_000 / ENCODER_SHARE)
    for peer in viewers.peers_by_client.values():
        assert peer.sender is not None
        assert peer.sender.target_bitrate <= round(1_000_000 / ENCODER_SHARE)
