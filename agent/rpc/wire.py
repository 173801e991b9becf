"""JSON-RPC 2.0 on the wire: decoding a payload, finding the id of one that can't be decoded,
and encoding responses and notifications (PROTOCOL.md section 3).

NaN, Infinity and numbers outside the float range are parse errors: they are not JSON and
could not be echoed back as JSON.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from agent.rpc.errors import RpcError

logger = logging.getLogger(__name__)

# The whole of any message the agent accepts (it drops larger ones unread), so an id placed
# after a large params object is still found.
ID_SCAN_BYTES: Final = 1024 * 1024

JsonId = str | int | float | None


class Unparseable(ValueError):
    """A payload that is not UTF-8 JSON; the message names why."""


def _reject_constant(name: str) -> Any:
    raise Unparseable(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Unparseable("number out of range")
    return value


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    return pos if match is None else match.end()


def dumps(message: Any) -> str:
    # ensure_ascii keeps lone surrogates (legal in JSON escapes) encodable.
    return json.dumps(message, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def decode(payload: bytes) -> Any:
    """The JSON value of a payload; raises `Unparseable` naming the reason."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unparseable(f"not UTF-8 (byte {exc.start})") from None
    try:
        return _DECODER.decode(text)
    except Unparseable:
        raise
    except json.JSONDecodeError as exc:
        raise Unparseable(f"{exc.msg} at char {exc.pos}") from None
    except ValueError:
        raise Unparseable("invalid number") from None  # e.g. over int's digit limit
    except RecursionError:
        raise Unparseable("nesting too deep") from None


def is_id(value: Any) -> bool:
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
    if found and is_id(request_id):
        return True, request_id
    return False, None


def notification(method: str, params: Mapping[str, Any] | list[Any] | None = None) -> bytes:
    """A JSON-RPC notification from the device (e.g. `webrtc.state`, `stream.changed`)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return dumps(message).encode()


def error_reply(request_id: JsonId, error: RpcError) -> str:
    try:
        return dumps({"jsonrpc": "2.0", "id": request_id, "error": error.to_json()})
    except (TypeError, ValueError, RecursionError):
        logger.exception("error %d carries data that is not JSON; sent without it", error.code)
        bare = {"code": error.code, "message": str(error.message)}
        return dumps({"jsonrpc": "2.0", "id": request_id, "error": bare})
