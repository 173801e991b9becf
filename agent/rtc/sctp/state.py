"""Association states (RFC 9260 4) and the error type for what a peer does wrong."""

from __future__ import annotations

import enum


class State(enum.Enum):
    CLOSED = "closed"  # not started: still answers an INIT
    COOKIE_WAIT = "cookie-wait"
    COOKIE_ECHOED = "cookie-echoed"
    ESTABLISHED = "established"
    SHUTDOWN_PENDING = "shutdown-pending"
    SHUTDOWN_SENT = "shutdown-sent"
    SHUTDOWN_RECEIVED = "shutdown-received"
    SHUTDOWN_ACK_SENT = "shutdown-ack-sent"
    TERMINATED = "terminated"


# States in which DATA and SACK flow.
DATA_STATES = frozenset(
    {State.ESTABLISHED, State.SHUTDOWN_PENDING, State.SHUTDOWN_SENT, State.SHUTDOWN_RECEIVED}
)


class PeerError(ValueError):
    """Something the peer sent that ends the association."""
