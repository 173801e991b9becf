"""Send-time groups and their deltas (libwebrtc InterArrivalDelta, GCC section 5.2).

Packets sent within 5 ms of a group's first form one group (a frame, or a paced burst); the
delay gradient is measured between consecutive groups: how much later the newer group
completed at the receiver than it was sent after the older one.
"""

from __future__ import annotations

from dataclasses import dataclass

SEND_GROUP_LENGTH = 0.005
BURST_DELTA_THRESHOLD = 0.005
MAX_BURST_DURATION = 0.1
# An arrival clock that jumps this far beyond the feedback clock was reset by the receiver.
ARRIVAL_OFFSET_THRESHOLD = 3.0
REORDERED_RESET_THRESHOLD = 3


@dataclass(slots=True)
class _Group:
    first_send: float
    send: float  # the latest send time in the group
    first_arrival: float
    complete: float  # the latest arrival
    feedback_time: float
    size: int


@dataclass(frozen=True, slots=True)
class GroupDelta:
    """Between two consecutive groups: send and arrival time deltas (s), size delta (bytes)."""

    send_delta: float
    arrival_delta: float
    size_delta: int
    arrival_time: float  # when the newer group completed


class InterArrival:
    """Feeds packets in arrival order; yields a GroupDelta as each group is completed."""

    def __init__(self) -> None:
        self._current: _Group | None = None
        self._previous: _Group | None = None
        self._reordered = 0
        self.resets = 0  # so the trend built on the old clock can be dropped as well

    def reset(self) -> None:
        """Forget all groups (the receiver's clock jumped)."""
        self._current = self._previous = None
        self._reordered = 0
        self.resets += 1

    def add(self, send: float, arrival: float, size: int, now: float) -> GroupDelta | None:
        """One packet; the delta of the two previous groups when this packet starts a new one."""
        current = self._current
        if current is None:
            self._current = _Group(send, send, arrival, arrival, now, size)
            return None
        if send < current.first_send:
            return None  # sent before the current group: reordered, no information
        if self._starts_new_group(current, send, arrival):
            # _delta may reset everything; this packet then starts the first group afresh.
            delta = self._delta(current) if self._previous is not None else None
            self._previous = current if self._current is not None else None
            self._current = _Group(send, send, arrival, arrival, now, size)
            return delta
        current.send = max(current.send, send)
        current.complete = max(current.complete, arrival)
        current.feedback_time = now
        current.size += size
        return None

    def _starts_new_group(self, current: _Group, send: float, arrival: float) -> bool:
        arrival_delta = arrival - current.complete
        send_delta = send - current.send
        if send_delta == 0:
            return False
        # A burst that left over several ms but arrived together belongs to one group.
        if (
            arrival_delta - send_delta < 0
            and arrival_delta <= BURST_DELTA_THRESHOLD
            and arrival - current.first_arrival < MAX_BURST_DURATION
        ):
            return False
        return send - current.first_send > SEND_GROUP_LENGTH

    def _delta(self, current: _Group) -> GroupDelta | None:
        previous = self._previous
        assert previous is not None
        send_delta = current.send - previous.send
        arrival_delta = current.complete - previous.complete
        feedback_delta = current.feedback_time - previous.feedback_time
        if arrival_delta - feedback_delta >= ARRIVAL_OFFSET_THRESHOLD:
            self.reset()
            return None
        if arrival_delta < 0:
            self._reordered += 1
            if self._reordered >= REORDERED_RESET_THRESHOLD:
                self.reset()
            return None
        self._reordered = 0
        return GroupDelta(send_delta, arrival_delta, current.size - previous.size, current.complete)
