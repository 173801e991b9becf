"""A stand-in for picamera2 (0.3.x) and the bit of libcamera it needs, for tests off a Pi.

It follows picamera2's real API and threading (read from raspberrypi/picamera2:
picamera2.py, encoders/h264_encoder.py, v4l2_encoder.py, libav_h264_encoder.py,
outputs/output.py, platform.py):
- ``Picamera2(camera_num)``, ``global_camera_info()``, ``create_video_configuration``,
  ``configure``, ``start``, ``start_encoder(encoder, output)``, ``stop_encoder``, ``stop``,
  ``close``, ``set_controls`` (unknown names raise as libcamera's wrapper does),
  ``camera_controls`` as ``{name: (min, max, default)}``, ``captured_request()`` as a context
  manager whose request ``save("main", file, format="jpeg")`` writes a real JPEG, ``options``.
- ``H264Encoder(bitrate, repeat, iperiod, framerate, enable_sps_framerate, qp, profile)``
  from ``picamera2.encoders.h264_encoder`` (the V4L2 one: an open ``vd`` device and a
  ``thread`` that polls it), ``LibavH264Encoder`` from ``picamera2.encoders``;
  ``force_key_frame()`` bumps ``_key_frames_requested`` as the real ones do.
- Frames are produced on the encoder's own thread, which calls
  ``Encoder.outputframe(frame, keyframe, timestamp)`` -> ``Output.outputframe(frame,
  keyframe, timestamp, packet, audio)`` with microsecond timestamps from 0; the bytes are
  real H.264 from libx264 (PyAV), pictures from lavfi's testsrc2 at the configured rate.
Fault injection for contract tests: ``FakeCamera.stall()`` / ``fail_encoder(exc)``.
"""

from __future__ import annotations

import contextlib
import enum
import io
import sys
import threading
import time
import types
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
from av.video.frame import PictureType

# What an IMX708 (Camera Module 3) advertises, as picamera2's camera_controls shows it.
IMX708_CONTROLS: dict[str, tuple[Any, Any, Any]] = {
    "Brightness": (-1.0, 1.0, 0.0),
    "Contrast": (0.0, 32.0, 1.0),
    "Saturation": (0.0, 32.0, 1.0),
    "Sharpness": (0.0, 16.0, 1.0),
    "AeEnable": (False, True, True),
    "AeExposureMode": (0, 3, 0),
    "ExposureTime": (26, 220417486, 20000),
    "AnalogueGain": (1.12, 16.0, 1.0),
    "AwbEnable": (False, True, True),
    "AwbMode": (0, 7, 0),
    "AfMode": (0, 2, 0),
    "LensPosition": (0.0, 15.0, 1.0),
    "HdrMode": (0, 4, 0),
    "FrameDurationLimits": (33333, 120000, 33333),
}


class Platform(enum.Enum):
    VC4 = 0
    PISP = 1


class FakeWorld:
    """The board the stand-in pretends to be; tests adjust it through the fixture."""

    def __init__(self) -> None:
        self.platform = Platform.VC4
        self.cameras: list[dict[str, Any]] = [
            {"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/i2c@0/imx708@1a"}
        ]
        self.controls = dict(IMX708_CONTROLS)
        self.opened: list[FakeCamera] = []
        self.encoders: list[_FakeEncoderBase] = []


WORLD = FakeWorld()


class Transform:
    """libcamera.Transform."""

    def __init__(self, hflip: int = 0, vflip: int = 0, transpose: int = 0) -> None:
        self.hflip, self.vflip, self.transpose = bool(hflip), bool(vflip), bool(transpose)


class Output:
    """picamera2.outputs.Output."""

    def __init__(self, pts: Any = None) -> None:
        self.recording = False
        self.ptsoutput = pts
        self.needs_pacing = False

    def start(self) -> None:
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def outputframe(
        self,
        frame: Any,
        keyframe: bool = True,
        timestamp: int | None = None,
        packet: Any = None,
        audio: bool = False,
    ) -> None:
        """Outputs frame from encoder."""

    def _add_stream(self, *args: Any, **kwargs: Any) -> None:
        pass


class _FakeEncoderBase:
    """What picamera2.encoders.encoder.Encoder provides, plus the producing thread."""

    def __init__(self) -> None:
        self.width = self.height = self.stride = 0
        self.format: str | None = None
        self.framerate: float | None = None
        self.bitrate: int | None = None
        self.iperiod: int | None = None
        self.profile: str | None = None
        self.repeat = True
        self._output: list[Output] = []
        self._running = False
        self._lock = threading.Lock()
        self._output_lock = threading.Lock()
        self._key_frames_requested = 0
        self._key_frames_generated = 0
        self.thread: threading.Thread | None = None
        self._stalled = threading.Event()
        self._failure: BaseException | None = None
        self.frames_output = 0
        self._produced = threading.Condition()
        WORLD.encoders.append(self)

    @property
    def output(self) -> Any:
        return self._output[0] if len(self._output) == 1 else self._output

    @output.setter
    def output(self, value: Any) -> None:
        self._output = list(value) if isinstance(value, list) else [value]

    @property
    def running(self) -> bool:
        return self._running

    def force_key_frame(self) -> None:
        self._key_frames_requested += 1

    def start(self, quality: Any = None) -> None:
        with self._lock:
            if self._running:
                raise RuntimeError("Encoder already running")
            self._running = True
            for out in self._output:
                out.start()
            self._start()

    def stop(self) -> None:
        with self._lock:
            if not self._running:
                raise RuntimeError("Encoder already stopped")
            self._running = False
            self._stop()
            for out in self._output:
                out.stop()

    def outputframe(
        self, frame: Any, keyframe: bool = True, timestamp: int | None = None, packet: Any = None
    ) -> None:
        with self._output_lock:
            for out in self._output:
                out.outputframe(frame, keyframe, timestamp, packet, False)

    # --- the producing thread (v4l2_encoder.thread_poll / the camera's request thread) ---

    def _x264_profile(self) -> str:
        lookup = {"baseline": "baseline", "constrained baseline": "baseline", "main": "main"}
        lookup["high"] = "high"
        profile = (self.profile or "high").lower()
        if profile not in lookup:
            raise RuntimeError("Profile " + str(self.profile) + " not recognised")
        return lookup[profile]

    def _start(self) -> None:
        profile = self._x264_profile()
        rate = Fraction(self.framerate or 30).limit_denominator(1001)
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, "yuv420p"
        ctx.time_base = Fraction(1, 1000000)
        ctx.framerate = rate
        ctx.bit_rate = self.bitrate or 1_000_000
        ctx.gop_size = self.iperiod or 60
        ctx.max_b_frames = 0
        gop = ctx.gop_size
        ctx.options = {
            "profile": profile,
            # As picamera2's libav encoder: ultrafast can only make baseline.
            "preset": "ultrafast" if profile == "baseline" else "superfast",
            "tune": "zerolatency",
            "forced-idr": "1",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
            f":repeat-headers={1 if self.repeat else 0}:annexb=1",
        }
        ctx.open()
        self._codec = ctx
        self._rate = rate
        self.thread = threading.Thread(target=self._thread_poll, daemon=True)
        self.thread.start()

    def _stop(self) -> None:
        self._stalled.clear()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join()

    def _pictures(self) -> Iterator[av.VideoFrame]:
        graph = f"testsrc2=size={self.width}x{self.height}:rate={self._rate},format=yuv420p"
        container = av.open(graph, format="lavfi")
        try:
            yield from container.decode(video=0)
        finally:
            container.close()

    def _thread_poll(self) -> None:
        period = 1 / float(self._rate)
        start = time.monotonic()
        for index, picture in enumerate(self._pictures()):
            # The camera's frame clock: deadlines from a fixed origin.
            while self._running and self._stalled.is_set():
                time.sleep(0.01)  # a stalled sensor: no frame arrives
            if not self._running:
                return
            if self._failure is not None:
                raise self._failure  # the thread dies, as a real poll thread would
            delay = start + index * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            picture.pts = round(index * period * 1_000_000)
            picture.time_base = Fraction(1, 1_000_000)
            picture.pict_type = PictureType.NONE
            if self._key_frames_requested > self._key_frames_generated:
                self._key_frames_generated += 1
                picture.pict_type = PictureType.I
            for packet in self._codec.encode(picture):
                self.outputframe(bytes(packet), packet.is_keyframe, timestamp=packet.pts)
                with self._produced:
                    self.frames_output += 1
                    self._produced.notify_all()
            self.last_picture = picture

    def wait_for_output(self, count: int, timeout: float) -> bool:
        """Test hook: wait until ``count`` frames went to the outputs in total."""
        with self._produced:
            return self._produced.wait_for(lambda: self.frames_output >= count, timeout)


class H264Encoder(_FakeEncoderBase):
    """picamera2.encoders.h264_encoder.H264Encoder (the V4L2 hardware encoder)."""

    def __init__(
        self,
        bitrate: int | None = None,
        repeat: bool = True,
        iperiod: int | None = None,
        framerate: float | None = None,
        enable_sps_framerate: bool = False,
        qp: int | None = None,
        profile: str | None = None,
    ) -> None:
        super().__init__()
        self.bitrate, self.repeat, self.iperiod = bitrate, repeat, iperiod
        self.framerate, self._enable_framerate = framerate, enable_sps_framerate
        self.qp, self.profile = qp, profile
        self.vd: Any = None

    def _start(self) -> None:
        # The real one opens /dev/video11; /dev/null answers V4L2 ioctls with ENOTTY.
        self.vd = open("/dev/null", "rb+", buffering=0)  # noqa: SIM115
        super()._start()

    def _stop(self) -> None:
        super()._stop()
        self.vd.close()


class LibavH264Encoder(_FakeEncoderBase):
    """picamera2.encoders.LibavH264Encoder (software, the Pi 5's H.264)."""

    def __init__(
        self,
        bitrate: int | None = None,
        repeat: bool = True,
        iperiod: int = 30,
        framerate: float = 30,
        qp: int | None = None,
        profile: str | None = None,
    ) -> None:
        super().__init__()
        self.bitrate, self.repeat, self.iperiod = bitrate, repeat, iperiod
        self.framerate, self.qp, self.profile = framerate, qp, profile


class _Request:
    def __init__(self, camera: FakeCamera) -> None:
        self._camera = camera

    def save(self, name: str, file_output: Any, format: str | None = None) -> None:
        if name not in self._camera.config:
            raise RuntimeError(f"Stream {name!r} is not defined")
        encoder = next((e for e in self._camera.encoders if e.running), None)
        picture = getattr(encoder, "last_picture", None)
        if picture is None:
            raise RuntimeError("no frame captured yet")
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="mjpeg") as container:
            stream = container.add_stream("mjpeg", rate=1)
            stream.width, stream.height, stream.pix_fmt = picture.width, picture.height, "yuvj420p"
            for packet in stream.encode(picture.reformat(format="yuvj420p")):
                container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        file_output.write(buffer.getvalue())


class FakeCamera:
    """picamera2.Picamera2."""

    def __init__(self, camera_num: int = 0, **_: Any) -> None:
        if camera_num >= len(WORLD.cameras):
            raise IndexError("list index out of range")
        self.camera_num = camera_num
        self.config: dict[str, Any] = {}
        self.options: dict[str, Any] = {}
        self.encoders: set[_FakeEncoderBase] = set()
        self.started = False
        self.closed = False
        self.controls_set: list[dict[str, Any]] = []
        self._controls_lock = threading.Lock()
        WORLD.opened.append(self)

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return [dict(c, Num=i) for i, c in enumerate(WORLD.cameras)]

    @property
    def camera_controls(self) -> dict[str, tuple[Any, Any, Any]]:
        return dict(WORLD.controls)

    def create_video_configuration(
        self,
        main: dict[str, Any] | None = None,
        transform: Transform | None = None,
        controls: dict[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        main = {"format": "XBGR8888", "size": (1280, 720), **(main or {})}
        main["stride"] = main["size"][0]
        return {"main": main, "transform": transform or Transform(), "controls": controls or {}}

    def configure(self, config: dict[str, Any]) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        self.config = config

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def set_controls(self, controls: dict[str, Any]) -> None:
        for name in controls:
            if name not in WORLD.controls:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
        with self._controls_lock:
            self.controls_set.append(dict(controls))

    def start_encoder(self, encoder: _FakeEncoderBase, output: Any = None, **_: Any) -> None:
        if not self.config:
            raise RuntimeError("Camera has not been configured")
        if output is not None:
            encoder.output = output
        main = self.config["main"]
        encoder.width, encoder.height = main["size"]
        encoder.format, encoder.stride = main["format"], main["stride"]
        if encoder.framerate is None:
            encoder.framerate = 30.0
        encoder.start()
        self.encoders.add(encoder)

    def stop_encoder(self, encoders: Any = None) -> None:
        chosen = list(self.encoders) if encoders is None else [encoders]
        for encoder in chosen:
            encoder.stop()
            self.encoders.discard(encoder)

    @contextlib.contextmanager
    def captured_request(self, wait: Any = None, flush: Any = None) -> Iterator[_Request]:
        yield _Request(self)

    # --- fault injection -----------------------------------------------------------------

    def stall(self) -> None:
        """The sensor stops delivering: the encoder thread keeps waiting for a frame."""
        for encoder in self.encoders:
            encoder._stalled.set()

    def fail_encoder(self, exc: BaseException) -> None:
        """The encoder's thread raises (and dies) before its next frame."""
        for encoder in self.encoders:
            encoder._failure = exc


def install(monkeypatch: Any) -> FakeWorld:
    """Put the stand-in into sys.modules as ``picamera2`` and ``libcamera``; a fresh world."""
    global WORLD
    WORLD = FakeWorld()
    root = types.ModuleType("picamera2")
    root.__path__ = []  # a package, so "picamera2.x" submodules resolve from sys.modules
    root.Picamera2 = FakeCamera  # type: ignore[attr-defined]
    platform = types.ModuleType("picamera2.platform")
    platform.Platform = Platform  # type: ignore[attr-defined]
    platform.get_platform = lambda: WORLD.platform  # type: ignore[attr-defined]
    encoders = types.ModuleType("picamera2.encoders")
    encoders.__path__ = []
    encoders.LibavH264Encoder = LibavH264Encoder  # type: ignore[attr-defined]
    h264 = types.ModuleType("picamera2.encoders.h264_encoder")
    h264.H264Encoder = H264Encoder  # type: ignore[attr-defined]
    outputs = types.ModuleType("picamera2.outputs")
    outputs.Output = Output  # type: ignore[attr-defined]
    libcamera = types.ModuleType("libcamera")
    libcamera.Transform = Transform  # type: ignore[attr-defined]
    modules = {
        "picamera2": root,
        "picamera2.platform": platform,
        "picamera2.encoders": encoders,
        "picamera2.encoders.h264_encoder": h264,
        "picamera2.outputs": outputs,
        "libcamera": libcamera,
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    # Platform-dependent alias, as picamera2.encoders does it at import time.
    encoders.H264Encoder = H264Encoder  # type: ignore[attr-defined]
    return WORLD
