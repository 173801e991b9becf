"""The device's MQTT client: bytes on topics over TLS, with reconnects, driven from asyncio.

paho-mqtt does the protocol, with no network thread: `paho_socket` watches its socket from the
loop, and its one blocking step, `connect()`, runs in the executor (`mqtt_settings`); the
socket joins the loop only once connect() returns. So paho's callbacks run on the loop, which
never waits for the broker. What is published goes through `mqtt_outbox`.

Choices (PROTOCOL.md section 2 is the topic contract; this module knows none of it):
- MQTT 5 first. CONNACK "Unsupported protocol version" switches to 3.1.1 at once. Until a
  connection has succeeded, a CONNECT that is dropped or unanswered also switches version for
  the next attempt (amqtt never answers an MQTT 5 CONNECT with a will). What connects is kept.
- Clean sessions: requests sent to the device while it was away are stale when it is back.
- QoS >= 1 messages published while disconnected wait in a bounded queue, flushed on reconnect
  before `on_connect` runs (so an older queued status never overwrites the hook's fresh one).
- Full-jitter exponential backoff, also after a lost connection, so that a fleet does not hit
  a restarted broker all at once. Identical failures are logged once at WARNING, then at DEBUG.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.signaling.mqtt_endpoint import MqttEndpoint, tls_context
from agent.signaling.mqtt_outbox import Outbox
from agent.signaling.mqtt_settings import (
    MqttSettings,
    MqttState,
    connect,
    connect_in_executor,
    new_paho,
)
from agent.signaling.paho_socket import PahoSocket, describe

__all__ = ["MqttClient", "MqttSettings", "MqttState"]

logger = logging.getLogger(__name__)

BACKOFF_INITIAL: Final = 0.5
BACKOFF_MAX: Final = 30.0
# Backoff starts over only after a connection that lasted this long: a broker that accepts and
# then drops us at once (two devices sharing a client id) must not be hammered.
STABLE_CONNECTION: Final = 10.0
CONNACK_TIMEOUT: Final = 10.0
# Until a connection has succeeded, a CONNECT that gets no answer may be a protocol version the
# broker cannot parse (amqtt ignores an MQTT 5 CONNECT that carries a will): give up sooner.
PROBE_CONNACK_TIMEOUT: Final = 3.0
FINAL_ACK_TIMEOUT: Final = 3.0
DISCONNECT_TIMEOUT: Final = 1.0
_UNSUPPORTED_PROTOCOL_VERSION: Final = 132  # CONNACK reason; paho maps 3.1.1's code 1 to it

MessageHandler = Callable[[str, bytes], None]
ConnectHook = Callable[[], Awaitable[None] | None]
DisconnectHook = Callable[[str], None]


class _Fallback(Exception):
    """The broker refused this protocol version: retry at once with the other one."""


class MqttClient:
    """The device's connection to the broker: publish and subscribe bytes, reconnect forever.

    Callbacks (`on_message(topic, payload)`, `on_connect()`, `on_disconnect(reason)`) run on
    the event loop. `on_connect` runs after every successful (re)connect, once subscriptions
    are re-applied and queued messages flushed; it may be a coroutine function.
    `on_disconnect` runs when an established connection ends, including at `stop()`.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        on_message: MessageHandler,
        on_connect: ConnectHook | None = None,
        on_disconnect: DisconnectHook | None = None,
    ) -> None:
        self._settings = settings
        self._endpoint = MqttEndpoint.from_url(settings.url, allow_insecure=settings.allow_insecure)
        self._tls = (
            tls_context(settings.ca, settings.cert, settings.key) if self._endpoint.tls else None
        )
        if settings.will_qos not in (0, 1, 2):
            raise ValueError(f"mqtt will qos must be 0, 1 or 2, not {settings.will_qos!r}")
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._protocol = MQTTProtocolVersion.MQTTv5
        self._confirmed = False  # some connection succeeded with self._protocol
        self._fell_back = False
        self._switches = 0
        self._paho = self._new_paho()
        self._state = MqttState.IDLE
        self._subscriptions: dict[str, int] = {}
        self._outbox = Outbox(str(self._endpoint))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected_event = asyncio.Event()
        self._lost_event = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._published_event = asyncio.Event()
        self._detached_event = asyncio.Event()
        self._connack: asyncio.Future[ReasonCode | str] | None = None
        self._link = PahoSocket(self._abort, self._detached)
        self._last_error: str | None = None  # paho's last ERR log line, to explain a loss
        self._last_failure: str | None = None

    # ---------------------------------------------------------------- public API

    @property
    def state(self) -> MqttState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is MqttState.CONNECTED

    @property
    def protocol(self) -> Literal["5", "3.1.1"]:
        return "5" if self._protocol == MQTTProtocolVersion.MQTTv5 else "3.1.1"

    @property
    def endpoint(self) -> MqttEndpoint:
        return self._endpoint

    async def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=f"mqtt {self._endpoint}")

    async def wait_connected(self, timeout: float) -> None:
        """Return once connected; raises TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            await self._connected_event.wait()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now if connected, and again after every reconnect."""
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
        self._subscriptions[topic] = qos
        if self.connected:
            self._paho.subscribe(topic, qos)

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        owner: str | None = None,
    ) -> bool:
        """Hand a message to the broker without blocking; False if it was dropped.

        While disconnected, QoS 0 is dropped and QoS >= 1 waits (at most `QUEUE_LIMIT`
        messages) for the next connection. A message with an ``owner`` (the client a reply is
        for) is dropped while that owner already has `OWNER_SHARE` messages in flight.
        """
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
        if self.connected:
            return self._outbox.send(self._paho, (topic, payload, qos, retain), owner)
        if qos == 0 or self._state in (MqttState.STOPPING, MqttState.STOPPED):
            return False
        return self._outbox.hold((topic, payload, qos, retain))

    async def stop(self, *, final: Sequence[tuple[str, bytes, int, bool]] = ()) -> None:
        """Publish `final` (topic, payload, qos, retain) messages and wait for their PUBACKs
        (at most `FINAL_ACK_TIMEOUT`), disconnect cleanly so that the broker discards the
        will, and stop reconnecting. Without a connection, `final` is dropped (and logged)."""
        if self._state is MqttState.STOPPED:
            return
        was_connected = self.connected
        self._set_state(MqttState.STOPPING, "stop requested")
        self._stop_event.set()
        if self._connack is not None and not self._connack.done():
            self._connack.set_result("stopped")
        if was_connected:
            await self._publish_final(final)
            await self._disconnect()
            self._connection_ended("stopped")
        elif final:
            logger.warning(
                "mqtt %s: not connected, %d final message(s) dropped", self._endpoint, len(final)
            )
        self._lost_event.set()
        if self._task is not None:
            task = self._task
            try:
                async with asyncio.timeout(DISCONNECT_TIMEOUT):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._link.close()
        self._outbox.clear()
        self._set_state(
            MqttState.STOPPED,
            "clean DISCONNECT" if was_connected else "was not connected",
            logging.INFO,
        )

    # ---------------------------------------------------------------- state

    def _set_state(self, new: MqttState, reason: str, level: int = logging.DEBUG) -> None:
        old, self._state = self._state, new
        if old is not new:
            logger.log(
                level, "mqtt %s: %s -> %s (%s)", self._endpoint, old.value, new.value, reason
            )

    # ---------------------------------------------------------------- paho object

    def _new_paho(self) -> paho.Client:
        client: paho.Client = new_paho(self._settings, self._endpoint, self._tls, self._protocol)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_message = self._paho_message
        client.on_publish = self._paho_publish
        client.on_subscribe = self._paho_subscribe
        client.on_log = self._paho_log
        client.on_socket_close = self._paho_socket_close
        client.on_socket_register_write = self._paho_register_write
        client.on_socket_unregister_write = self._paho_unregister_write
        return client

    def _blocking_connect(self, client: paho.Client) -> None:
        connect(client, self._endpoint, self._protocol, self._settings.keepalive)

    # ---------------------------------------------------------------- the connection task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._stop_event.is_set():
            try:
                reason = await self._connect_once()
            except _Fallback:
                continue
            except Exception as exc:  # a bug here must not end reconnecting for good
                logger.exception("mqtt %s: connect attempt failed", self._endpoint)
                self._link.close()
                reason = describe(exc)
            if reason is None:
                self._last_failure = None
                since = loop.time()
                await self._lost_event.wait()
                if self._stop_event.is_set():
                    return
                if loop.time() - since >= STABLE_CONNECTION:
                    attempt = 0
                reason = "reconnecting"
                level = logging.DEBUG
            elif self._stop_event.is_set():
                return
            else:
                level = logging.DEBUG if reason == self._last_failure else logging.WARNING
                self._last_failure = reason
            ceiling = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** min(attempt, 16))
            delay = random.uniform(0.0, ceiling)
            attempt += 1
            self._set_state(MqttState.BACKOFF, f"{reason}; retry in {delay:.2f} s", level)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop_event.wait()

    async def _connect_once(self) -> str | None:
        """One attempt; None once connected (hooks done), else why it failed."""
        client = self._paho
        self._lost_event.clear()
        self._last_error = None
        self._set_state(MqttState.CONNECTING, f"MQTT {self.protocol}")
        failure = await connect_in_executor(client, self._blocking_connect, self._stop_event)
        if failure is not None:
            return failure
        self._connack = asyncio.get_running_loop().create_future()
        self._link.attach(client)
        timeout = CONNACK_TIMEOUT if self._confirmed else PROBE_CONNACK_TIMEOUT
        try:
            async with asyncio.timeout(timeout):
                outcome = await self._connack
        except TimeoutError:
            outcome = f"no CONNACK within {timeout:.0f} s"
        finally:
            self._connack = None
        if isinstance(outcome, str):
            self._link.close()
            if not self._confirmed and not self._stop_event.is_set():
                self._switch_protocol(outcome)
            return outcome
        if outcome.is_failure:
            self._link.close()
            if outcome.value == _UNSUPPORTED_PROTOCOL_VERSION:
                self._switch_protocol(str(outcome))
                if not self._fell_back:  # at once, but only once: a broker could refuse both
                    self._fell_back = True
                    raise _Fallback
            return f"broker refused the connection: {outcome}"

        if not self._link.attached:
            # paho read the CONNACK and the connection's end in one go: not connected.
            return "connection lost right after CONNACK"
        self._confirmed = True
        self._set_state(
            MqttState.CONNECTED, f"MQTT {self.protocol} as {self._settings.client_id}", logging.INFO
        )
        self._connected_event.set()
        if self._subscriptions:
            self._paho.subscribe(list(self._subscriptions.items()))
        self._outbox.flush(self._paho, lambda: self.connected)
        await self._run_connect_hook()
        return None

    def _switch_protocol(self, reason: str) -> None:
        old = self.protocol
        v5 = self._protocol == MQTTProtocolVersion.MQTTv5
        self._protocol = MQTTProtocolVersion.MQTTv311 if v5 else MQTTProtocolVersion.MQTTv5
        self._paho = self._new_paho()
        level = logging.DEBUG if self._switches else logging.INFO
        self._switches += 1
        logger.log(
            level,
            "mqtt %s: MQTT %s failed (%s): trying MQTT %s",
            self._endpoint,
            old,
            reason,
            self.protocol,
        )

    async def _run_connect_hook(self) -> None:
        if self._on_connect is None:
            return
        try:
            result = self._on_connect()
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("mqtt %s: on_connect hook failed", self._endpoint)

    def _connection_ended(self, reason: str) -> None:
        """An established connection is gone (lost, or closed by `stop()`)."""
        self._connected_event.clear()
        self._outbox.connection_ended()
        if self._state is MqttState.CONNECTED:
            self._set_state(MqttState.DISCONNECTED, reason, logging.WARNING)
        if self._on_disconnect is not None:
            try:
                self._on_disconnect(reason)
            except Exception:
                logger.exception("mqtt %s: on_disconnect hook failed", self._endpoint)
        self._lost_event.set()

    async def _publish_final(self, final: Sequence[tuple[str, bytes, int, bool]]) -> None:
        infos = [
            self._paho.publish(topic, payload, qos, retain) for topic, payload, qos, retain in final
        ]
        try:
            async with asyncio.timeout(FINAL_ACK_TIMEOUT):
                while self._link.attached and not all(
                    i.rc != MQTTErrorCode.MQTT_ERR_SUCCESS or i.is_published() for i in infos
                ):
                    self._published_event.clear()
                    await self._published_event.wait()
        except TimeoutError:
            logger.warning(
                "mqtt %s: final messages not acknowledged within %.0f s",
                self._endpoint,
                FINAL_ACK_TIMEOUT,
            )

    async def _disconnect(self) -> None:
        if not self._link.attached:
            return
        self._detached_event.clear()
        self._paho.disconnect()
        try:
            async with asyncio.timeout(DISCONNECT_TIMEOUT):
                await self._detached_event.wait()
        except TimeoutError:
            logger.warning(
                "mqtt %s: DISCONNECT not sent within %.0f s", self._endpoint, DISCONNECT_TIMEOUT
            )

    # ---------------------------------------------------------------- socket <-> loop

    @property
    def dropped_over_share(self) -> int:
        """Replies dropped because their client had `OWNER_SHARE` in flight already."""
        return self._outbox.dropped_over_share

    def _detached(self) -> None:
        self._detached_event.set()
        self._published_event.set()  # nothing more will be acknowledged on this connection

    def _abort(self, reason: str) -> None:
        """paho raised instead of reporting: close the connection ourselves."""
        self._link.close()
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(reason)
        elif self._state is MqttState.CONNECTED:
            self._connection_ended(reason)

    # ---------------------------------------------------------------- paho callbacks
    # The socket callbacks may also run in the executor during connect(); they act only on
    # the socket attached to the loop, which connect() never is.

    def _paho_socket_close(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        if client is self._paho and self._link.owns(sock):
            self._link.detach()

    def _paho_register_write(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        if client is self._paho and self._link.owns(sock):
            self._link.want_write(True)

    def _paho_unregister_write(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        if client is self._paho and self._link.owns(sock):
            self._link.want_write(False)

    def _paho_log(self, client: paho.Client, _userdata: Any, level: int, buf: str) -> None:
        if client is self._paho and level in (paho.MQTT_LOG_ERR, paho.MQTT_LOG_WARNING):
            self._last_error = buf

    def _paho_connect(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _properties: Any
    ) -> None:
        if client is self._paho and self._connack is not None and not self._connack.done():
            self._connack.set_result(reason)

    def _paho_disconnect(
        self, client: paho.Client, _userdata: Any, flags: Any, reason: ReasonCode, _properties: Any
    ) -> None:
        if client is not self._paho:
            return
        self._link.detach()  # paho has closed (or is closing) the socket
        if flags.is_disconnect_packet_from_server:
            text = f"broker sent DISCONNECT: {reason}"
        elif self._last_error is not None:
            text = f"connection lost: {self._last_error}"
        else:
            text = f"connection lost ({reason})"
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(f"connection closed before CONNACK: {text}")
        elif self._state is MqttState.CONNECTED:
            self._connection_ended(text)

    def _paho_message(self, client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        if client is not self._paho:
            return
        if message.retain:
            # A retained request would be run again at every (re)connect: requests are
            # for now, never for later.
            logger.warning(
                "mqtt %s: ignored a retained message on %r", self._endpoint, message.topic
            )
            return
        try:
            self._on_message(message.topic, bytes(message.payload))
        except Exception:
            logger.exception(
                "mqtt %s: on_message failed for topic %r", self._endpoint, message.topic
            )

    def _paho_publish(
        self, client: paho.Client, _userdata: Any, mid: int, _reason: ReasonCode, _properties: Any
    ) -> None:
        if client is self._paho:
            self._outbox.published(mid)
            self._published_event.set()

    def _paho_subscribe(
        self,
        client: paho.Client,
        _userdata: Any,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: Any,
    ) -> None:
        if client is not self._paho:
            return
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            logger.warning(
                "mqtt %s: broker refused %d subscription(s): %s",
                self._endpoint,
                len(refused),
                ", ".join(refused),
            )
