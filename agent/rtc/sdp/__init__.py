"""SDP for the device's side of a WebRTC session: parse the offer, negotiate, write the answer.

The viewer makes the offer, the device answers (PROTOCOL.md section 4). Layout, dependencies
pointing one way: errors <- lexer <- model <- parse <- negotiate <- write <- answer.
- `Offer.parse(text)` (parse): the offer as a model; NegotiationError names any defect.
- `negotiate` (negotiate): DTLS setup, the H.264 format (profile policy), the sections.
- `write_answer` (write): the answer text; `build_answer` (answer) does all three.
NegotiationError is the peer's fault (-32004); LocalUsageError, a TypeError, is ours.
"""

from agent.rtc.fingerprint import FINGERPRINT_HASHES

from .answer import Answer, build_answer
from .errors import LocalUsageError, NegotiationError
from .lexer import (
    MAX_ATTRIBUTES_PER_SECTION,
    MAX_FORMATS,
    MAX_LINE_LENGTH,
    MAX_RTCP_FB_PER_PAYLOAD_TYPE,
    MAX_SECTIONS,
    is_end_of_candidates,
)
from .model import (
    DIRECTIONS,
    SETUP_ROLES,
    Direction,
    Extmap,
    Fingerprint,
    MediaSection,
    RtpCodec,
    Setup,
)
from .negotiate import (
    DATACHANNEL_FORMAT,
    DECODED_ALSO_BY,
    IMPLEMENTED_RTCP_FB,
    RTP_PROTOCOL,
    SCTP_PROTOCOL,
    TRANSPORT_CC_URI,
    PreferredSetup,
    answer_setup,
    preferred_setup,
    select_h264,
)
from .parse import Offer
from .write import ANSWER_MAX_MESSAGE_SIZE, ANSWER_SCTP_PORT, LocalDescription, write_answer

__all__ = [
    "ANSWER_MAX_MESSAGE_SIZE",
    "ANSWER_SCTP_PORT",
    "DATACHANNEL_FORMAT",
    "DECODED_ALSO_BY",
    "DIRECTIONS",
    "FINGERPRINT_HASHES",
    "IMPLEMENTED_RTCP_FB",
    "MAX_ATTRIBUTES_PER_SECTION",
    "MAX_FORMATS",
    "MAX_LINE_LENGTH",
    "MAX_RTCP_FB_PER_PAYLOAD_TYPE",
    "MAX_SECTIONS",
    "RTP_PROTOCOL",
    "SCTP_PROTOCOL",
    "SETUP_ROLES",
    "TRANSPORT_CC_URI",
    "Answer",
    "Direction",
    "Extmap",
    "Fingerprint",
    "LocalDescription",
    "LocalUsageError",
    "MediaSection",
    "NegotiationError",
    "Offer",
    "PreferredSetup",
    "RtpCodec",
    "Setup",
    "answer_setup",
    "build_answer",
    "is_end_of_candidates",
    "preferred_setup",
    "select_h264",
    "write_answer",
]
