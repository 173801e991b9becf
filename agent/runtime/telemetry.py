"""The telemetry message (PROTOCOL.md section 2, ``P/D/telemetry``), every interval."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from agent.media.fanout import FanOut
from agent.net.sessions import SessionManager


class Telemetry:
    """Builds one metrics object per call, with the bitrate since the previous one."""

    def __init__(
        self,
        sessions: SessionManager,
        fanout: FanOut,
        started_at: float,
        clock: Callable[[], float],
        counters: Callable[[], Mapping[str, int]],
        bitrate_policy: Callable[[], Mapping[str, object]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._fanout = fanout
        self._started_at = started_at
        self._clock = clock
        self._counters = counters
        self._bitrate_policy = bitrate_policy
        self._last_bytes = 0
        self._last_at = clock()

    def sample(self) -> dict[str, Any]:
        now = self._clock()
        sessions = self._sessions.stats()
        total = sum(getattr(stats, "bytes_sent", 0) for _, _, stats in sessions)
        elapsed = max(now - self._last_at, 1e-3)
        body = {
            "ts": time.time(),
            "uptime": round(time.time() - self._started_at, 1),
            "viewers": self._sessions.count,
            "frames_in": self._fanout.stats.frames_in,
            "keyframes_in": self._fanout.stats.keyframes_in,
            "bitrate_out": int(max(0, total - self._last_bytes) * 8 / elapsed),
            "load1": os.getloadavg()[0],
            "dropped": dict(self._counters()),
            "sessions": [
                {
                    "session": session,
                    "client": client,
                    "rtt": getattr(stats, "rtt", None),
                    "fraction_lost": getattr(stats, "fraction_lost", 0.0),
                    "bytes_sent": getattr(stats, "bytes_sent", 0),
                    "estimate": getattr(stats, "estimate", None),
                    "frames_dropped": getattr(stats, "frames_dropped", 0),
                }
                for client, session, stats in sessions
            ],
        }
        if self._bitrate_policy is not None:
            body["bitrate_policy"] = dict(self._bitrate_policy())
        self._last_bytes, self._last_at = total, now
        return body
