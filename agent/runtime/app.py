"""The agent: wiring and lifecycle. The only module that knows every other one.

camera supervisor -> feed -> fan-out -> sessions (WebRTC); MQTT <-> rpc transport <->
dispatcher <-> control methods, which reach the device through the narrow ``Device``
interface this class implements. Start order: state dir and certificate, camera, MQTT
(status, then rpc), systemd READY. Stop order (SIGTERM): every session closed with a
``webrtc.state`` closed notification, status offline (retained), MQTT disconnected cleanly,
camera stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import Config, DtlsRole, write_atomically
from agent.control import build_method_table
from agent.control.api import BadParamsError, StreamChangeError
from agent.media.fanout import FanOut
from agent.media.snapshot import jpeg_from_gop
from agent.net.control_channel import ControlChannels
from agent.net.sessions import SessionManager
from agent.rpc.dispatcher import Dispatcher
from agent.rpc.ratelimit import PerKeyLimiter
from agent.rpc.roles import Role
from agent.rpc.wire import notification
from agent.rtc.certificate import Certificate
from agent.runtime.bitrate import BitrateController
from agent.runtime.camera import CameraSupervisor
from agent.runtime.config_changes import ConfigChanges
from agent.runtime.homeassistant import HomeAssistantPublisher
from agent.runtime.ice_servers import ice_servers_from
from agent.runtime.known_good import mark_healthy
from agent.runtime.systemd import sd_notify, watchdog_loop
from agent.runtime.telemetry import Telemetry
from agent.signaling.mqtt import MqttClient, MqttSettings
from agent.signaling.rpc_transport import MqttRpcTransport
from agent.signaling.topics import Topics

logger = logging.getLogger(__name__)

CERTIFICATE_FILE = "dtls-certificate.pem"
SNAPSHOT_WAKE_WAIT = 10.0  # a resting camera's first keyframe, for camera.snapshot


def offer_limiter(config: Config) -> PerKeyLimiter:
    limit = config.webrtc.offer_rate_limit
    return PerKeyLimiter(rate=limit.count / limit.period, burst=limit.count, max_keys=4096)


def _mqtt_settings(config: Config, topics: Topics) -> MqttSettings:
    will = json.dumps({"state": "offline", "device": config.device.id}).encode()
    mqtt = config.mqtt
    return MqttSettings(
        url=mqtt.url,
        client_id=mqtt.client_id or config.device.id,
        ca=mqtt.ca,
        cert=mqtt.cert,
        key=mqtt.key,
        username=mqtt.username,
        password=mqtt.password,
        allow_insecure=mqtt.allow_insecure,
        keepalive=mqtt.keepalive,
        will_topic=topics.status,
        will_payload=will,
        will_qos=1,
        will_retain=True,
    )


class Agent:
    """One device: its camera, its viewers and its MQTT presence."""

    def __init__(self, config: Config, *, reverted: str | None = None) -> None:
        self.config = config
        self.started_at = time.time()
        self._loop = asyncio.get_running_loop()
        self._state_dir = Path(config.device.state_dir)
        self._reverted = reverted
        self.topics = Topics(config.mqtt.topic_prefix, config.device.id)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_viewers = -1
        self.offer_limiter = offer_limiter(config)
        self._state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.certificate = Certificate.load_or_create(
            self._state_dir / CERTIFICATE_FILE, write=write_atomically
        )
        self.fanout = FanOut(self.request_keyframe_from_camera)
        self.camera = CameraSupervisor(config.camera, self.fanout, self.publish_event)
        self.sessions = SessionManager(
            fanout=self.fanout,
            certificate=self.certificate,
            ice_addresses=list(config.webrtc.ice_addresses),
            ice_servers=ice_servers_from(config.webrtc.ice_servers),
            max_viewers=config.webrtc.max_viewers,
            max_sessions_per_client=config.webrtc.max_sessions_per_client,
            on_state=self._session_state,
            on_candidate=self._session_candidate,
            dtls_setup=_setup(config.webrtc.dtls_role),
        )
        self.bitrate = BitrateController(self.sessions, self.camera, self._loop.time)
        self.changes = ConfigChanges(self)
        self.dispatcher = Dispatcher(build_method_table(self), self._role_for)
        # The `control` datachannel of each session: the same dispatcher, the role of the
        # client whose offer made the session.
        self.control = ControlChannels(
            self.dispatcher.handle, keyframes_in=lambda: self.fanout.stats.keyframes_in
        )
        self.sessions.on_channel_event = self.control.on_channel_event
        self.mqtt = MqttClient(
            _mqtt_settings(config, self.topics),
            on_message=self._on_message,
            on_connect=self._on_connect,
        )
        self.rpc = MqttRpcTransport(
            self.mqtt,
            self.topics,
            self.dispatcher,
            clock=self._loop.time,
            on_handled=self.publish_status,
        )
        self.homeassistant = (
            HomeAssistantPublisher(
                config.homeassistant, self.topics, self.mqtt, self.snapshot, __version__,
                self._loop.time,
            )
            if config.homeassistant.enabled
            else None
        )  # fmt: skip
        self.telemetry = Telemetry(
            self.sessions, self.fanout, self.started_at, self._loop.time, self._counters,
            self.bitrate.describe,
        )  # fmt: skip

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self.camera.start()
        self.mqtt.subscribe(self.topics.rpc_subscription, qos=1)
        if self.homeassistant is not None:
            self.homeassistant.subscribe()
            self._spawn(self.homeassistant.run())
        await self.mqtt.start()
        self._spawn(self._telemetry_loop())
        self._spawn(watchdog_loop())
        self._spawn(self.camera.watch())
        self._spawn(self.bitrate.run())
        self._spawn(self.camera.rest_when_idle(lambda: self.sessions.count, self._loop.time))
        sd_notify("READY=1")
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
        sd_notify("STOPPING=1")
        self.rpc.accepting = False
        await self.sessions.close_all("device shutting down")
        self.control.close()
        await self.rpc.close()
        for task in list(self._tasks):
            task.cancel()
        offline = json.dumps({"state": "offline", "device": self.config.device.id}).encode()
        await self.mqtt.stop(final=[(self.topics.status, offline, 1, True)])
        await self.camera.stop()

    # --- the Device interface of the control methods --------------------------------------

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
        settings = self.camera.settings
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
        return await self.changes.set_stream(changes)

    async def apply_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        return await self.changes.apply(patch)

    def config_redacted(self) -> dict[str, Any]:
        return self.changes.redacted()

    async def _camera_awake(self) -> None:
        """With camera.on_demand, the camera may be resting: start it for this request."""
        if self.camera.resting:
            await self.camera.wake()  # StreamChangeError: -32006

    async def snapshot(self, quality: int) -> tuple[bytes, int, int]:
        if self.camera.resting:
            await self._camera_awake()
            try:
                await asyncio.wait_for(self.fanout.stream_ready.wait(), SNAPSHOT_WAKE_WAIT)
            except TimeoutError:
                raise StreamChangeError("the camera gave no picture after waking") from None
        source = self.camera.source
        if source is not None:
            # A camera with stills of its own (picamera2) gives one without decoding H.264.
            still = await asyncio.to_thread(source.snapshot_jpeg, quality)
            if still is not None:
                return still
        units = self.fanout.cached_access_units()
        try:
            return await asyncio.to_thread(jpeg_from_gop, units, quality)
        except ValueError as exc:
            raise StreamChangeError(str(exc)) from None

    def now(self) -> float:
        """The agent's clock (the loop's) for rate limits."""
        return self._loop.time()

    def allow_offer(self, client: str) -> bool:
        return self.offer_limiter.allow(client, self.now())

    async def offer(
        self, client: str, session: str, sdp: str, ice_servers: list[dict[str, Any]] | None
    ) -> str:
        servers = None
        if ice_servers is not None:
            try:
                servers = ice_servers_from(ice_servers)
            except ValueError as exc:
                raise BadParamsError(f"params.ice_servers: {exc}") from None
        await self._camera_awake()  # the answer then waits for its first keyframe
        return await self.sessions.offer(client, session, sdp, ice_servers=servers)

    async def add_candidate(
        self, client: str, session: str, candidate: str | None, mid: str | None
    ) -> None:
        await self.sessions.add_candidate(client, session, candidate, mid)

    async def close_session(self, client: str, session: str, reason: str) -> None:
        await self.sessions.close(client, session, reason)

    def session_rows(self) -> list[dict[str, Any]]:
        return self.sessions.rows()

    async def camera_controls(self) -> dict[str, dict[str, Any]]:
        await self._camera_awake()
        return {name: info.to_json() for name, info in (await self.camera.controls()).items()}

    async def set_camera_controls(self, values: dict[str, Any]) -> dict[str, Any]:
        await self._camera_awake()
        return await self.changes.set_controls(values)

    def subscribe_stats(self, client: str, session: str, interval: float | None) -> None:
        self.control.subscribe_stats(client, session, interval)

    # --- what config changes and the camera call back into ---------------------------------

    def config_applied(self, new: Config) -> None:
        """A config change is in force: hand the live parts to their owners."""
        if new.webrtc.offer_rate_limit != self.config.webrtc.offer_rate_limit:
            self.offer_limiter = offer_limiter(new)
        if new.logging.level != self.config.logging.level:
            logging.getLogger().setLevel(new.logging.level_number)
        self.sessions.max_viewers = new.webrtc.max_viewers
        self.sessions.max_sessions_per_client = new.webrtc.max_sessions_per_client
        self.bitrate.configure(new.camera)
        self.config = new

    def stream_changed(self) -> None:
        self.publish_event("stream.changed", stream=self.stream_info())
        self.control.notify_all("stream.changed", {"stream": self.stream_info()})
        self.publish_status(force=True)

    def request_keyframe_from_camera(self) -> None:
        self.camera.request_keyframe()

    # --- MQTT ----------------------------------------------------------------------------

    async def _on_connect(self) -> None:
        self.publish_status(force=True)
        if self.homeassistant is not None:
            self.homeassistant.publish_discovery()
        if self._reverted is not None:
            self.publish_event("config.reverted", reason=self._reverted)
            self._reverted = None
        # Reaching the broker is what a remote change could break: this start is healthy.
        await asyncio.to_thread(mark_healthy, self._state_dir)

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self.homeassistant is not None and self.homeassistant.handles(topic):
            self.homeassistant.on_request()
            return
        self.rpc.on_message(topic, payload)

    def _role_for(self, client: str) -> Role | None:
        return self.config.access.role_for(client)

    def _counters(self) -> dict[str, int]:
        counters = dict(self.rpc.dropped)
        counters["replies_over_share"] = self.mqtt.dropped_over_share
        counters["log_lines_suppressed"] = self.dispatcher.log_lines_suppressed
        counters["udp_refused"] = sum(c.total for _, _, c in self.sessions.inbound())
        return counters

    def _session_state(self, client: str, session: str, state: str, reason: str | None) -> None:
        params: dict[str, Any] = {"session": session, "state": state}
        if reason:
            params["reason"] = reason
        self.rpc.notify(client, notification("webrtc.state", params))
        if state in ("failed", "closed"):
            self.control.session_ended(client, session)
        if state in ("connected", "failed", "closed"):
            event = {"connected": "session.opened"}.get(state, f"session.{state}")
            self.publish_event(event, session=session, client=client, reason=reason)
            self.publish_status()

    def _session_candidate(self, client: str, session: str, candidate: str | None) -> None:
        mid, mline = self.sessions.transport_of(client, session)
        params: dict[str, Any] = {
            "session": session,
            "candidate": None if candidate is None else f"candidate:{candidate}",
            "sdpMid": mid,
            "sdpMLineIndex": mline,
        }
        self.rpc.notify(client, notification("webrtc.candidate", params))

    def publish_status(self, *, force: bool = False) -> None:
        """Retained status: on every (re)connect and change of stream, else when the viewer
        count changed."""
        viewers = self.sessions.count
        if viewers == self._last_viewers and not force:
            return
        self._last_viewers = viewers
        payload = json.dumps(self.status(), separators=(",", ":")).encode()
        self.mqtt.publish(self.topics.status, payload, qos=1, retain=True)

    def publish_event(self, name: str, **fields: Any) -> None:
        body = {"event": name, "ts": time.time()}
        body.update((k, v) for k, v in fields.items() if v is not None)
        self.mqtt.publish(self.topics.events, json.dumps(body).encode(), qos=1)

    async def _telemetry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.telemetry.interval)
            body = json.dumps(self.telemetry.sample()).encode()
            self.mqtt.publish(self.topics.telemetry, body, qos=0)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("agent task failed", exc_info=task.exception())


def _setup(role: DtlsRole) -> str | None:
    """The answer's preferred a=setup; None (auto): whatever the offer allows."""
    return None if role is DtlsRole.AUTO else role.value


async def run_agent(config: Config, stop: asyncio.Event, *, reverted: str | None = None) -> None:
    """Run until ``stop`` is set, then shut down in order."""
    agent = Agent(config, reverted=reverted)
    await agent.start()
    try:
        await stop.wait()
    finally:
        await agent.stop()
