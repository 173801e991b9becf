"""What is shown of one viewer session: its `session.list` row and `session.stats`.

Rates are deltas between two samples of the peer's counters (PeerStats); RTT and loss come
from the viewer's RTCP receiver reports, NACKs and keyframe requests from its feedback, the
estimate from the send-side bandwidth estimator (transport-cc, else REMB, and loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.rtc.peer import PeerStats


def viewer_key(client: str, session: str) -> str:
    """One string per session, for the bitrate policy's per-viewer maps (and telemetry).

    Unambiguous: session ids never contain "/" (PROTOCOL.md section 4).
    """
    return f"{client}/{session}"


def session_row(
    client: str,
    session: str,
    state: str,
    since: float,
    stats: PeerStats | None,
    below_floor: bool,
) -> dict[str, object]:
    """A `session.list` row: the contract's fields, then the bandwidth estimate's."""
    return {
        "session": session,
        "client": client,
        "state": state,
        "since": since,
        "bytes_sent": stats.bytes_sent if stats else 0,
        "estimate": stats.estimate if stats else None,
        "below_floor": below_floor,
        "frames_dropped": stats.frames_dropped if stats else 0,
    }


@dataclass(slots=True)
class StatsSampler:
    """Turns successive PeerStats readings of one session into `session.stats` params."""

    session: str
    last_at: float | None = None
    last_bytes: int = 0
    last_frames: int = 0
    samples: int = 0

    def sample(
        self, stats: PeerStats, now: float, wallclock: float, keyframes_in: int
    ) -> dict[str, Any]:
        """Params of one notification; rates are over the time since the previous call."""
        elapsed = None if self.last_at is None else now - self.last_at
        if elapsed is not None and elapsed > 0:
            bitrate = round((stats.bytes_sent - self.last_bytes) * 8 / elapsed)
            fps = round((stats.frames_sent - self.last_frames) / elapsed, 2)
        else:
            bitrate, fps = 0, 0.0
        self.last_at, self.last_bytes, self.last_frames = now, stats.bytes_sent, stats.frames_sent
        self.samples += 1
        return {
            "session": self.session,
            "ts": round(wallclock, 3),
            "bitrate": bitrate,
            "fps": fps,
            "rtt": None if stats.rtt is None else round(stats.rtt, 4),
            "fraction_lost": round(stats.fraction_lost, 4),
            "jitter": stats.jitter,
            "nacks": stats.nacks_received,
            "retransmits": stats.retransmits,
            "keyframe_requests": stats.keyframe_requests,
            "keyframes": keyframes_in,
            "packets_sent": stats.packets_sent,
            "bytes_sent": stats.bytes_sent,
            "frames_sent": stats.frames_sent,
            "estimate": stats.estimate,
            "frames_dropped": stats.frames_dropped,
            "rtx_packets": stats.rtx_packets_sent,
        }
