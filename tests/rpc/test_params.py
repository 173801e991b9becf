"""Tests of agent/signaling/params.py: the by-name params schemas of JSON-RPC methods."""

from __future__ import annotations

from typing import Any

import pytest

from agent.rpc.errors import ErrorCode, RpcError
from agent.rpc.params import NO_PARAMS, SESSION_ID, Kind, Param, ParamSpec, is_session_id

SESSION_ONLY = ParamSpec({"session": SESSION_ID})
ECHO_SPEC = ParamSpec(
    {
        "text": Param(Kind.STR),
        "n": Param(Kind.INT, minimum=1, maximum=100),
        "mode": Param(Kind.STR, choices=("fast", "slow")),
        "flag": Param(Kind.BOOL),
        "rate": Param(Kind.NUMBER, minimum=0),
        "candidate": Param(Kind.STR, nullable=True),
        "name": Param(Kind.STR, min_length=2, max_length=4),
    }
)

BAD_SESSION = "params.session: expected 1-64 characters of A-Za-z0-9_-"


@pytest.mark.parametrize(
    ("spec", "params", "message"),
    [
        (SESSION_ONLY, {}, "params.session: required"),
        (SESSION_ONLY, {"session": ""}, BAD_SESSION),
        (SESSION_ONLY, {"session": "a" * 65}, BAD_SESSION),
        (SESSION_ONLY, {"session": "a b"}, BAD_SESSION),
        (SESSION_ONLY, {"session": "a\n"}, BAD_SESSION),
        (SESSION_ONLY, {"session": 12}, BAD_SESSION),
        (SESSION_ONLY, {"session": None}, BAD_SESSION),
        (SESSION_ONLY, {"session": "ok", "sesion": "x"}, "params.sesion: unknown field"),
        (NO_PARAMS, {"b": 1, "a": 2}, "params.a, params.b: unknown fields"),
        (ECHO_SPEC, {"n": 0}, "params.n: expected an integer in 1..100"),
        (ECHO_SPEC, {"n": 101}, "params.n: expected an integer in 1..100"),
        (ECHO_SPEC, {"n": 5.0}, "params.n: expected an integer in 1..100"),
        (ECHO_SPEC, {"n": True}, "params.n: expected an integer in 1..100"),
        (ECHO_SPEC, {"n": "5"}, "params.n: expected an integer in 1..100"),
        (ECHO_SPEC, {"mode": "medium"}, 'params.mode: expected one of "fast", "slow"'),
        (ECHO_SPEC, {"flag": 1}, "params.flag: expected a boolean"),
        (ECHO_SPEC, {"rate": -0.5}, "params.rate: expected a number in 0.."),
        (ECHO_SPEC, {"rate": False}, "params.rate: expected a number in 0.."),
        (ECHO_SPEC, {"text": None}, "params.text: expected a string"),
        (ECHO_SPEC, {"candidate": 5}, "params.candidate: expected a string or null"),
        (ECHO_SPEC, {"name": "a"}, "params.name: expected a string of 2..4 characters"),
        (ECHO_SPEC, {"name": "abcde"}, "params.name: expected a string of 2..4 characters"),
    ],
)
def test_invalid_params_names_the_field(
    spec: ParamSpec, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(RpcError) as info:
        spec(params)
    assert (info.value.code, info.value.message) == (ErrorCode.INVALID_PARAMS, message)


def test_session_ids() -> None:
    for good in ("a", "A-z_0-9", "x" * 64):
        assert is_session_id(good)
    for bad in ("", "x" * 65, "a\n", "é", "a.b", None, 5):
        assert not is_session_id(bad)
