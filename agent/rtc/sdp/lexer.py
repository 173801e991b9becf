"""SDP text to lines and attributes, the lexical rules, and the caps on what an offer repeats.

Every function here is linear in its input; the caps keep whatever later steps do per
attribute or per format bounded by the size of the offer (issue 12: no parser worse than
linear).
"""

from __future__ import annotations

import re

from .errors import NegotiationError

# Bounds on what an offer may repeat. Real offers stay far below them (Chromium: ~170
# attributes and 34 payload types a section, lines under 220 characters).
MAX_LINE_LENGTH = 4096
MAX_SECTIONS = 64
MAX_ATTRIBUTES_PER_SECTION = 1024
MAX_FORMATS = 128  # an m= line listing more than there are payload types is not an offer
MAX_RTCP_FB_PER_PAYLOAD_TYPE = 32  # distinct values, counting those of a=rtcp-fb:*

CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,64}")
PRINTABLE = re.compile(r"[!-~]{1,64}")
ICE_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}")
ICE_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}")
HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")
_UINT = re.compile(r"[0-9]{1,20}")

# a=candidate is absent on purpose: an empty one means end-of-candidates (is_end_of_candidates).
_NEEDS_VALUE = {"mid", "rtpmap", "fmtp", "rtcp-fb", "extmap", "sctp-port", "group"}
_NEEDS_VALUE |= {"ice-ufrag", "ice-pwd", "fingerprint", "setup", "ice-options"}

Attributes = list[tuple[str, str | None]]


def uint(text: str, what: str, low: int, high: int) -> int:
    """`text` as an integer in low..high, else NegotiationError naming `what`."""
    if not _UINT.fullmatch(text) or not low <= int(text) <= high:
        raise NegotiationError(f"{what} {text[:40]!r} is not an integer in {low}..{high}")
    return int(text)


def lines(text: str | bytes) -> list[tuple[str, str]]:
    """(type letter, value) of every non-blank line; CRLF or LF line endings."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise NegotiationError("SDP is not UTF-8 text") from None
    if not isinstance(text, str):
        raise NegotiationError("SDP must be text")
    result = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r")
        if not line.strip():
            continue
        if CONTROL.search(line):
            raise NegotiationError(f"SDP line {number} contains a control character")
        if len(line) < 2 or line[1] != "=" or not "a" <= line[0] <= "z":
            raise NegotiationError(f"SDP line {number} is not '<letter>=<value>': {line[:40]!r}")
        if len(line) > MAX_LINE_LENGTH:
            raise NegotiationError(
                f"SDP line {number} is longer than {MAX_LINE_LENGTH} characters (the cap)"
            )
        result.append((line[0], line[2:]))
    return result


def is_end_of_candidates(candidate: str | None) -> bool:
    """Whether a candidate text (trickled, or an a=candidate value) marks end-of-candidates.

    None, "" and a bare "candidate:" all do: Firefox trickles an empty string per section
    (PROTOCOL.md section 4), and that is the end of its candidates, not an error.
    """
    if candidate is None:
        return True
    text = candidate.strip()
    return not text or text == "candidate:" or text == "a=candidate:"


def attribute(text: str) -> tuple[str, str | None]:
    """(name, value) of the text after "a="; value None for a flag without ":"."""
    name, sep, value = text.partition(":")
    if not TOKEN.fullmatch(name):
        raise NegotiationError(f"a={text[:40]} has no valid attribute name")
    if name in _NEEDS_VALUE and not value.strip():
        raise NegotiationError(f"a={name} has no value")
    return name, value.strip() if sep else None


class AttributeIndex:
    """A block's attributes grouped by name once, so each lookup costs only its own lines."""

    def __init__(self, attributes: Attributes, where: str) -> None:
        if len(attributes) > MAX_ATTRIBUTES_PER_SECTION:
            raise NegotiationError(
                f"{where} has more than {MAX_ATTRIBUTES_PER_SECTION} a= lines (the cap)"
            )
        self.where = where
        self._by_name: dict[str, list[str | None]] = {}
        for name, value in attributes:
            self._by_name.setdefault(name, []).append(value)

    def values(self, name: str) -> list[str]:
        """Every value of a=name, in order (flags without a value left out)."""
        return [value for value in self._by_name.get(name, ()) if value is not None]

    def single(self, name: str) -> str | None:
        """The value of a=name; repeats must agree, else NegotiationError."""
        found = list(dict.fromkeys(self.values(name)))
        if len(found) > 1:
            raise NegotiationError(f"{self.where} has conflicting a={name} lines")
        return found[0] if found else None

    def has(self, name: str) -> bool:
        """Whether a=name appears at all."""
        return name in self._by_name

    def present(self, names: tuple[str, ...]) -> list[str]:
        """Which of `names` appear, in the order given."""
        return [name for name in names if name in self._by_name]
