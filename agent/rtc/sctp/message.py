"""One message the caller asked to send, as the send queue and retransmission see it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class OutboundMessage:
    stream_id: int
    ppid: int
    data: bytes
    ordered: bool
    max_retransmits: int | None
    expires_at: float | None
    offset: int = 0
    ssn: int = 0
    tsns: list[int] = field(default_factory=list)
    abandoned: bool = False
