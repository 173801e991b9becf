"""ICE server URLs: ``stun:``/``stuns:``/``turn:``/``turns:`` (RFC 7064, RFC 7065)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from agent.config.reader import show


@dataclass(frozen=True)
class IceUrl:
    """A parsed ``stun:``/``stuns:``/``turn:``/``turns:`` URL (RFC 7064, RFC 7065)."""

    scheme: str
    host: str  # IPv6 without brackets
    port: int
    transport: str  # "udp" or "tcp"

    @property
    def is_turn(self) -> bool:
        return self.scheme in ("turn", "turns")

    @property
    def secure(self) -> bool:
        return self.scheme.endswith("s")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?transport={self.transport}" if self.is_turn else ""
        return f"{self.scheme}:{host}:{self.port}{query}"


_ICE_DEFAULTS: Final = {
    "stun": (3478, "udp"),
    "stuns": (5349, "tcp"),
    "turn": (3478, "udp"),
    "turns": (5349, "tcp"),
}
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def parse_ice_url(url: str) -> IceUrl:
    """Parse an ICE server URL; raises ValueError naming what is wrong."""
    if not isinstance(url, str):
        raise ValueError(f"expected a string, got {show(url)}")
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in _ICE_DEFAULTS:
        raise ValueError(f"{show(url)}: scheme must be stun:, stuns:, turn: or turns:")
    if rest.startswith("//"):
        raise ValueError(f"{show(url)}: ICE URLs have no '//' (write {scheme}:host:port)")
    hostport, question, query = rest.partition("?")
    port, transport = _ICE_DEFAULTS[scheme]
    if question:
        if scheme in ("stun", "stuns"):
            raise ValueError(f"{show(url)}: stun URLs take no query")
        name, _, value = query.partition("=")
        if name.lower() != "transport" or value.lower() not in ("udp", "tcp"):
            raise ValueError(f"{show(url)}: the only query is ?transport=udp or ?transport=tcp")
        transport = value.lower()
        if scheme == "turns" and transport == "udp":
            raise ValueError(f"{show(url)}: TURN over DTLS (turns: with udp) is not supported")
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{show(url)}: {show(host)} is not an IPv6 address") from None
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(f"{show(url)}: malformed [IPv6]:port")
        port_text = after[1:] if after else None
    else:
        if hostport.count(":") > 1:
            raise ValueError(f"{show(url)}: write an IPv6 address in brackets, as [::1]")
        host, sep, port_text_ = hostport.partition(":")
        port_text = port_text_ if sep else None
        if len(host) > 253 or not all(_HOST_LABEL.fullmatch(p) for p in host.split(".")):
            raise ValueError(f"{show(url)}: {show(host)} is not a host name or address")
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{show(url)}: port must be 1..65535")
        port = int(port_text)
    return IceUrl(scheme, host.lower(), port, transport)
