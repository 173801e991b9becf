"""JSON-RPC 2.0 dispatcher shared by the MQTT and the datachannel transports.

PROTOCOL.md sections 3 (envelope and error codes), 4 (method table) and 7 (roles). The module
knows nothing of sockets or MQTT: a transport hands `Dispatcher.handle` the raw payload of one
message together with its `Origin`, and sends back whatever bytes come out (if any). Error
objects live in `rpc_errors` (re-exported here) and params schemas in `params`.

Choices the protocol leaves open, made here:
- A payload that is too large or is not UTF-8 JSON is never fully parsed. Its first
  `ID_SCAN_BYTES` are scanned for a top-level `"id"` member (keys at depth 1 only, so an `id`
  inside `params` is never mistaken for it); if one is found the error is answered with it,
  otherwise the payload is dropped and logged (section 3).
- A valid JSON value that is not a valid request (wrong `jsonrpc`, bad `method`, ...) is
  answered with the request's id if it has a well-formed one, else with id null, as JSON-RPC
  2.0 requires.
- Anything shaped like a response (`result` or `error` and no `method`) is logged and dropped,
  never answered: two peers that answered each other's errors would loop forever.
- Batches are served in order, one element at a time, and capped at `max_batch` elements so
  that a 64 KiB payload cannot fan out into thousands of responses.
- NaN, Infinity and numbers outside the float range are parse errors: they are not JSON and
  could not be echoed back as JSON.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Final

from agent.signaling.params import NO_PARAMS
from agent.signaling.rpc_errors import ErrorCode as ErrorCode
from agent.signaling.rpc_errors import RpcError as RpcError
from agent.signaling.rpc_errors import clip

logger = logging.getLogger(__name__)

MAX_PAYLOAD: Final = 65536
MAX_BATCH: Final = 32
# The whole of any message the agent accepts (it drops larger ones unread), so an id placed
# after a large params object is still found.
ID_SCAN_BYTES: Final = 1024 * 1024

JsonId = str | int | float | None
Params = dict[str, Any]
ParamsValidator = Callable[[Params], Params]
Handler = Callable[["CallContext", Params], object]


class Role(IntEnum):
    """Access level of a client (PROTOCOL.md section 7); a higher value may do more."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3


class Transport(StrEnum):
    """The channel a message arrived on."""

    MQTT = "mqtt"
    DATACHANNEL = "datachannel"


ALL_TRANSPORTS: Final = frozenset(Transport)
MQTT_ONLY: Final = frozenset({Transport.MQTT})


# Errors that mean the client sent something wrong; the rest are ordinary outcomes of a call.
_CLIENT_FAULTS: Final = frozenset(
    {
        ErrorCode.PARSE_ERROR,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.METHOD_NOT_FOUND,
        ErrorCode.INVALID_PARAMS,
        ErrorCode.UNAUTHORIZED,
    }
)


# --- method table -----------------------------------------------------------------------------


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


# --- wire encoding ----------------------------------------------------------------------------


class _Unparseable(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _Unparseable(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Unparseable("number out of range")
    return value


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    return pos if match is None else match.end()


def _dumps(message: Any) -> str:
    # ensure_ascii keeps lone surrogates (legal in JSON escapes) encodable.
    return json.dumps(message, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def _decode(payload: bytes) -> Any:
    """The JSON value of a payload; raises `_Unparseable` naming the reason."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Unparseable(f"not UTF-8 (byte {exc.start})") from None
    try:
        return _DECODER.decode(text)
    except _Unparseable:
        raise
    except json.JSONDecodeError as exc:
        raise _Unparseable(f"{exc.msg} at char {exc.pos}") from None
    except ValueError:
        raise _Unparseable("invalid number") from None  # e.g. over int's digit limit
    except RecursionError:
        raise _Unparseable("nesting too deep") from None


def _is_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def peek_id(payload: bytes) -> tuple[bool, JsonId]:
    """(found, id) of a top-level `"id"` member within the first `ID_SCAN_BYTES` of a payload.

    For payloads that are not parsed as a whole. Only members at depth 1 are looked at, and a
    value counts only once the delimiter after it is seen, so a value cut off by the scan limit
    (or by bad UTF-8) is never taken for the real one.
    """
    head = payload[:ID_SCAN_BYTES]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = head[: exc.start].decode("utf-8")
    found, request_id = False, None
    pos = _skip_ws(text, 0)
    if not text.startswith("{", pos):
        return False, None
    pos += 1
    try:
        while True:
            pos = _skip_ws(text, pos)
            key, pos = _DECODER.raw_decode(text, pos)
            pos = _skip_ws(text, pos)
            if not isinstance(key, str) or not text.startswith(":", pos):
                break
            pos = _skip_ws(text, pos + 1)
            value, pos = _DECODER.raw_decode(text, pos)
            pos = _skip_ws(text, pos)
            if not text.startswith((",", "}"), pos):
                break
            if key == "id":
                found, request_id = True, value
            if text.startswith("}", pos):
                break
            pos += 1
    except (ValueError, RecursionError):
        pass
    if found and _is_id(request_id):
        return True, request_id
    return False, None


def notification(method: str, params: Mapping[str, Any] | list[Any] | None = None) -> bytes:
    """A JSON-RPC notification from the device (e.g. `webrtc.state`, `stream.changed`)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return _dumps(message).encode()


def _describe(method: Any) -> str:
    return repr(clip(method)) if isinstance(method, str) else "-"


# --- dispatcher -------------------------------------------------------------------------------


class Dispatcher:
    """Serves a `MethodTable` to JSON-RPC 2.0 payloads from any transport.

    `role_for(client_id)` gives a client's role, or None for a client matching no pattern, who
    may call nothing. It is asked on every call, so a config change applies at once.
    """

    def __init__(
        self,
        table: MethodTable,
        role_for: Callable[[str], Role | None],
        *,
        max_payload: int = MAX_PAYLOAD,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._table = table
        self._role_for = role_for
        self.max_payload = max_payload
        self.max_batch = max_batch

    async def handle(self, payload: bytes, origin: Origin) -> bytes | None:
        """The response to send back for one message, or None when nothing is to be sent.

        Never raises (except `CancelledError`): every failure becomes an error response or a
        log line.
        """
        try:
            return await self._handle(payload, origin)
        except Exception:
            logger.exception("client %r: dispatcher failure, message dropped", origin.client_id)
            return None

    async def _handle(self, payload: bytes, origin: Origin) -> bytes | None:
        if len(payload) > self.max_payload:
            error = RpcError.invalid_request(
                f"payload too large: {len(payload)} bytes, limit {self.max_payload}"
            )
            return self._reject_unparsed(payload, origin, error)
        try:
            message = _decode(payload)
        except _Unparseable as exc:
            return self._reject_unparsed(
                payload, origin, RpcError.parse_error(f"parse error: {exc}")
            )

        if not isinstance(message, list):
            reply = await self._handle_one(message, origin)
            return None if reply is None else reply.encode()
        if not message:
            return self._fail(origin, None, None, RpcError.invalid_request("empty batch")).encode()
        if len(message) > self.max_batch:
            error = RpcError.invalid_request(
                f"batch too large: {len(message)} requests, limit {self.max_batch}"
            )
            return self._fail(origin, None, None, error).encode()
        replies = [await self._handle_one(item, origin) for item in message]
        parts = [reply for reply in replies if reply is not None]
        return ("[" + ",".join(parts) + "]").encode() if parts else None

    def _reject_unparsed(self, payload: bytes, origin: Origin, error: RpcError) -> bytes | None:
        found, request_id = peek_id(payload)
        if not found:
            self._log(origin, None, None, error, "dropped: no readable id")
            return None
        return self._fail(origin, request_id, None, error).encode()

    async def _handle_one(self, message: Any, origin: Origin) -> str | None:
        if not isinstance(message, dict):
            return self._fail(origin, None, None, RpcError.invalid_request("not an object"))
        method = message.get("method")
        if "method" not in message and ("result" in message or "error" in message):
            logger.info(
                "client %r: response ignored (the device makes no requests)", origin.client_id
            )
            return None
        request_id = message.get("id")
        if not _is_id(request_id):
            error = RpcError.invalid_request("invalid request: id must be a string, number or null")
            return self._fail(origin, None, method, error)
        if message.get("jsonrpc") != "2.0":
            error = RpcError.invalid_request('invalid request: jsonrpc must be "2.0"')
            return self._fail(origin, request_id, method, error)
        if not isinstance(method, str):
            error = RpcError.invalid_request("invalid request: method must be a string")
            return self._fail(origin, request_id, None, error)
        params = message.get("params", {})
        if not isinstance(params, dict | list):
            error = RpcError.invalid_request("invalid request: params must be an object or array")
            return self._fail(origin, request_id, method, error)
        is_notification = "id" not in message
        return await self._call(origin, request_id, method, params, is_notification)

    async def _call(
        self,
        origin: Origin,
        request_id: JsonId,
        name: str,
        params: Params | list[Any],
        is_notification: bool,
    ) -> str | None:
        try:
            result = await self._invoke(origin, name, params)
        except RpcError as error:
            if is_notification:
                self._log(origin, request_id, name, error, "notification, not answered")
                return None
            return self._fail(origin, request_id, name, error)
        except Exception:
            # The traceback stays on the device; the client only learns that it failed.
            logger.exception("client %r: method %s raised", origin.client_id, _describe(name))
            return None if is_notification else _error_reply(request_id, RpcError.internal())
        if is_notification:
            return None
        try:
            return _dumps({"jsonrpc": "2.0", "id": request_id, "result": result})
        except (TypeError, ValueError, RecursionError):
            logger.exception(
                "client %r: result of %s is not JSON", origin.client_id, _describe(name)
            )
            return _error_reply(request_id, RpcError.internal())

    async def _invoke(self, origin: Origin, name: str, params: Params | list[Any]) -> object:
        role = self._role_for(origin.client_id)
        # Checked before the method exists, so a stranger learns nothing of the table.
        if role is None:
            raise RpcError.unauthorized("unauthorized: client has no role")
        method = self._table.get(name)
        if method is None:
            raise RpcError.method_not_found(f"method not found: {clip(name)}")
        if origin.transport not in method.transports:
            only = " or ".join(sorted(t.value for t in method.transports))
            raise RpcError.method_not_found(f"method not found: {name} is only served over {only}")
        if role < method.min_role:
            raise RpcError.unauthorized(
                f"unauthorized: {name} needs role {method.min_role.name.lower()}"
            )
        if isinstance(params, list):
            raise RpcError.invalid_params("params: expected an object (by-name params)")
        checked = method.validate(params)
        ctx = CallContext(origin.client_id, role, origin.transport, origin.session)
        result = method.handler(ctx, checked)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _fail(self, origin: Origin, request_id: JsonId, method: Any, error: RpcError) -> str:
        self._log(origin, request_id, method, error, "answered")
        return _error_reply(request_id, error)

    @staticmethod
    def _log(origin: Origin, request_id: JsonId, method: Any, error: RpcError, what: str) -> None:
        level = logging.WARNING if error.code in _CLIENT_FAULTS else logging.INFO
        logger.log(
            level,
            "client %r over %s: method %s id %s: error %d %r (%s)",
            origin.client_id,
            origin.transport.value,
            _describe(method),
            clip(repr(request_id)),
            error.code,
            error.message,
            what,
        )


def _error_reply(request_id: JsonId, error: RpcError) -> str:
    try:
        return _dumps({"jsonrpc": "2.0", "id": request_id, "error": error.to_json()})
    except (TypeError, ValueError, RecursionError):
        logger.exception("error %d carries data that is not JSON; sent without it", error.code)
        bare = {"code": error.code, "message": str(error.message)}
        return _dumps({"jsonrpc": "2.0", "id": request_id, "error": bare})
