"""Which TSNs we received: the cumulative point, gaps above it, duplicates; builds SACKs."""

from __future__ import annotations

import enum

from agent.rtc.sctp.data_chunks import Sack
from agent.rtc.sctp.tsn import TSN_MASK, tsn_add, tsn_distance, tsn_gt

# A TSN this far beyond the cumulative point cannot be in a SACK gap block (16-bit offsets),
# and no sane peer has that many chunks in flight: such a chunk is a protocol violation.
MAX_TSN_AHEAD = 0xFFFF
# Bounds on one SACK, so it always fits one packet with room to spare.
MAX_GAP_BLOCKS = 64
MAX_DUPLICATES = 16


class Arrival(enum.Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    OUT_OF_WINDOW = "out of window"


class InboundTsns:
    """Receiver side TSN bookkeeping for one association."""

    def __init__(self, peer_initial_tsn: int) -> None:
        self.cumulative = (peer_initial_tsn - 1) & TSN_MASK
        self.highest = self.cumulative
        self._above: set[int] = set()
        self._duplicates: list[int] = []

    def classify(self, tsn: int) -> Arrival:
        ahead = tsn_distance(tsn, self.cumulative)
        if ahead > MAX_TSN_AHEAD:
            return Arrival.OUT_OF_WINDOW
        if ahead <= 0 or tsn in self._above:
            if len(self._duplicates) < MAX_DUPLICATES:
                self._duplicates.append(tsn)
            return Arrival.DUPLICATE
        return Arrival.NEW

    def mark(self, tsn: int) -> None:
        """Record a new TSN (``classify`` said NEW)."""
        self._above.add(tsn)
        if tsn_gt(tsn, self.highest):
            self.highest = tsn
        self._advance()

    def forward(self, new_cumulative: int) -> bool:
        """FORWARD TSN: treat everything up to ``new_cumulative`` as received."""
        if not tsn_gt(new_cumulative, self.cumulative):
            return False
        self._above = {t for t in self._above if tsn_gt(t, new_cumulative)}
        self.cumulative = new_cumulative
        if tsn_gt(new_cumulative, self.highest):
            self.highest = new_cumulative
        self._advance()
        return True

    @property
    def has_gaps(self) -> bool:
        return bool(self._above)

    @property
    def has_duplicates(self) -> bool:
        return bool(self._duplicates)

    def build_sack(self, a_rwnd: int) -> Sack:
        """The SACK for now; reported duplicates are forgotten."""
        gaps: list[tuple[int, int]] = []
        for tsn in sorted(self._above, key=lambda t: tsn_distance(t, self.cumulative)):
            offset = tsn_distance(tsn, self.cumulative)
            if gaps and gaps[-1][1] == offset - 1:
                gaps[-1] = (gaps[-1][0], offset)
            elif len(gaps) < MAX_GAP_BLOCKS:
                gaps.append((offset, offset))
            else:
                break
        duplicates = tuple(self._duplicates)
        self._duplicates = []
        return Sack(self.cumulative, a_rwnd, tuple(gaps), duplicates)

    def _advance(self) -> None:
        above = self._above
        following = tsn_add(self.cumulative, 1)
        while following in above:
            above.discard(following)
            self.cumulative = following
            following = tsn_add(following, 1)
