"""The method table: each method with its handler, minimum role, params and transports.

PROTOCOL.md section 4. A transport (MQTT, the datachannel) hands payloads to the dispatcher
with an `Origin`; a handler learns about its caller through a `CallContext`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from agent.rpc.params import NO_PARAMS
from agent.rpc.roles import Role

Params = dict[str, Any]
ParamsValidator = Callable[[Params], Params]
Handler = Callable[["CallContext", Params], object]


class Transport(StrEnum):
    """The channel a message arrived on."""

    MQTT = "mqtt"
    DATACHANNEL = "datachannel"


ALL_TRANSPORTS: Final = frozenset(Transport)
MQTT_ONLY: Final = frozenset({Transport.MQTT})


@dataclass(frozen=True)
class Origin:
    """Where a payload came from, as its transport knows it."""

    client_id: str
    transport: Transport
    session: str | None = None  # the datachannel's session; None on MQTT


@dataclass(frozen=True)
class CallContext:
    """What a method learns about its caller."""

    client_id: str
    role: Role
    transport: Transport
    session: str | None = None


@dataclass(frozen=True)
class Method:
    """One entry of a `MethodTable`."""

    name: str
    handler: Handler
    min_role: Role
    validate: ParamsValidator
    transports: frozenset[Transport]


class MethodTable:
    """The methods served, with the role and transports each one needs (PROTOCOL.md 4)."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        min_role: Role,
        params: ParamsValidator = NO_PARAMS,
        transports: Iterable[str] | None = None,
    ) -> None:
        """Add a method. `handler(ctx, params)` may be sync or async; it gets the params as
        returned by `params` (a `ParamSpec` or any callable raising `RpcError`).

        `transports` defaults to MQTT only for `webrtc.*` (which may not be served anywhere
        else) and to every transport for the rest.
        """
        if not name or name.startswith("rpc."):
            raise ValueError(f"invalid method name {name!r} (rpc.* is reserved by JSON-RPC)")
        if name in self._methods:
            raise ValueError(f"method {name!r} is already registered")
        if transports is None:
            allowed = MQTT_ONLY if name.startswith("webrtc.") else ALL_TRANSPORTS
        else:
            allowed = frozenset(Transport(t) for t in transports)
        if name.startswith("webrtc.") and allowed != MQTT_ONLY:
            raise ValueError(f"{name}: webrtc.* methods are MQTT-only (PROTOCOL.md section 4)")
        self._methods[name] = Method(name, handler, Role(min_role), params, allowed)

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self) -> Iterator[Method]:
        return iter(self._methods.values())

    def __len__(self) -> int:
        return len(self._methods)
