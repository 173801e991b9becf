"""The camera supervisor: the one owner of the capture source and its feed.

It opens sources off the event loop with a time bound (a path that blocks, such as a FIFO,
must never freeze the agent), changes stream settings (a bitrate alone live, anything else
by restarting the source), and restarts a source that stalls or fails, with backoff, telling
the agent through ``on_event`` (``camera.error`` / ``camera.recovered``). It never raises
into the agent for a camera that misbehaves: a camera can fail, the agent stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final

from agent.config import CameraConfig, Config
from agent.control.api import StreamChangeError
from agent.media.fanout import FanOut
from agent.media.feed import CameraFeed
from agent.runtime.daemon_thread import run_abandonable
from hw.controls import ControlInfo, ControlValue
from hw.open import open_source, probe_source
from hw.source import StreamSettings, VideoSource

logger = logging.getLogger(__name__)

# Opening a source (probing a file, starting a camera) may take this long before the attempt
# counts as failed; stopping one, this long before the agent stops waiting for it.
OPEN_TIMEOUT: Final = 10.0
STOP_TIMEOUT: Final = 5.0
# No frame for this long: the camera is reported stalled (and restarted).
CAMERA_STALL: Final = 5.0
RESTART_BACKOFF: Final = (1.0, 2.0, 5.0, 10.0, 30.0)

EventSink = Callable[..., None]  # on_event(name, **fields)


def stream_settings(camera: CameraConfig) -> StreamSettings:
    return StreamSettings(camera.width, camera.height, camera.framerate, camera.bitrate)


def probe_camera(config: Config) -> list[str]:
    """What keeps the configured camera from opening on this machine (``edgecam check``)."""
    camera = config.camera
    return probe_source(
        camera.source, camera.path, settings=stream_settings(camera), index=camera.index
    )


async def open_camera(camera: CameraConfig) -> VideoSource:
    """A source for ``camera``, opened on a worker thread within `OPEN_TIMEOUT`.

    Raises StreamChangeError naming the reason. A thread stuck in the open is abandoned (it
    cannot be killed) rather than waited for.
    """

    def call() -> VideoSource:
        return open_source(
            camera.source,
            path=camera.path,
            settings=stream_settings(camera),
            index=camera.index,
            profile=camera.profile,
            iperiod=camera.iperiod or None,
        )

    try:
        return await run_abandonable(call, timeout=OPEN_TIMEOUT, name="camera-open")
    except TimeoutError:
        raise StreamChangeError(
            f"camera {camera.source} {camera.path!r}: opening took over {OPEN_TIMEOUT:.0f} s"
        ) from None
    except (ValueError, OSError) as exc:
        raise StreamChangeError(str(exc)) from None


class CameraSupervisor:
    """Runs the configured camera into the fan-out and keeps it running."""

    def __init__(self, camera: CameraConfig, fanout: FanOut, on_event: EventSink) -> None:
        self.camera = camera
        self._fanout = fanout
        self._on_event = on_event
        self._feed: CameraFeed | None = None
        self._lock = asyncio.Lock()
        self._frames_seen = -1
        self._failed = asyncio.Event()  # the source reported a failure of its own
        self.stalled = False
        self.restarts = 0
        self.resting = False  # stopped on purpose (on demand, no viewer)

    @property
    def source(self) -> VideoSource | None:
        return self._feed.source if self._feed is not None else None

    @property
    def settings(self) -> StreamSettings:
        source = self.source
        return source.settings if source is not None else stream_settings(self.camera)

    async def start(self) -> None:
        """Start the configured camera; a failure is reported, not raised (the watch loop
        retries)."""
        try:
            await self._start(await open_camera(self.camera))
        except StreamChangeError as exc:
            self._report_failure(str(exc))

    async def rest(self) -> None:
        """Stop the camera on purpose (no viewer, on demand); ``wake`` starts it again."""
        async with self._lock:
            if self.resting:
                return
            await self._stop_feed()
            self._fanout.new_stream()
            self.resting = True
        logger.info("camera: resting (no viewer for %.0f s)", self.camera.idle_timeout)

    async def wake(self) -> None:
        """Start a resting camera; StreamChangeError when it cannot be opened."""
        async with self._lock:
            if not self.resting:
                return
            await self._start(await open_camera(self.camera))
            self.resting = False
        logger.info("camera: awake for a viewer")

    async def rest_when_idle(self, viewers: Callable[[], int], clock: Callable[[], float]) -> None:
        """Forever, with ``camera.on_demand``: rest the camera once nobody has watched for
        ``camera.idle_timeout`` seconds."""
        last_watched = clock()
        while True:
            await asyncio.sleep(min(1.0, self.camera.idle_timeout / 4))
            if not self.camera.on_demand or viewers() > 0 or self.resting:
                last_watched = clock()
            elif clock() - last_watched >= self.camera.idle_timeout:
                await self.rest()

    async def apply(self, wanted: CameraConfig) -> None:
        """Run the camera with ``wanted``: a bitrate alone changes live, anything else
        restarts the source. StreamChangeError leaves the old camera running."""
        async with self._lock:
            source = self.source
            if self.resting:
                await run_abandonable(
                    (await open_camera(wanted)).stop, timeout=STOP_TIMEOUT, name="camera-stop"
                )  # proves it opens; it starts at the next viewer
            elif source is not None and self._live_change(wanted):
                source.set_bitrate(wanted.bitrate)
            else:
                new = await open_camera(wanted)
                await self._stop_feed()
                self._fanout.new_stream()  # forget the old SPS and GOP
                await self._start(new)
            self.camera = wanted

    def _live_change(self, wanted: CameraConfig) -> bool:
        """Only the bitrate or the bitrate policy's floor differ: no restart needed."""
        return replace(self.camera, bitrate=wanted.bitrate, min_bitrate=wanted.min_bitrate) == (
            wanted
        )

    async def controls(self) -> dict[str, ControlInfo]:
        source = self.source
        if source is None:
            raise StreamChangeError("the camera is not running")
        return await run_abandonable(source.controls, timeout=OPEN_TIMEOUT, name="camera-ctl")

    async def set_controls(self, values: Mapping[str, object]) -> dict[str, ControlValue]:
        """Apply picture controls; ValueError naming a bad name or value (nothing changed)."""
        source = self.source
        if source is None:
            raise StreamChangeError("the camera is not running")
        return await run_abandonable(
            source.set_controls, dict(values), timeout=OPEN_TIMEOUT, name="camera-ctl"
        )

    def request_keyframe(self) -> None:
        source = self.source
        if source is not None:
            source.request_keyframe()

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_feed()

    async def watch(self) -> None:
        """Forever: every `CAMERA_STALL` seconds, check that frames arrive; report a stall
        and restart the camera with backoff until frames come again."""
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._failed.wait(), CAMERA_STALL)
            failed = self._failed.is_set()
            self._failed.clear()
            if self.resting:
                self.stalled, failures = False, 0
                continue
            frames = self._fanout.stats.frames_in
            moving = frames != self._frames_seen and self.source is not None and not failed
            self._frames_seen = frames
            if moving:
                if self.stalled:
                    logger.info("camera: frames again")
                    self._on_event("camera.recovered")
                self.stalled, failures = False, 0
                continue
            if not self.stalled:
                self._report_failure(f"no frame for {CAMERA_STALL:.0f} s")
            await asyncio.sleep(RESTART_BACKOFF[min(failures, len(RESTART_BACKOFF) - 1)])
            failures += 1
            await self._restart()

    async def _restart(self) -> None:
        async with self._lock:
            if self.resting:
                return  # put to rest meanwhile: nothing to restart
            try:
                new = await open_camera(self.camera)
            except StreamChangeError as exc:
                logger.warning("camera: restart failed: %s", exc)
                return
            await self._stop_feed()
            self._fanout.new_stream()
            await self._start(new)
            self.restarts += 1
            logger.info("camera: restarted (%d so far)", self.restarts)

    def _source_failed(self, reason: str) -> None:
        self._report_failure(f"camera source failed: {reason}")
        self._failed.set()

    async def _start(self, source: VideoSource) -> None:
        feed = CameraFeed(source, self._fanout, self._source_failed)
        feed.start()
        self._feed = feed
        if self.camera.controls:
            try:
                await self.set_controls(dict(self.camera.controls))
            except (ValueError, TimeoutError) as exc:
                self._on_event("camera.error", message=f"saved camera controls: {exc}")

    async def _stop_feed(self) -> None:
        feed, self._feed = self._feed, None
        if feed is None:
            return
        try:
            await run_abandonable(feed.stop, timeout=STOP_TIMEOUT, name="camera-stop")
        except TimeoutError:
            logger.error("camera: source did not stop within %.0f s; abandoned", STOP_TIMEOUT)

    def _report_failure(self, message: str, **fields: Any) -> None:
        self.stalled = True
        logger.error("camera: %s", message)
        self._on_event("camera.error", message=message, **fields)
