"""JSON-RPC 2.0 dispatcher shared by the MQTT and the datachannel transports.

PROTOCOL.md sections 3 (envelope and error codes), 4 (method table) and 7 (roles). The module
knows nothing of sockets or MQTT: a transport hands `Dispatcher.handle` the raw payload of one
message together with its `Origin`, and sends back whatever bytes come out (if any). Error
objects live in `errors`, params schemas in `params`, the method table in `methods` and the
wire encoding in `wire`.

Choices the protocol leaves open, made here:
- A payload that is too large or is not UTF-8 JSON is never fully parsed. Its first
  `ID_SCAN_BYTES` are scanned for a top-level `"id"` member (keys at depth 1 only, so an `id`
  inside `params` is never mistaken for it); if one is found the error is answered with it,
  otherwise with `"id": null`, as JSON-RPC 2.0 says (section 3).
- A valid JSON value that is not a valid request (wrong `jsonrpc`, bad `method`, ...) is
  answered with the request's id if it has a well-formed one, else with id null, as JSON-RPC
  2.0 requires.
- Anything shaped like a response (`result` or `error` and no `method`) is logged and dropped,
  never answered: two peers that answered each other's errors would loop forever.
- Batches are served in order, one element at a time, and capped at `max_batch` elements so
  that a 64 KiB payload cannot fan out into thousands of responses.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from agent.rpc.errors import ErrorCode, RpcError, clip
from agent.rpc.logbudget import LogBudget
from agent.rpc.methods import CallContext, MethodTable, Origin, Params
from agent.rpc.roles import Role
from agent.rpc.wire import JsonId, Unparseable, decode, dumps, error_reply, is_id, peek_id

logger = logging.getLogger(__name__)

MAX_PAYLOAD: Final = 65536
MAX_BATCH: Final = 32

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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._clock = clock
        # Every error a client causes is worth a line, but not a flood of them.
        self.log_budget = LogBudget(logger)
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
            message = decode(payload)
        except Unparseable as exc:
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

    def _reject_unparsed(self, payload: bytes, origin: Origin, error: RpcError) -> bytes:
        _, request_id = peek_id(payload)  # not found: None, answered with "id": null
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
        if not is_id(request_id):
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
            return None if is_notification else error_reply(request_id, RpcError.internal())
        if is_notification:
            return None
        try:
            return dumps({"jsonrpc": "2.0", "id": request_id, "result": result})
        except (TypeError, ValueError, RecursionError):
            logger.exception(
                "client %r: result of %s is not JSON", origin.client_id, _describe(name)
            )
            return error_reply(request_id, RpcError.internal())

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
        return error_reply(request_id, error)

    @property
    def log_lines_suppressed(self) -> int:
        """Error lines not logged because their client had used up its log budget."""
        return self.log_budget.suppressed_total

    def _log(
        self, origin: Origin, request_id: JsonId, method: Any, error: RpcError, what: str
    ) -> None:
        level = logging.WARNING if error.code in _CLIENT_FAULTS else logging.INFO
        self.log_budget.log(
            origin.client_id,
            self._clock(),
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
