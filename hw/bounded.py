"""Calls that may hang (opening media, probing a device) made with a time limit."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


def run_bounded(work: Callable[[], _T], timeout: float, what: str) -> _T:
    """``work()`` on a helper thread, waited for at most ``timeout`` s (ValueError after).

    Whatever ``work`` raises is re-raised here. A helper that overruns is left to finish
    on its own (a daemon): the caller is never held longer than ``timeout``.
    """
    result: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=1)

    def helper() -> None:
        try:
            result.put((True, work()))
        except BaseException as exc:  # handed to the caller, who decides
            result.put((False, exc))

    threading.Thread(target=helper, name="edgecam-probe", daemon=True).start()
    try:
        ok, value = result.get(timeout=timeout)
    except queue.Empty:
        raise ValueError(f"{what}: gave up after {timeout:g} s") from None
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]
