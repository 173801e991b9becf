"""Raspberry Pi cameras through picamera2: the hardware H.264 encoder, or libav on a Pi 5.

picamera2 is imported lazily (only when a source is made): the agent runs where it is absent,
and off a Pi ``import picamera2`` fails with "No module named 'libcamera'".

Threads: picamera2 calls our ``Output.outputframe`` on its encoder thread (the V4L2 poll
thread; the camera's request thread for libav). That call only copies the bytes into a
bounded ``HandOff`` and returns. The source's own thread opens the camera, takes frames off
the hand-off, splits them (the one split, ``EncodedFrame.from_annexb``) and calls the sink;
it also restarts the encoder for a bitrate change the kernel refused, and reports a dead
encoder thread or a stall through ``on_error``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import importlib
import io
import logging
import struct
import threading
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from hw.controls import ControlInfo, ControlValue, check_controls, with_values
from hw.frame import EncodedFrame
from hw.handoff import EncodedChunk, HandOff
from hw.picamera2controls import FLIPS, advertised_controls, to_libcamera
from hw.source import H264Profile, StreamSettings
from hw.threaded import ThreadedSource

logger = logging.getLogger(__name__)

# VIDIOC_S_CTRL = _IOWR('V', 28, struct v4l2_control {__u32 id; __s32 value;})
VIDIOC_S_CTRL = (3 << 30) | (8 << 16) | (ord("V") << 8) | 28
# V4L2_CID_CODEC_BASE (0x00990900) + 207
V4L2_CID_MPEG_VIDEO_BITRATE = 0x009909CF

DEFAULT_STALL_TIMEOUT_S = 5.0
DEFAULT_QUEUE_FRAMES = 8
_POLL_S = 0.2
_MIN_BITRATE = 1000


def import_picamera2() -> ModuleType:
    """The picamera2 package, or ValueError saying what to install."""
    try:
        return importlib.import_module("picamera2")
    except ImportError as exc:
        raise ValueError(
            f"camera source 'picamera2' needs the picamera2 package ({exc}): on Raspberry Pi "
            "OS run 'sudo apt install python3-picamera2' (and create the venv with "
            "--system-site-packages), or 'sudo apt install libcap-dev && pip install picamera2'"
        ) from None


def has_hardware_encoder(picamera2: ModuleType) -> bool:
    """As picamera2 decides it: only the VC4 platform (Pi 0-4) has the H.264 block."""
    platform = importlib.import_module(f"{picamera2.__name__}.platform")
    return bool(platform.get_platform() == platform.Platform.VC4)


def v4l2_set_bitrate(device: Any, bitrate: int) -> None:
    """Set V4L2_CID_MPEG_VIDEO_BITRATE on an open encoder device; OSError if refused."""
    fcntl.ioctl(device, VIDIOC_S_CTRL, struct.pack("=Ii", V4L2_CID_MPEG_VIDEO_BITRATE, bitrate))


class Picamera2Source(ThreadedSource):
    """A libcamera camera (``index`` on boards with two) encoded to H.264 by picamera2.

    Pi 0-4: the hardware ``H264Encoder`` with ``profile`` (constrained baseline or main),
    SPS/PPS before every IDR (``repeat``), an IDR every ``iperiod`` frames (2 s by default),
    the frame rate in the SPS. Pi 5: picamera2's ``LibavH264Encoder`` (libx264, ultrafast,
    zerolatency), chosen automatically. ``request_keyframe`` is ``force_key_frame()``;
    ``set_bitrate`` sets the V4L2 control on the running hardware encoder, or restarts the
    encoder (a fraction of a second, the next frame an IDR) where that is refused or there is
    no hardware encoder. ``snapshot_jpeg`` takes a still of the running ``main`` stream.
    """

    thread_name = "edgecam-picamera2"

    def __init__(
        self,
        settings: StreamSettings,
        *,
        index: int = 0,
        profile: H264Profile = H264Profile.CONSTRAINED_BASELINE,
        iperiod: int | None = None,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT_S,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
    ) -> None:
        if settings.width <= 0 or settings.height <= 0 or settings.framerate <= 0:
            raise ValueError(f"picamera2: bad stream settings {settings}")
        _check_bitrate(settings.bitrate)
        if index < 0:
            raise ValueError(f"camera.index must be 0 or more, got {index}")
        self._p2 = import_picamera2()
        super().__init__()
        self._settings = settings
        self._index = index
        self._profile = H264Profile(profile)
        self._iperiod = iperiod if iperiod is not None else max(1, round(2 * settings.framerate))
        self._stall_timeout = stall_timeout
        self._handoff = HandOff(queue_frames)
        self._camera: Any = None
        self._encoder: Any = None
        self._output: Any = None
        self._restart_bitrate: int | None = None
        self._advertised: dict[str, ControlInfo] = {}
        self._control_values: dict[str, ControlValue] = {}
        self._reconfigure = False
        self._last_arrival = 0.0
        # picamera2's timestamps restart at 0 with each encoder: keep pts_90k growing.
        self._pts_base = 0
        self._last_pts = -1

    @property
    def settings(self) -> StreamSettings:
        with self._lock:
            return self._settings

    @property
    def hardware_encoder(self) -> bool:
        return has_hardware_encoder(self._p2)

    def request_keyframe(self) -> None:
        encoder = self._encoder
        if encoder is not None:
            encoder.force_key_frame()

    def set_bitrate(self, bitrate: int) -> None:
        _check_bitrate(bitrate)
        with self._lock:
            self._settings = dataclasses.replace(self._settings, bitrate=bitrate)
            encoder = self._encoder
        device = getattr(encoder, "vd", None)
        if device is not None:
            try:
                v4l2_set_bitrate(device, bitrate)
            except OSError as exc:
                logger.info("picamera2: live bitrate refused (%s): restarting the encoder", exc)
            else:
                logger.info("picamera2: bitrate %d bps on the running encoder", bitrate)
                return
        with self._lock:
            self._restart_bitrate = bitrate  # the source's thread restarts the encoder

    def controls(self) -> dict[str, ControlInfo]:
        """What the sensor advertises (empty until the camera has been opened once)."""
        with self._lock:
            return with_values(self._advertised, self._control_values)

    def set_controls(self, values: Mapping[str, object]) -> dict[str, ControlValue]:
        """libcamera controls apply from the next request; flips reconfigure the camera."""
        checked = check_controls(values, self.controls())
        camera = self._camera
        libcamera_values = to_libcamera(checked)
        if libcamera_values:
            if camera is None:
                raise ValueError("the camera is not running")
            try:
                camera.set_controls(libcamera_values)
            except RuntimeError as exc:
                raise ValueError(f"libcamera refused {libcamera_values}: {exc}") from None
        with self._lock:
            flips_before = [self._control_values.get(f, False) for f in FLIPS]
            self._control_values.update(checked)
            flips_after = [self._control_values.get(f, False) for f in FLIPS]
            self._reconfigure = self._reconfigure or flips_after != flips_before
        return checked

    def snapshot_jpeg(self, quality: int) -> tuple[bytes, int, int] | None:
        camera = self._camera
        if camera is None:
            raise ValueError("the camera is not running")
        camera.options["quality"] = max(1, min(100, quality))
        out = io.BytesIO()
        with camera.captured_request() as request:
            request.save("main", out, format="jpeg")
        s = self.settings
        return out.getvalue(), s.width, s.height

    def stop(self) -> None:
        self._handoff.close()  # wakes the source's thread at once
        super().stop()

    # --- the encoder's thread --------------------------------------------------------------

    def _on_encoded(self, frame: Any, keyframe: bool, timestamp: int | None) -> None:
        # On picamera2's thread: copy (the buffer is reused) and return; never block.
        self._last_arrival = time.monotonic()
        if self._handoff.put(EncodedChunk(bytes(frame), keyframe, timestamp)):
            self._gate.dropped()

    def _make_output(self) -> Any:
        base = importlib.import_module(f"{self._p2.__name__}.outputs").Output
        source = self

        class _ToSource(base):  # type: ignore[misc, valid-type]
            def outputframe(
                self,
                frame: Any,
                keyframe: bool = True,
                timestamp: int | None = None,
                packet: Any = None,
                audio: bool = False,
            ) -> None:
                if not audio:
                    source._on_encoded(frame, keyframe, timestamp)

        return _ToSource()

    # --- the source's thread ---------------------------------------------------------------

    def _make_encoder(self, bitrate: int) -> Any:
        s = self._settings
        if self.hardware_encoder:
            module = importlib.import_module(f"{self._p2.__name__}.encoders.h264_encoder")
            return module.H264Encoder(
                bitrate=bitrate,
                repeat=True,
                iperiod=self._iperiod,
                framerate=s.framerate,
                enable_sps_framerate=True,
                profile=str(self._profile),
            )
        module = importlib.import_module(f"{self._p2.__name__}.encoders")
        return module.LibavH264Encoder(
            bitrate=bitrate,
            repeat=True,
            iperiod=self._iperiod,
            framerate=s.framerate,
            profile=str(self._profile),
        )

    def _open_camera(self) -> None:
        cameras = self._p2.Picamera2.global_camera_info()
        if self._index >= len(cameras):
            found = ", ".join(f"{c.get('Num')}: {c.get('Model')}" for c in cameras) or "none"
            raise ValueError(f"no camera at camera.index {self._index} (cameras found: {found})")
        camera = self._p2.Picamera2(self._index)
        self._camera = camera
        with self._lock:
            self._advertised = advertised_controls(camera.camera_controls)
        self._configure(camera)
        camera.start()
        self._start_encoder(self._settings.bitrate)

    def _configure(self, camera: Any) -> None:
        s = self._settings
        with self._lock:
            values = dict(self._control_values)
        transform = importlib.import_module("libcamera").Transform(
            hflip=int(bool(values.get("hflip"))), vflip=int(bool(values.get("vflip")))
        )
        config = camera.create_video_configuration(
            main={"size": (s.width, s.height), "format": "YUV420"},
            transform=transform,
            controls={"FrameRate": s.framerate, **to_libcamera(values)},
        )
        camera.configure(config)

    def _reconfigure_camera(self) -> None:
        """A new Transform (flips) needs a stopped camera: encoder and camera restart."""
        camera = self._camera
        camera.stop_encoder(self._encoder)
        self._encoder = None
        camera.stop()
        self._configure(camera)
        camera.start()
        self._pts_base = self._last_pts + round(90000 / self._settings.framerate)
        self._start_encoder(self._settings.bitrate)

    def _start_encoder(self, bitrate: int) -> None:
        encoder = self._make_encoder(bitrate)
        self._output = self._make_output()
        self._camera.start_encoder(encoder, self._output)
        self._encoder = encoder
        self._last_arrival = time.monotonic()
        logger.info(
            "picamera2: camera %d, %s encoder, %s, %d bps, IDR every %d frames",
            self._index,
            "hardware" if self.hardware_encoder else "libav",
            self._profile,
            bitrate,
            self._iperiod,
        )

    def _close_camera(self) -> None:
        camera, encoder = self._camera, self._encoder
        self._encoder = None
        self._camera = None
        if camera is None:
            return
        for step in (
            lambda: encoder is not None and camera.stop_encoder(encoder),
            camera.stop,
            camera.close,
        ):
            try:
                step()
            except Exception:
                logger.exception("picamera2: error while closing the camera")

    def _restart_encoder(self, bitrate: int) -> None:
        self._camera.stop_encoder(self._encoder)
        self._encoder = None
        # The new encoder's timestamps start again at 0.
        self._pts_base = self._last_pts + round(90000 / self._settings.framerate)
        self._start_encoder(bitrate)

    def _run(self, stop: threading.Event) -> None:
        self._handoff.reopen()
        try:
            self._open_camera()
        except Exception as exc:
            self._fail(f"cannot start camera {self._index}: {exc}")
            self._close_camera()
            return
        try:
            self._pump(stop)
        finally:
            self._close_camera()
            logger.info("picamera2: stopped")

    def _pump(self, stop: threading.Event) -> None:
        while not stop.is_set():
            problem = self._check_encoder()
            if problem is not None:
                self._fail(problem)
                return
            chunk = self._handoff.get(_POLL_S)
            if chunk is None:
                continue
            pts = self._pts_base + ((chunk.timestamp_us or 0) * 9 + 50) // 100
            self._last_pts = pts = max(pts, self._last_pts + 1)
            if not self._emit(EncodedFrame.from_annexb(chunk.data, pts)):
                return

    def _check_encoder(self) -> str | None:
        """A reason to give up, after applying a pending encoder restart; None if healthy."""
        with self._lock:
            bitrate, self._restart_bitrate = self._restart_bitrate, None
            reconfigure, self._reconfigure = self._reconfigure, False
        if reconfigure:
            try:
                self._reconfigure_camera()
            except Exception as exc:
                return f"the camera did not restart with the new flips: {exc}"
        if bitrate is not None:
            try:
                self._restart_encoder(bitrate)
            except Exception as exc:
                return f"the encoder did not restart for bitrate {bitrate}: {exc}"
        thread = getattr(self._encoder, "thread", None)
        if thread is not None and not thread.is_alive():
            return "the H.264 encoder's thread died"
        quiet = time.monotonic() - self._last_arrival
        if quiet > self._stall_timeout:
            return f"no frame from the camera for {quiet:.1f} s (stalled)"
        return None


def _check_bitrate(bitrate: int) -> None:
    if bitrate < _MIN_BITRATE:
        raise ValueError(f"bitrate must be at least {_MIN_BITRATE} bps, got {bitrate}")
