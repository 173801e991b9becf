"""Config-shaped ICE servers (``urls``, ``username``, ``credential``) translated for aioice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.config import IceServer, parse_ice_url
from agent.net.ice import IceServers, TurnServer


def _fields(server: dict[str, Any] | IceServer) -> tuple[Any, Any, Any]:
    if isinstance(server, dict):
        return server.get("urls"), server.get("username"), server.get("credential")
    return server.urls, server.username, server.credential


def ice_servers_from(servers: Sequence[dict[str, Any] | IceServer]) -> IceServers:
    """The STUN and TURN servers of a config list (or of a per-offer ``ice_servers``).

    Raises ValueError naming the bad entry. ``stuns:`` is not supported by aioice and is
    refused rather than silently ignored.
    """
    stun: list[tuple[str, int]] = []
    turn: list[TurnServer] = []
    for index, server in enumerate(servers):
        urls, username, credential = _fields(server)
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list | tuple) or not urls:
            raise ValueError(f"ice_servers[{index}].urls: expected a list of URLs")
        for url in urls:
            parsed = parse_ice_url(str(url))
            if parsed.scheme == "stun":
                stun.append((parsed.host, parsed.port))
            elif parsed.scheme == "stuns":
                raise ValueError(f"ice_servers[{index}]: stuns: is not supported, use stun:")
            elif not username or not credential:
                raise ValueError(
                    f"ice_servers[{index}]: {parsed.scheme}: needs username and credential"
                )
            else:
                turn.append(
                    TurnServer(
                        host=parsed.host,
                        port=parsed.port,
                        username=str(username),
                        password=str(credential),
                        transport="tcp" if parsed.scheme == "turns" else parsed.transport,
                        tls=parsed.scheme == "turns",
                    )
                )
    return IceServers(stun=tuple(stun), turn=tuple(turn))
