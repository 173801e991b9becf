"""Retransmission timeout estimator (RFC 6298 with the SCTP constants of RFC 9260 15)."""

from __future__ import annotations

RTO_INITIAL = 1.0
RTO_MIN = 1.0
RTO_MAX = 60.0
_ALPHA = 1 / 8
_BETA = 1 / 4


class RtoEstimator:
    """SRTT/RTTVAR from RTT samples; ``backoff`` doubles the RTO up to RTO_MAX (T3/T1)."""

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = RTO_INITIAL

    def sample(self, rtt: float) -> None:
        if rtt < 0:
            return
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = (1 - _BETA) * self.rttvar + _BETA * abs(self.srtt - rtt)
            self.srtt = (1 - _ALPHA) * self.srtt + _ALPHA * rtt
        self.rto = min(RTO_MAX, max(RTO_MIN, self.srtt + 4 * self.rttvar))

    def backoff(self) -> None:
        self.rto = min(RTO_MAX, self.rto * 2)
