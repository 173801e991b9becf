"""The bench receiver's SDP: a recvonly H.264 offer (what a browser would send, cut to what
the answerer needs) and the few answer fields the receiver uses. Answers come from the local
sender under test, so reading them is by line, not a full parser."""

from __future__ import annotations

from dataclasses import dataclass

OFFER_TEMPLATE = """v=0
o=- {session_id} 1 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic: WMS
m=video 9 UDP/TLS/RTP/SAVPF 102
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:{ufrag}
a=ice-pwd:{pwd}
a=ice-options:trickle
a=fingerprint:sha-256 {fingerprint}
a=setup:actpass
a=mid:0
a=recvonly
a=rtcp-mux
a=rtpmap:102 H264/90000
a=rtcp-fb:102 nack
a=rtcp-fb:102 nack pli
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
{candidates}a=end-of-candidates
"""


def write_offer(
    session_id: int, ufrag: str, pwd: str, fingerprint: str, candidates: list[str]
) -> str:
    lines = "".join(f"a=candidate:{c}\n" for c in candidates)
    text = OFFER_TEMPLATE.format(
        session_id=session_id, ufrag=ufrag, pwd=pwd, fingerprint=fingerprint, candidates=lines
    )
    return text.replace("\n", "\r\n")


@dataclass(frozen=True)
class AnswerFields:
    ufrag: str
    pwd: str
    fingerprint: tuple[str, str]  # (algorithm, hex)
    setup: str
    candidates: tuple[str, ...]  # the text after "candidate:"

    @classmethod
    def parse(cls, sdp: str) -> AnswerFields:
        """The ICE, DTLS and candidate lines of an answer; ValueError if one is missing."""
        values: dict[str, str] = {}
        candidates: list[str] = []
        for line in sdp.splitlines():
            if not line.startswith("a="):
                continue
            name, _, value = line[2:].partition(":")
            if name == "candidate":
                candidates.append(value)
            else:
                values.setdefault(name, value)
        try:
            algorithm, _, digest = values["fingerprint"].partition(" ")
            return cls(
                values["ice-ufrag"],
                values["ice-pwd"],
                (algorithm, digest),
                values["setup"],
                tuple(candidates),
            )
        except KeyError as exc:
            raise ValueError(f"the answer has no a={exc.args[0]} line") from None
