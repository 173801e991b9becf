"""SCTP over DTLS for WebRTC data channels (RFC 8261, RFC 9260 subset, RFC 3758, RFC 6525)."""

from agent.rtc.sctp.association import DEFAULT_LOCAL_MAX_MESSAGE_SIZE, Association
from agent.rtc.sctp.events import (
    AssociationEvent,
    BufferedAmountLow,
    Closed,
    Connected,
    MessageReceived,
    StreamsReset,
)
from agent.rtc.sctp.outbound import SendBufferFull
from agent.rtc.sctp.state import State

__all__ = [
    "DEFAULT_LOCAL_MAX_MESSAGE_SIZE",
    "Association",
    "AssociationEvent",
    "BufferedAmountLow",
    "Closed",
    "Connected",
    "MessageReceived",
    "SendBufferFull",
    "State",
    "StreamsReset",
]
