"""No parser worse than linear in its input (issue 12), one cost test per wire-format parser.

Work is counted deterministically with tests/rtc/cost.py (Python opcodes executed), never
timed: for hypothesis-generated adversarial inputs (repeated lines, attributes and formats,
long lines, many small packets, chunks and records) each parser must stay within
K * len(input) + C. C-level work inside one opcode is invisible to that count, so
`test_no_membership_test_on_a_list_inside_a_loop` checks the parsers' source for the shape of
issue 12's bug (`x in some_list` in a loop over the input).
"""

from __future__ import annotations

import ast
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agent.rtc
from agent.rtc import rtcp
from agent.rtc.dtls import SrtpKeys, SrtpProfile, split_records
from agent.rtc.rtp import RtpPacket, parse_extension_elements
from agent.rtc.sdp import Offer
from agent.rtc.srtp import SrtpContext
from tests.rtc.cost import assert_linear

DATA = Path(__file__).parent / "data"
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- SDP ------------------------------------------------------------------------------------

BASE = (DATA / "chromium_offer_video_dc.sdp").read_text().replace("\r\n", "\n").split("\n")
REPEATABLE = [
    "a=rtcp-fb:* nack",
    "a=rtcp-fb:* x-{i}",
    "a=rtcp-fb:96 y-{i}",
    "a=rtpmap:96 VP8/90000",
    "a=fmtp:96 apt=97",
    "a=extmap:{e} urn:x",
    "a=candidate:{i} 1 udp 1 127.0.0.1 9 typ host",
    "a=ssrc:{i} cname:x",
    "a=x-junk:" + "y" * 300,
]


@st.composite
def hostile_offers(draw: st.DrawFn) -> str:
    lines = list(BASE)
    video = next(i for i, line in enumerate(lines) if line.startswith("m=video"))
    formats = draw(st.lists(st.sampled_from(["96", "97", "102", "108", "116"]), max_size=3000))
    if formats:
        lines[video] = "m=video 9 UDP/TLS/RTP/SAVPF " + " ".join(formats)
    mid = lines.index("a=mid:0")
    for template, count in draw(
        st.lists(st.tuples(st.sampled_from(REPEATABLE), st.integers(1, 1500)), max_size=4)
    ):
        lines[mid + 1 : mid + 1] = [template.format(i=i, e=1 + i % 14) for i in range(count)]
    return "\r\n".join(lines)


def _offer_cost_bound(text: str) -> None:
    result = assert_linear(Offer.parse, text, 60, 20_000)
    assert isinstance(result, Offer | ValueError), result  # parsed, or refused as the peer's


@SETTINGS
@given(hostile_offers())
def test_sdp_offer_work_is_linear(text: str) -> None:
    _offer_cost_bound(text)


def test_sdp_cost_bound_holds_for_real_offers() -> None:
    for path in sorted(DATA.glob("*_offer_*.sdp")):
        _offer_cost_bound(path.read_text())


# --- RTP header and extensions -----------------------------------------------------------------


@st.composite
def rtp_packets(draw: st.DrawFn) -> bytes:
    csrcs = draw(st.integers(0, 15))
    two_byte = draw(st.booleans())
    elements = draw(st.lists(st.integers(0, 16), max_size=2000))  # 0: padding byte
    block = bytearray()
    for size in elements:
        if size == 0:
            block += b"\x00"
        elif two_byte:
            block += bytes((1, size)) + bytes(size)
        else:
            block += bytes(((1 << 4) | (size - 1),)) + bytes(size)
    block += bytes(-len(block) % 4)
    profile = 0x1000 if two_byte else 0xBEDE
    header = struct.pack("!BBHII", 0x90 | csrcs, 96, 1, 2, 3) + bytes(4 * csrcs)
    return header + struct.pack("!HH", profile, len(block) // 4) + bytes(block) + b"payload"


def _rtp_with_extensions(data: bytes) -> object:
    packet = RtpPacket.parse(data)
    profile = packet.header.extension_profile
    return parse_extension_elements(profile or 0, packet.header.extensions)


@SETTINGS
@given(rtp_packets())
def test_rtp_header_and_extensions_work_is_linear(data: bytes) -> None:
    assert_linear(_rtp_with_extensions, data, 40, 2_000)


# --- RTCP compound and TWCC ---------------------------------------------------------------------

SMALL_PACKETS = [
    rtcp.ReceiverReport(ssrc=1).serialize(),
    rtcp.PictureLossIndication(1, 2).serialize(),
    rtcp.GenericNack(1, 2, tuple(range(0, 600, 3))).serialize(),
    rtcp.Bye(ssrcs=(1, 2, 3), reason=b"bye").serialize(),
    rtcp.SourceDescription((rtcp.SdesChunk(1, ((1, b"x"),) * 40),)).serialize(),
    rtcp.Remb(1, 500_000, (1, 2)).serialize(),
    rtcp.UnknownRtcp(204, 0, b"name" * 3).serialize(),
    bytes((0x80, 200, 0xFF, 0xFF)),  # a length that runs past the end
]


@SETTINGS
@given(st.lists(st.sampled_from(SMALL_PACKETS), min_size=1, max_size=3000))
def test_rtcp_compound_work_is_linear(parts: list[bytes]) -> None:
    # NACK is the dearest: each 4-byte FCI expands to up to 17 sequence numbers.
    assert_linear(rtcp.parse_compound, b"".join(parts), 80, 2_000)


@st.composite
def twcc_feedback(draw: st.DrawFn) -> bytes:
    chunks = draw(
        st.lists(
            st.sampled_from([0x2000 | 0x1FFF, 0x0000 | 0x1FFF, 0xBFFF, 0xD555, 0xE000 | 7]),
            min_size=1,
            max_size=2000,
        )
    )
    count = draw(st.integers(1, 0xFFFF))
    deltas = bytes(draw(st.integers(0, 20_000)))
    body = struct.pack("!IIHHI", 1, 2, 0, count, 0) + b"".join(struct.pack("!H", c) for c in chunks)
    return rtcp.UnknownRtcp(rtcp.PT_RTPFB, rtcp.FMT_TWCC, body + deltas).serialize()


@SETTINGS
@given(twcc_feedback())
def test_twcc_feedback_work_is_linear(data: bytes) -> None:
    # C covers the one bounded expansion: at most 65,535 statuses, whatever the size.
    assert_linear(rtcp.parse_compound, data, 40, 10_000)


# --- DTLS record framing and SRTP input checks -----------------------------------------------


@SETTINGS
@given(st.lists(st.integers(0, 1300), min_size=1, max_size=3000), st.binary(max_size=20))
def test_dtls_record_splitting_work_is_linear(lengths: list[int], tail: bytes) -> None:
    data = b"".join(
        struct.pack("!B2sH6sH", 22, b"\xfe\xfd", 0, bytes(6), n) + bytes(n) for n in lengths
    )
    assert_linear(lambda d: split_records(d, 1200), data + tail, 20, 1_000)


SRTP = SrtpContext(SrtpKeys(SrtpProfile.AES128_CM_SHA1_80, bytes(30), bytes(range(30))))


@SETTINGS
@given(st.binary(max_size=4000))
def test_srtp_unprotect_input_checks_work_is_bounded(data: bytes) -> None:
    # Garbage, truncated or forged: refused as SrtpError (a ValueError) in constant Python work.
    for unprotect in (SRTP.unprotect, SRTP.unprotect_rtcp):
        result = assert_linear(unprotect, data, 0, 200)
        assert isinstance(result, ValueError), result


# --- C-level quadratic: membership tests on lists inside loops -------------------------------

PARSERS = ["sdp", "rtcp", "rtp.py", "dtls.py", "srtp.py", "h264_profile.py"]
# Lists whose length no input controls.
BOUNDED = {
    "twcc.py": "pending",  # _encode_chunks (serialize): at most 14 statuses wait for a chunk
    "dtls.py": "parts",  # _describe: OpenSSL's error queue for one failure
}


def _list_names(function: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(function):
        # x = [...], x = d.setdefault(k, []), x = d.get(k, []) + [...]: a list, as far as
        # the source shows (issue 12's bug had the last two shapes).
        if isinstance(node, ast.Assign) and any(
            isinstance(part, ast.List | ast.ListComp) for part in ast.walk(node.value)
        ):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and ast.unparse(node.annotation).startswith("list")
        ):
            names.add(node.target.id)
    return names


def _is_list_membership(node: ast.AST, lists: set[str]) -> bool:
    return (
        isinstance(node, ast.Compare)
        and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops)
        and any(isinstance(c, ast.Name) and c.id in lists for c in node.comparators)
    )


def test_no_membership_test_on_a_list_inside_a_loop() -> None:
    root = Path(agent.rtc.__path__[0])
    files = [
        p
        for name in PARSERS
        for p in ([root / name] if name.endswith(".py") else (root / name).glob("*.py"))
    ]
    offenders = []
    for path in files:
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef):
                continue
            lists = _list_names(function)
            loops = [
                n
                for n in ast.walk(function)
                if isinstance(n, ast.For | ast.While | ast.comprehension)
            ]
            for loop in loops:
                for node in ast.walk(loop):
                    if _is_list_membership(node, lists - {BOUNDED.get(path.name, "")}):
                        offenders.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert not offenders, offenders
