"""Declarative schemas for the by-name params of JSON-RPC methods (PROTOCOL.md section 4).

A `ParamSpec` maps member names to `Param` constraints; its `RpcError.invalid_params` names
the offending field(s), e.g. ``params.session: expected 1-64 characters of A-Za-z0-9_-``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from enum import Enum
from typing import Any, Final

from agent.rpc.errors import RpcError, clip


class Kind(Enum):
    """JSON type of a parameter; the value is how an error message names it."""

    STR = "a string"
    INT = "an integer"
    NUMBER = "a number"
    BOOL = "a boolean"
    OBJECT = "an object"
    ARRAY = "an array"
    ANY = "a value"


@dataclass(frozen=True)
class Param:
    """Constraints on one member of `params`, e.g.
    ``Param(Kind.INT, required=True, minimum=1, maximum=100)``.

    Strings take `min_length`, `max_length` and `pattern` (which must match all of it);
    integers and numbers take `minimum` and `maximum`; `expected` overrides the generated
    wording of the error message. An integer is never `true` or `1.0`.
    """

    kind: Kind
    _: KW_ONLY
    required: bool = False
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    choices: tuple[str | int | float, ...] | None = None
    expected: str | None = None
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            object.__setattr__(self, "_regex", re.compile(self.pattern))

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable or self.kind is Kind.ANY
        if not _has_kind(value, self.kind):
            return False
        if isinstance(value, str):
            if self.min_length is not None and len(value) < self.min_length:
                return False
            if self.max_length is not None and len(value) > self.max_length:
                return False
            if self._regex is not None and self._regex.fullmatch(value) is None:
                return False
        if self.kind in (Kind.INT, Kind.NUMBER):
            if self.minimum is not None and value < self.minimum:
                return False
            if self.maximum is not None and value > self.maximum:
                return False
        return self.choices is None or value in self.choices

    def describe(self) -> str:
        """What a valid value looks like, for `params.<name>: expected ...` messages."""
        if self.expected is not None:
            text = self.expected
        elif self.choices is not None:
            text = "one of " + ", ".join(json.dumps(c) for c in self.choices)
        else:
            text = self.kind.value
            if self.min_length is not None or self.max_length is not None:
                low = self.min_length if self.min_length is not None else 0
                high = "" if self.max_length is None else str(self.max_length)
                text += f" of {low}..{high} characters"
            if self.pattern is not None:
                text += f" matching {self.pattern}"
            if self.minimum is not None or self.maximum is not None:
                low_s = "" if self.minimum is None else _number_text(self.minimum)
                high_s = "" if self.maximum is None else _number_text(self.maximum)
                text += f" in {low_s}..{high_s}"
        return text + " or null" if self.nullable else text


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _has_kind(value: Any, kind: Kind) -> bool:
    # bool is a subclass of int in Python but not a number in JSON.
    if kind is Kind.STR:
        return isinstance(value, str)
    if kind is Kind.INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is Kind.NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is Kind.BOOL:
        return isinstance(value, bool)
    if kind is Kind.OBJECT:
        return isinstance(value, dict)
    if kind is Kind.ARRAY:
        return isinstance(value, list)
    return True


SESSION_ID_PATTERN: Final = r"[A-Za-z0-9_-]{1,64}"
SESSION_ID: Final = Param(
    Kind.STR, required=True, pattern=SESSION_ID_PATTERN, expected="1-64 characters of A-Za-z0-9_-"
)
_SESSION_ID_RE: Final = re.compile(SESSION_ID_PATTERN)


def is_session_id(value: object) -> bool:
    """True for a valid client-chosen session id (PROTOCOL.md section 4)."""
    return isinstance(value, str) and _SESSION_ID_RE.fullmatch(value) is not None


@dataclass(frozen=True, eq=False)
class ParamSpec:
    """Declarative schema of a method's by-name params; a `ParamsValidator`.

    Unknown members are rejected unless `allow_extra`, so a misspelt optional field is an
    error rather than silently ignored.
    """

    fields: Mapping[str, Param]
    allow_extra: bool = False

    def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.allow_extra:
            unknown = sorted(name for name in params if name not in self.fields)
            if unknown:
                names = ", ".join(f"params.{clip(name)}" for name in unknown[:5])
                more = ", ..." if len(unknown) > 5 else ""
                field_word = "field" if len(unknown) == 1 else "fields"
                raise RpcError.invalid_params(f"{names}{more}: unknown {field_word}")
        for name, spec in self.fields.items():
            if name not in params:
                if spec.required:
                    raise RpcError.invalid_params(f"params.{name}: required")
                continue
            if not spec.accepts(params[name]):
                raise RpcError.invalid_params(f"params.{name}: expected {spec.describe()}")
        return dict(params)


NO_PARAMS: Final = ParamSpec({})
