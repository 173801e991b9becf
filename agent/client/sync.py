"""`SyncFleet`: `Fleet` for plain scripts, on an event loop of its own in a daemon thread.

The loop runs all the time (not only inside calls), so the connection's keepalives and the
status updates keep flowing while the script does something else.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar

from agent.client.fleet import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, Fleet
from agent.client.models import CallResult, DeviceInfo, DeviceMessage

T = TypeVar("T")


class SyncFleet:
    """``with SyncFleet(broker=..., ca=..., cert=..., key=...) as fleet:
    fleet.call("cam-01", "stream.keyframe")``; the same arguments and errors as `Fleet`."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._fleet: Fleet | None = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> Self:
        self._thread.start()

        async def enter() -> Fleet:
            return await Fleet(**self._kwargs).__aenter__()

        try:
            self._fleet = self._run(enter())
        except BaseException:
            self._shutdown()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fleet is not None:
            self._run(self._fleet.__aexit__(exc_type, exc, tb))
        self._shutdown()

    def _shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def fleet(self) -> Fleet:
        if self._fleet is None:
            raise RuntimeError("SyncFleet used outside `with`")
        return self._fleet

    def devices(self) -> list[DeviceInfo]:
        return self._run(self.fleet.devices())

    def call(
        self,
        device: str,
        method: str,
        params: dict[str, Any] | None = None,
        /,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        **named: Any,
    ) -> Any:
        return self._run(self.fleet.call(device, method, params, timeout=timeout, **named))

    def call_many(
        self,
        target: str | Iterable[str],
        method: str,
        params: dict[str, Any] | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[CallResult]:
        return self._run(
            self.fleet.call_many(target, method, params, concurrency=concurrency, timeout=timeout)
        )

    def events(self, target: str = "all") -> Iterator[DeviceMessage]:
        return self._iterate(self.fleet.events(target))

    def telemetry(self, target: str = "all") -> Iterator[DeviceMessage]:
        return self._iterate(self.fleet.telemetry(target))

    def _iterate(self, stream: Any) -> Iterator[DeviceMessage]:
        async def step() -> DeviceMessage | None:
            try:
                message: DeviceMessage = await stream.__anext__()
            except StopAsyncIteration:
                return None
            return message

        try:
            while (message := self._run(step())) is not None:
                yield message
        finally:
            self._run(stream.aclose())
