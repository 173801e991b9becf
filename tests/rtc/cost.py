"""Deterministic work counting for the "no parser worse than linear" rule.

Timing a parser would make a flaky test and say little on a shared machine, so a cost test
counts what the interpreter executes instead: every bytecode instruction of every Python
frame run while the parser works (sys.settrace with f_trace_opcodes). The count is the same
on every run and every machine, and a parser that loops over its input in Python, directly
or in a nested loop, shows up in it.

What it cannot see is work inside one C-level operation (`x in some_list`, `list.index`,
`str.count`): one opcode however long it runs. Those are kept out of parser loops by review
and by tests/rtc/test_parser_cost.py's source check for membership tests on lists.

Usage: `work, result = count_work(parse, data)`, then assert `work <= K * len(data) + C`
with the K and C the parser's test states. Raised exceptions are returned, not re-raised,
so refused input is measured too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any


def count_work(function: Callable[..., Any], *args: Any) -> tuple[int, object]:
    """(opcodes executed, the result or the exception raised) for function(*args)."""
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Callable[..., Any]:
        nonlocal count
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode":
            count += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        result: object = function(*args)
    except Exception as exc:  # refusing the input is an outcome, measured like any other
        result = exc
    finally:
        sys.settrace(previous)
    return count, result


def assert_linear(function: Callable[..., Any], data: bytes | str, k: int, c: int) -> object:
    """Run function(data) and assert its work is at most k opcodes per input unit plus c."""
    work, result = count_work(function, data)
    limit = k * len(data) + c
    assert work <= limit, (
        f"{getattr(function, '__qualname__', function)} did {work} opcodes on "
        f"{len(data)} units of input (limit {k} * n + {c} = {limit})"
    )
    return result
