"""The agent: wiring and lifecycle. The only module that knows every other one.

camera -> feed -> fan-out -> sessions (WebRTC) ; MQTT <-> JSON-RPC dispatcher <-> control
methods. Start order: state dir and certificate, camera, MQTT (status, then rpc), systemd
READY. Stop order (SIGTERM): every session closed with a ``webrtc.state`` closed
notification, status offline (retained), MQTT disconnected cleanly, camera stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import (
    CameraConfig,
    Config,
    apply_patch,
    parse_ice_url,
    redacted,
    save_overrides,
)
from agent.control import build_method_table
from agent.control.api import StreamChangeError
from agent.media.fanout import FanOut
from agent.media.feed import CameraFeed
from agent.media.snapshot import jpeg_from_gop
from agent.net.ice import IceServers, TurnServer
from agent.rtc.certificate import Certificate
from agent.sessions import SessionManager
from agent.signaling.mqtt import MqttClient, MqttSettings
from agent.signaling.ratelimit import PerKeyLimiter
from agent.signaling.rpc import Dispatcher, Origin, Role, Transport, notification
from hw.open import open_source
from hw.source import StreamSettings, VideoSource

logger = logging.getLogger(__name__)

CERTIFICATE_FILE = "dtls-certificate.pem"
# Requests handled at once across all clients; more wait their turn, up to a bound past
# which a flood is dropped (and logged) instead of growing memory.
MAX_CONCURRENT_REQUESTS = 32
MAX_WAITING_REQUESTS = 512
# Larger messages are dropped unread; up to this size the dispatcher answers "too large"
# (-32600) when it can find the request's id (PROTOCOL.md section 3).
MAX_MESSAGE = 1024 * 1024
# No frame from the camera for this long is reported as a camera error event.
CAMERA_STALL = 5.0
# Restart-only config sections: changed over config.set, they apply at the next start.
LIVE_SECTIONS = {"camera", "access", "telemetry", "logging"}
LIVE_WEBRTC_KEYS = {"max_viewers", "offer_rate_limit"}


def ice_servers_from(servers: list[dict[str, Any]] | tuple[Any, ...]) -> IceServers:
    """Config-shaped ICE servers (``urls``, ``username``, ``credential``) for aioice.

    Raises ValueError naming the bad entry. ``stuns:`` is not supported by aioice and is
    refused rather than silently ignored.
    """
    stun: list[tuple[str, int]] = []
    turn: list[TurnServer] = []
    for index, server in enumerate(servers):
        if isinstance(server, dict):
            urls, username, credential = (
                server.get("urls"),
                server.get("username"),
                server.get("credential"),
            )
        else:
            urls, username, credential = server.urls, server.username, server.credential
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list | tuple) or not urls:
            raise ValueError(f"ice_servers[{index}].urls: expected a list of URLs")
        for url in urls:
            parsed = parse_ice_url(str(url))
            if parsed.scheme == "stun":
                stun.append((parsed.host, parsed.port))
            elif parsed.scheme == "stuns":
                raise ValueError(f"ice_servers[{index}]: stuns: is not supported, use stun:")
            else:
                if not username or not credential:
                    raise ValueError(
                        f"ice_servers[{index}]: {parsed.scheme}: needs username and credential"
                    )
                turn.append(
                    TurnServer(
                        host=parsed.host,
                        port=parsed.port,
                        username=str(username),
                        password=str(credential),
                        transport="tcp" if parsed.scheme == "turns" else parsed.transport,
                        tls=parsed.scheme == "turns",
                    )
                )
    return IceServers(stun=tuple(stun), turn=tuple(turn))


class Agent:
    """One device: its camera, its viewers and its MQTT presence."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started_at = time.time()
        self._loop = asyncio.get_running_loop()
        self._state_dir = Path(config.device.state_dir)
        self._prefix = f"{config.mqtt.topic_prefix}/{config.device.id}"
        self._rpc_prefix = f"{self._prefix}/rpc/"
        self._tasks: set[asyncio.Task[Any]] = set()
        self._requests = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        self._stream_lock = asyncio.Lock()
        self._last_viewers = -1
        self._waiting_requests = 0
        self._dropped_requests = 0
        self._stopping = False
        self._frames_seen = 0
        self._camera_stalled = False
        self.offer_limiter = _offer_limiter(config)
        self._state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.certificate = Certificate.load_or_create(self._state_dir / CERTIFICATE_FILE)
        self.source = self._open_source(config)
        self.fanout = FanOut(self._request_keyframe_from_camera)
        self.feed = CameraFeed(self.source, self.fanout)
        self.sessions = SessionManager(
            fanout=self.fanout,
            certificate=self.certificate,
            ice_addresses=list(config.webrtc.ice_addresses),
            ice_servers=ice_servers_from(config.webrtc.ice_servers),
            max_viewers=config.webrtc.max_viewers,
            on_state=self._session_state,
            on_candidate=self._session_candidate,
            dtls_setup=config.webrtc.dtls_role,
        )
        self.dispatcher = Dispatcher(build_method_table(self), self._role_for)
        will = json.dumps({"state": "offline", "device": config.device.id}).encode()
        self.mqtt = MqttClient(
            MqttSettings(
                url=config.mqtt.url,
                client_id=config.mqtt.client_id or config.device.id,
                ca=config.mqtt.ca,
                cert=config.mqtt.cert,
                key=config.mqtt.key,
                username=config.mqtt.username,
                password=config.mqtt.password,
                allow_insecure=config.mqtt.allow_insecure,
                keepalive=config.mqtt.keepalive,
                will_topic=f"{self._prefix}/status",
                will_payload=will,
                will_qos=1,
                will_retain=True,
            ),
            on_message=self._on_message,
            on_connect=self._on_connect,
        )

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self.feed.start()
        self.mqtt.subscribe(f"{self._rpc_prefix}+", qos=1)
        await self.mqtt.start()
        self._spawn(self._telemetry_loop())
        self._spawn(self._watchdog_loop())
        self._spawn(self._camera_watch_loop())
        _sd_notify("READY=1")
        logger.info(
            "edgecam %s: device %s, camera %s %dx%d@%g, broker %s",
            __version__,
            self.config.device.id,
            self.config.camera.source,
            self.config.camera.width,
            self.config.camera.height,
            self.config.camera.framerate,
            self.config.mqtt.url,
        )

    async def stop(self) -> None:
        """Close every session (each told ``closed``), go offline, stop the camera."""
        _sd_notify("STOPPING=1")
        self._stopping = True
        await self.sessions.close_all("device shutting down")
        for task in list(self._tasks):
            task.cancel()
        offline = json.dumps({"state": "offline", "device": self.config.device.id}).encode()
        await self.mqtt.stop(final=[(f"{self._prefix}/status", offline, 1, True)])
        await asyncio.to_thread(self.feed.stop)

    # --- the Device protocol the control methods use ---------------------------------------

    def now(self) -> float:
        return self._loop.time()

    def status(self) -> dict[str, Any]:
        return {
            "state": "online",
            "device": self.config.device.id,
            "version": __version__,
            "ts": time.time(),
            "viewers": self.sessions.count,
            "stream": self.stream_info(),
            "uptime": round(time.time() - self.started_at, 3),
        }

    def stream_info(self) -> dict[str, Any]:
        settings = self.source.settings
        sps = self.fanout.sps
        return {
            "codec": "H264",
            "profile_level_id": sps.profile_level_id if sps else "",
            "width": sps.width if sps else settings.width,
            "height": sps.height if sps else settings.height,
            "framerate": settings.framerate,
            "bitrate": settings.bitrate,
        }

    def request_keyframe(self) -> None:
        self.fanout.request_keyframe(self._loop.time())

    async def set_stream(self, changes: dict[str, Any]) -> dict[str, Any]:
        async with self._stream_lock:
            wanted = replace(self.config.camera, **changes)
            if wanted == self.config.camera:
                return self.stream_info()
            await self._apply_camera(wanted)
            try:
                await asyncio.to_thread(save_overrides, self._state_dir, {"camera": changes})
            except (OSError, ValueError) as exc:
                logger.warning("stream change applied but not saved: %s", exc)
            return self.stream_info()

    async def _apply_camera(self, wanted: CameraConfig) -> None:
        """Make the camera run with ``wanted``: a bitrate alone changes live, anything else
        restarts the source. StreamChangeError leaves the old camera running."""
        current = self.config.camera
        if replace(current, bitrate=wanted.bitrate) == wanted:
            self.source.set_bitrate(wanted.bitrate)
        else:
            await self._restart_camera(wanted)
        self.config = replace(self.config, camera=wanted)
        self._event("stream.changed", stream=self.stream_info())
        self._publish_status(force=True)

    async def snapshot(self, quality: int) -> tuple[bytes, int, int]:
        units = self.fanout.cached_access_units()
        try:
            return await asyncio.to_thread(jpeg_from_gop, units, quality)
        except ValueError as exc:
            raise StreamChangeError(str(exc)) from None

    def config_redacted(self) -> dict[str, Any]:
        return redacted(self.config)

    async def apply_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Validate, apply what can be applied live, and only then save for the next start:
        a change the device cannot carry out must never be left on disk to fail the boot."""
        # One change at a time, each computed from the config the one before left: two admins
        # changing different keys must not undo each other.
        async with self._stream_lock:
            new = apply_patch(self.config, patch)  # ConfigError (ValueError) names the key
            ice_servers_from(new.webrtc.ice_servers)  # ValueError: refused, nothing changed
            if new.camera != self.config.camera:
                await self._apply_camera(new.camera)  # StreamChangeError: nothing saved
            await asyncio.to_thread(save_overrides, self._state_dir, patch)
            if new.webrtc.offer_rate_limit != self.config.webrtc.offer_rate_limit:
                self.offer_limiter = _offer_limiter(new)
            if new.logging.level != self.config.logging.level:
                logging.getLogger().setLevel(new.logging.level_number)
            self.config = new
            self.sessions.max_viewers = new.webrtc.max_viewers
        restart = sorted(
            f"{section}.{key}"
            for section, keys in patch.items()
            if isinstance(keys, dict)
            for key in keys
            if section not in LIVE_SECTIONS
            and not (section == "webrtc" and key in LIVE_WEBRTC_KEYS)
        )
        self._event("config.changed", keys=sorted(patch), restart_required=restart)
        return redacted(new)

    def ice_servers_from(self, servers: list[dict[str, Any]]) -> IceServers:
        return ice_servers_from(servers)

    # --- camera --------------------------------------------------------------------------

    @staticmethod
    def _open_source(config: Config) -> VideoSource:
        camera = config.camera
        settings = StreamSettings(camera.width, camera.height, camera.framerate, camera.bitrate)
        return open_source(camera.source, path=camera.path, settings=settings)

    async def _restart_camera(self, camera: CameraConfig) -> None:
        try:
            source = self._open_source(replace(self.config, camera=camera))
        except ValueError as exc:
            raise StreamChangeError(str(exc)) from None
        await asyncio.to_thread(self.feed.stop)
        self.fanout.new_stream()
        self.source = source
        self.feed = CameraFeed(source, self.fanout)
        self.feed.start()

    def _request_keyframe_from_camera(self) -> None:
        self.source.request_keyframe()

    # --- MQTT ----------------------------------------------------------------------------

    async def _on_connect(self) -> None:
        self._publish_status(force=True)

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self._stopping:
            return  # shutting down: no new work (MQTT v5 clean start drops it for good)
        if len(payload) > MAX_MESSAGE:
            logger.warning(
                "mqtt: dropped a %d-byte message on %r (limit %d)", len(payload), topic, MAX_MESSAGE
            )
            return
        client = topic[len(self._rpc_prefix) :] if topic.startswith(self._rpc_prefix) else ""
        if not client or "/" in client:
            logger.warning("mqtt: ignored a message on unexpected topic %r", topic)
            return
        if self._waiting_requests >= MAX_WAITING_REQUESTS:
            self._dropped_requests += 1
            if self._dropped_requests in (1, 100, 10_000):
                logger.warning(
                    "mqtt: %d requests dropped: more than %d waiting (latest from %r)",
                    self._dropped_requests,
                    MAX_WAITING_REQUESTS,
                    client,
                )
            return
        self._waiting_requests += 1
        self._spawn(self._handle_request(client, payload))

    async def _handle_request(self, client: str, payload: bytes) -> None:
        try:
            async with self._requests:
                response = await self.dispatcher.handle(payload, Origin(client, Transport.MQTT))
        finally:
            self._waiting_requests -= 1
        if response is not None:
            self.mqtt.publish(f"{self._rpc_prefix}{client}/reply", response, qos=1)
        self._publish_status()

    def _role_for(self, client: str) -> Role | None:
        return self.config.access.role_for(client)

    def _notify(self, client: str, method: str, params: dict[str, Any]) -> None:
        self.mqtt.publish(f"{self._rpc_prefix}{client}/reply", notification(method, params), qos=1)

    def _session_state(self, client: str, session: str, state: str, reason: str | None) -> None:
        params: dict[str, Any] = {"session": session, "state": state}
        if reason:
            params["reason"] = reason
        self._notify(client, "webrtc.state", params)
        if state in ("connected", "failed", "closed"):
            event = {"connected": "session.opened"}.get(state, f"session.{state}")
            self._event(event, session=session, client=client, reason=reason)
            self._publish_status()

    def _session_candidate(self, client: str, session: str, candidate: str | None) -> None:
        mid, mline = self.sessions.transport_of(client, session)
        params: dict[str, Any] = {
            "session": session,
            "candidate": None if candidate is None else f"candidate:{candidate}",
            "sdpMid": mid,
            "sdpMLineIndex": mline,
        }
        self._notify(client, "webrtc.candidate", params)

    def _publish_status(self, *, force: bool = False) -> None:
        """Retained status: on every (re)connect and change of stream, else when the viewer
        count changed."""
        viewers = self.sessions.count
        if viewers == self._last_viewers and not force:
            return
        self._last_viewers = viewers
        payload = json.dumps(self.status(), separators=(",", ":")).encode()
        self.mqtt.publish(f"{self._prefix}/status", payload, qos=1, retain=True)

    def _event(self, name: str, **fields: Any) -> None:
        body = {"event": name, "ts": time.time()}
        body.update((k, v) for k, v in fields.items() if v is not None)
        self.mqtt.publish(f"{self._prefix}/events", json.dumps(body).encode(), qos=1)

    async def _telemetry_loop(self) -> None:
        last_bytes = 0
        last_at = self._loop.time()
        while True:
            await asyncio.sleep(self.config.telemetry.interval)
            now = self._loop.time()
            sessions = self.sessions.stats()
            total = sum(getattr(stats, "bytes_sent", 0) for _, _, stats in sessions)
            body = {
                "ts": time.time(),
                "uptime": round(time.time() - self.started_at, 1),
                "viewers": self.sessions.count,
                "frames_in": self.fanout.stats.frames_in,
                "keyframes_in": self.fanout.stats.keyframes_in,
                "bitrate_out": int(max(0, total - last_bytes) * 8 / max(now - last_at, 1e-3)),
                "load1": os.getloadavg()[0],
                "sessions": [
                    {
                        "session": session,
                        "client": client,
                        "rtt": getattr(stats, "rtt", None),
                        "fraction_lost": getattr(stats, "fraction_lost", 0.0),
                        "bytes_sent": getattr(stats, "bytes_sent", 0),
                    }
                    for client, session, stats in sessions
                ],
            }
            last_bytes, last_at = total, now
            self.mqtt.publish(f"{self._prefix}/telemetry", json.dumps(body).encode(), qos=0)

    async def _camera_watch_loop(self) -> None:
        """Report a camera that stops producing frames (and its recovery) as events."""
        while True:
            await asyncio.sleep(CAMERA_STALL)
            frames = self.fanout.stats.frames_in
            stalled = frames == self._frames_seen
            self._frames_seen = frames
            if stalled and not self._camera_stalled:
                logger.error("camera: no frame for %.0f s", CAMERA_STALL)
                self._event("camera.error", message=f"no frame for {CAMERA_STALL:.0f} s")
            elif not stalled and self._camera_stalled:
                logger.info("camera: frames again")
                self._event("camera.recovered")
            self._camera_stalled = stalled

    async def _watchdog_loop(self) -> None:
        usec = os.environ.get("WATCHDOG_USEC")
        if not usec or not usec.isdigit():
            return
        while True:
            _sd_notify("WATCHDOG=1")
            await asyncio.sleep(int(usec) / 2e6)

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("agent task failed", exc_info=task.exception())


def _offer_limiter(config: Config) -> PerKeyLimiter:
    limit = config.webrtc.offer_rate_limit
    return PerKeyLimiter(rate=limit.count / limit.period, burst=limit.count, max_keys=4096)


def _sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about readiness and liveness; silent without systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


async def run_agent(config: Config, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then shut down in order."""
    agent = Agent(config)
    await agent.start()
    try:
        await stop.wait()
    finally:
        await agent.stop()
