"""Blocking work that may never return (opening a FIFO, a wedged camera driver), run so
that it can be abandoned: on a daemon thread of its own, not the loop's default executor,
which ``asyncio.run`` waits for at exit, so a stuck call there would make SIGTERM hang."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return  # the caller gave up (timeout, cancel)
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def run_abandonable(fn: Callable[..., T], *args: Any, timeout: float, name: str) -> T:
    """``fn(*args)`` on a new daemon thread; TimeoutError after ``timeout`` seconds, leaving
    the thread to finish (or not) on its own."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task, re-raised there
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(_settle, future, result, error)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await asyncio.wait_for(future, timeout)
