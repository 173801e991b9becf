"""agent/runtime/camera.py: the camera supervisor (open off the loop, live and restarting
changes, stall watchdog with backoff), with stand-in cameras that keep hw/source.py's
threading contract (``start(sink)`` returns at once and ``sink`` is called from the source's
own thread; ``stop()`` joins it) by building on hw/threaded.py like the real sources do."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from agent.config import CameraConfig, CameraSource
from agent.control.api import StreamChangeError
from agent.media.fanout import FanOut
from agent.runtime import camera as camera_module
from agent.runtime.camera import CameraSupervisor, open_camera
from hw.frame import EncodedFrame
from hw.source import StreamSettings
from hw.threaded import ThreadedSource

WAIT = 5.0
CONFIG = CameraConfig(source=CameraSource.TESTSRC, width=320, height=240, bitrate=500_000)
# A non-IDR slice NAL: enough for the fan-out to count and packetize a frame.
SLICE = EncodedFrame.from_annexb(b"\x00\x00\x00\x01\x41\x9a\x00\x10", 0, False)


class StubCamera(ThreadedSource):
    """A camera that delivers a frame every `period` seconds from its own thread while
    `flowing` is set, and records what the supervisor asked of it."""

    thread_name = "stub-camera"

    def __init__(self, settings: StreamSettings, *, period: float = 0.005) -> None:
        super().__init__()
        self._settings = settings
        self._period = period
        self.flowing = threading.Event()
        self.flowing.set()
        self.bitrates: list[int] = []
        self.keyframe_requests = 0
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.sink_threads: set[str] = set()

    @property
    def settings(self) -> StreamSettings:
        return self._settings

    def set_bitrate(self, bitrate: int) -> None:
        self.bitrates.append(bitrate)
        self._settings = replace(self._settings, bitrate=bitrate)

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1

    def stop(self) -> None:
        super().stop()
        self.stopped.set()

    def _run(self, stop: threading.Event) -> None:
        self.started.set()
        while not stop.wait(self._period):
            if self.flowing.is_set():
                self.sink_threads.add(threading.current_thread().name)
                self._emit(SLICE)


class SpyFanOut(FanOut):
    """The real fan-out, counting `new_stream` calls."""

    def __init__(self) -> None:
        super().__init__(lambda: None)
        self.new_streams = 0
        self.pushed = asyncio.Event()

    def push(self, frame: EncodedFrame, now: float) -> None:
        super().push(frame, now)
        self.pushed.set()

    def new_stream(self) -> None:
        self.new_streams += 1
        super().new_stream()


class Opener:
    """Stands in for hw.open.open_source: each call takes the next planned outcome (a
    camera, or an exception to raise); records the settings it was asked for."""

    def __init__(self, *plan: StubCamera | Exception | Callable[[], StubCamera]) -> None:
        self.plan = list(plan)
        self.calls: list[tuple[str, str, StreamSettings]] = []
        self.threads: list[str] = []

    def __call__(
        self, kind: str, *, path: str, settings: StreamSettings, **backend: object
    ) -> StubCamera:
        self.calls.append((kind, path, settings))
        self.threads.append(threading.current_thread().name)
        outcome = self.plan.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, StubCamera):
            return outcome
        return outcome()


class Events:
    """The supervisor's on_event, with a way to wait for one by name."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    def __call__(self, name: str, **fields: Any) -> None:
        self.seen.append((name, fields))
        self._changed.set()

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.seen]

    async def wait_for(self, name: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            while True:
                for seen, fields in self.seen:
                    if seen == name:
                        return fields
                self._changed.clear()
                await self._changed.wait()


def camera(settings: StreamSettings | None = None) -> StubCamera:
    return StubCamera(settings or camera_module.stream_settings(CONFIG))


async def frames_arrive(fanout: SpyFanOut, more: int = 3) -> None:
    """Wait until `more` frames beyond the current count reached the fan-out (on the loop)."""
    target = fanout.stats.frames_in + more
    async with asyncio.timeout(WAIT):
        while fanout.stats.frames_in < target:
            fanout.pushed.clear()
            await fanout.pushed.wait()


@pytest.fixture
def stubs() -> Iterator[list[StubCamera]]:
    made: list[StubCamera] = []
    yield made
    for stub in made:
        stub.stop()


async def started(fanout: FanOut, events: Events) -> CameraSupervisor:
    supervisor = CameraSupervisor(CONFIG, fanout, events)
    await supervisor.start()
    return supervisor


async def test_start_opens_off_the_loop_and_frames_reach_the_fanout_from_the_camera_thread(
    monkeypatch: pytest.MonkeyPatch, stubs: list[StubCamera]
) -> None:
    first = camera()
    stubs.append(first)
    opener = Opener(first)
    monkeypatch.setattr(camera_module, "open_source", opener)
    fanout, events = SpyFanOut(), Events()
    supervisor = await started(fanout, events)
    try:
        await frames_arrive(fanout)
        assert supervisor.source is first
        assert opener.calls == [("testsrc", "", StreamSettings(320, 240, 30.0, 500_000))]
        assert opener.threads[0] != threading.current_thread().name
        assert first.sink_threads == {"stub-camera"}
        assert events.seen == []
    finally:
        await supervisor.stop()
    assert first.stopped.is_set()


async def test_an_open_that_blocks_is_abandoned_with_a_stream_change_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = threading.Event()  # never set by the test: the open blocks until teardown
    loop = asyncio.get_running_loop()
    entered = asyncio.Event()

    def blocking_open(
        kind: str, *, path: str, settings: StreamSettings, **backend: object
    ) -> StubCamera:
        loop.call_soon_threadsafe(entered.set)
        gate.wait(WAIT)
        return camera()

    monkeypatch.setattr(camera_module, "open_source", blocking_open)
    monkeypatch.setattr(camera_module, "OPEN_TIMEOUT", 0.2)
    config = replace(CONFIG, source=CameraSource.FILE, path="/run/edgecam.fifo")
    task = asyncio.create_task(open_camera(config))
    try:
        # The loop runs other work while the open is stuck in its thread.
        async with asyncio.timeout(WAIT):
            await entered.wait()
        assert not task.done()
        with pytest.raises(StreamChangeError) as caught:
            await task
    finally:
        gate.set()
    message = str(caught.value)
    assert "file" in message and "/run/edgecam.fifo" in message
    assert "opening took over" in message


async def test_an_open_that_fails_raises_stream_change_error_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        camera_module, "open_source", Opener(ValueError("cannot play /x.h264: no video"))
    )
    with pytest.raises(StreamChangeError, match=r"cannot play /x\.h264: no video"):
        await open_camera(CONFIG)


async def test_a_failing_first_start_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(camera_module, "open_source", Opener(OSError("no such device")))
    events = Events()
    supervisor = CameraSupervisor(CONFIG, SpyFanOut(), events)
    await supervisor.start()
    assert supervisor.source is None
    assert supervisor.stalled
    assert events.seen == [("camera.error", {"message": "no such device"})]
    # With no source the configured settings are what the stream is said to be.
    assert supervisor.settings == camera_module.stream_settings(CONFIG)


async def test_a_bitrate_change_alone_is_applied_live_without_a_restart(
    monkeypatch: pytest.MonkeyPatch, stubs: list[StubCamera]
) -> None:
    first = camera()
    stubs.append(first)
    opener = Opener(first)
    monkeypatch.setattr(camera_module, "open_source", opener)
    fanout = SpyFanOut()
    supervisor = await started(fanout, Events())
    try:
        wanted = replace(CONFIG, bitrate=1_200_000)
        await supervisor.apply(wanted)
        assert first.bitrates == [1_200_000]
        assert supervisor.source is first
        assert not first.stopped.is_set()
        assert len(opener.calls) == 1
        assert fanout.new_streams == 0
        assert supervisor.camera == wanted
        assert supervisor.settings.bitrate == 1_200_000
        await frames_arrive(fanout)
    finally:
        await supervisor.stop()


async def test_a_size_change_restarts_the_camera_on_a_new_stream(
    monkeypatch: pytest.MonkeyPatch, stubs: list[StubCamera]
) -> None:
    first = camera()
    second = camera(StreamSettings(640, 480, 30.0, 500_000))
    stubs += [first, second]
    opener = Opener(first, second)
    monkeypatch.setattr(camera_module, "open_source", opener)
    fanout = SpyFanOut()
    supervisor = await started(fanout, Events())
    try:
        wanted = replace(CONFIG, width=640, height=480)
        await supervisor.apply(wanted)
        assert opener.calls[1] == ("testsrc", "", StreamSettings(640, 480, 30.0, 500_000))
        assert first.stopped.is_set()
        assert supervisor.source is second
        assert second.started.wait(WAIT)
        assert fanout.new_streams == 1
        assert first.bitrates == []
        assert supervisor.camera == wanted
        await frames_arrive(fanout)
    finally:
        await supervisor.stop()


async def test_a_change_whose_open_fails_leaves_the_old_camera_running(
    monkeypatch: pytest.MonkeyPatch, stubs: list[StubCamera]
) -> None:
    first = camera()
    stubs.append(first)
    opener = Opener(first, ValueError("testsrc: width and height must be positive and even"))
    monkeypatch.setattr(camera_module, "open_source", opener)
    fanout = SpyFanOut()
    supervisor = await started(fanout, Events())
    try:
        with pytest.raises(StreamChangeError, match="positive and even"):
            await supervisor.apply(replace(CONFIG, width=642, framerate=25.0))
        assert supervisor.source is first
        assert not first.stopped.is_set()
        assert supervisor.camera == CONFIG
        assert fanout.new_streams == 0
        await frames_arrive(fanout)  # the old camera still delivers
    finally:
        await supervisor.stop()


class RecordingBackoff(tuple[float, ...]):
    """RESTART_BACKOFF that records which step each restart waited for."""

    used: list[int]

    def __getitem__(self, index: Any) -> Any:
        self.used.append(index)
        return super().__getitem__(index)


async def test_a_stall_is_reported_then_restarted_with_backoff_until_frames_flow(
    monkeypatch: pytest.MonkeyPatch, stubs: list[StubCamera]
) -> None:
    first, replacement = camera(), camera()
    stubs += [first, replacement]
    opener = Opener(first, OSError("busy"), OSError("busy"), OSError("busy"), replacement)
    backoff = RecordingBackoff((0.01, 0.02))
    backoff.used = []
    monkeypatch.setattr(camera_module, "open_source", opener)
    monkeypatch.setattr(camera_module, "CAMERA_STALL", 0.2)
    monkeypatch.setattr(camera_module, "RESTART_BACKOFF", backoff)
    fanout, events = SpyFanOut(), Events()
    supervisor = await started(fanout, events)
    watch = asyncio.create_task(supervisor.watch())
    try:
        await frames_arrive(fanout)
        first.flowing.clear()
        error = await events.wait_for("camera.error")
        assert error["message"].startswith("no frame for")
        await events.wait_for("camera.recovered")
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        await supervisor.stop()
    # One report per outage, however many restarts it took.
    assert events.names == ["camera.error", "camera.recovered"]
    # Three failed opens, then one that worked: each waited a longer step, capped at the last.
    assert backoff.used == [0, 1, 1, 1]
    assert len(opener.calls) == 5
    assert supervisor.restarts == 1
    assert supervisor.source is None  # stopped
    assert first.stopped.is_set()
    assert fanout.new_streams == 1
    assert not supervisor.stalled


async def test_request_keyframe_reaches_the_running_camera(
    monkeypatch: pytest.MonkeyPatch, stubs: list[StubCamera]
) -> None:
    first = camera()
    stubs.append(first)
    opener = Opener(first)
    monkeypatch.setattr(camera_module, "open_source", opener)
    supervisor = await started(SpyFanOut(), Events())
    try:
        supervisor.request_keyframe()
        assert first.keyframe_requests == 1
    finally:
        await supervisor.stop()
    supervisor.request_keyframe()  # no camera: nothing to ask, and no error
    assert first.keyframe_requests == 1
