"""One encoder, many viewers: the encoder bitrate follows the viewers' bandwidth estimates.

Every viewer's sender estimates its own path (agent/rtc/video_send.py); once per
``INTERVAL`` this hands ``ENCODER_SHARE`` of each estimate to the :class:`BitratePolicy`
(weakest viewer above the floor, smoothed, at most one change per second, never above
``camera.bitrate``) and applies its decision to the running source with ``set_bitrate``.
Viewers below the floor are marked in the session manager (session.list ``below_floor``);
their pacers drop to keyframes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final, Protocol

from agent.config import CameraConfig
from agent.media.bitrate_policy import BitratePolicy
from agent.net.session_stats import viewer_key
from agent.rtc.peer import PeerSession
from hw.source import VideoSource

logger = logging.getLogger(__name__)

# How often the estimates are read; the policy itself rate-limits changes to one a second.
INTERVAL: Final = 0.5
# The share of a viewer's estimate the encoder may fill. The estimate counts whole SRTP
# packets and each viewer's pacer holds it to the estimate on average, so the encoder must
# leave room for headers, retransmissions and keyframe bursts; at 100% a 3% loss path made the
# pacer drop frames (and ask for keyframes) every few seconds.
ENCODER_SHARE: Final = 0.9


class Viewers(Protocol):
    """What the controller needs of the session manager (agent/net/sessions.py)."""

    max_bitrate: int
    start_bitrate: int
    below_floor: frozenset[str]

    def peers(self) -> list[tuple[str, str, PeerSession]]: ...


class Camera(Protocol):
    """What the controller needs of the camera supervisor: its settings and its source."""

    @property
    def camera(self) -> CameraConfig: ...

    @property
    def source(self) -> VideoSource | None: ...


def path_bitrate(encoder_bitrate: int) -> int:
    """The estimate an encoder bitrate needs."""
    return round(encoder_bitrate / ENCODER_SHARE)


def _policy(camera: CameraConfig) -> BitratePolicy:
    return BitratePolicy(camera.bitrate, min(camera.min_bitrate, camera.bitrate))


class BitrateController:
    """Applies the bitrate policy to the camera's source; runs on the event loop."""

    def __init__(
        self,
        sessions: Viewers,
        camera: Camera,
        clock: Callable[[], float],
    ) -> None:
        self._sessions = sessions
        self._supervisor = camera
        self._camera = camera.camera
        self._clock = clock
        self._policy = _policy(self._camera)
        self.encoder_bitrate = self._camera.bitrate
        self._applied_to: VideoSource | None = None
        # A viewer's estimate is of its path: it may reach what an encoder at camera.bitrate
        # needs (that over ENCODER_SHARE), and starts where the encoder is.
        sessions.max_bitrate = sessions.start_bitrate = path_bitrate(self._camera.bitrate)

    def configure(self, camera: CameraConfig) -> None:
        """camera.bitrate or camera.min_bitrate changed: a new policy, a new ceiling."""
        if (camera.bitrate, camera.min_bitrate) == (self._camera.bitrate, self._camera.min_bitrate):
            self._camera = camera
            return
        self._camera = camera
        self._policy = _policy(camera)
        # The camera itself was set to the new bitrate by the supervisor.
        self.encoder_bitrate = camera.bitrate
        self._applied_to = self._supervisor.source
        self._sessions.max_bitrate = path_bitrate(camera.bitrate)
        for _, _, peer in self._sessions.peers():
            if peer.sender is not None:
                peer.sender.set_max_bitrate(path_bitrate(camera.bitrate))

    def step(self) -> None:
        """Read every active viewer's estimate, let the policy decide, apply the decision."""
        estimates = {
            viewer_key(client, session): round(peer.sender.target_bitrate * ENCODER_SHARE)
            for client, session, peer in self._sessions.peers()
            if peer.sender is not None and peer.srtp_ready
        }
        decision = self._policy.update(estimates, self._clock())
        if decision is not None:
            self._mark_below_floor(decision.below_floor)
            if decision.encoder_bitrate != self.encoder_bitrate:
                logger.info(
                    "bitrate: encoder %d -> %d bps (%d viewers, %d below the floor)",
                    self.encoder_bitrate,
                    decision.encoder_bitrate,
                    len(estimates),
                    len(decision.below_floor),
                )
                self.encoder_bitrate = decision.encoder_bitrate
                self._applied_to = None
        # A new viewer starts its estimate where the encoder is; a restarted source (which
        # opens at camera.bitrate) gets the current decision again.
        self._sessions.start_bitrate = path_bitrate(self.encoder_bitrate)
        source = self._supervisor.source
        if source is not None and source is not self._applied_to:
            self._apply(source)

    def describe(self) -> dict[str, object]:
        """For telemetry: the encoder bitrate the policy set and the policy's own state."""
        return {**self._policy.describe(), "encoder_bitrate": self.encoder_bitrate}

    async def run(self) -> None:
        """Forever: step every `INTERVAL` seconds."""
        while True:
            await asyncio.sleep(INTERVAL)
            try:
                self.step()
            except Exception:  # a policy bug must not stop the loop nor the agent
                logger.exception("bitrate: policy step failed")

    def _mark_below_floor(self, below: frozenset[str]) -> None:
        self._sessions.below_floor = below
        for client, session, peer in self._sessions.peers():
            if peer.sender is not None:
                peer.sender.below_floor = viewer_key(client, session) in below

    def _apply(self, source: VideoSource) -> None:
        self._applied_to = source
        if source.settings.bitrate == self.encoder_bitrate:
            return
        try:
            source.set_bitrate(self.encoder_bitrate)
        except (ValueError, OSError) as exc:
            logger.warning("bitrate: the camera refused %d bps: %s", self.encoder_bitrate, exc)
