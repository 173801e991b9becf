"""`Fleet`: the asyncio client of a fleet of edgecam devices, on the MQTT contract alone.

It speaks PROTOCOL.md as any outside tool would: retained `P/D/status` for the device list,
JSON-RPC 2.0 requests on `P/D/rpc/C` with responses on `P/D/rpc/C/reply` (C is this client's
id, which the broker's ACL pins to its certificate), and `P/D/events` / `P/D/telemetry` for
following devices. One connection serves every device; responses are matched by device and id.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any, Self

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from agent.client.connection import (
    FleetSettings,
    PahoErrors,
    build_client,
    explain_connect_failure,
    resolve_client_id,
)
from agent.client.errors import (
    CallTimeout,
    ConnectError,
    DeviceOffline,
    FleetError,
    NotAuthorised,
    RpcCallError,
    UnknownDevice,
)
from agent.client.models import CallResult, DeviceInfo, DeviceMessage
from agent.signaling.mqtt_endpoint import MqttEndpoint
from agent.signaling.paho_socket import set_tcp_nodelay

logger = logging.getLogger(__name__)

# Retained status arrives in one burst right after SUBACK; MQTT marks no end of it, so the
# device list is taken once the burst has been quiet this long (or after SETTLE_MAX).
SETTLE_QUIET = 0.3
SETTLE_MAX = 3.0
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONCURRENCY = 16
FOLLOW_QUEUE = 1024  # messages kept per follower; a slow one loses the oldest
_GLOB = set("*?[")


def is_pattern(target: str) -> bool:
    """True for `all` and shell globs (`cam-*`), False for one device id."""
    return target == "all" or bool(_GLOB & set(target))


class Fleet:
    """A connection to the broker that can list, call and follow devices.

    Use as ``async with Fleet(broker="mqtts://broker:8883", ca=..., cert=..., key=...) as
    fleet``. The client id defaults to the CN of `cert`. Every method raises a
    `agent.client.errors.FleetError` subclass with a one-line message.
    """

    def __init__(
        self,
        broker: str | None = None,
        *,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        prefix: str = "edgecam",
        client_id: str | None = None,
        allow_insecure: bool = False,
        username: str | None = None,
        password: str | None = None,
        settings: FleetSettings | None = None,
    ) -> None:
        if settings is None:
            if broker is None:
                raise ValueError("Fleet needs broker= or settings=")
            settings = FleetSettings(
                broker, ca, cert, key, prefix, client_id, allow_insecure, username, password
            )
        self.settings = settings
        self.prefix = settings.prefix
        self.client_id = ""
        self._devices: dict[str, DeviceInfo] = {}
        self._pending: dict[tuple[str, int], tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._ids = itertools.count(1)
        self._followers: list[tuple[str, str, asyncio.Queue[DeviceMessage | None]]] = []
        self._subscribed: set[str] = set()
        self._subscribe_lock = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()
        self._client: aiomqtt.Client | None = None
        self._endpoint: MqttEndpoint | None = None
        self._reader: asyncio.Task[None] | None = None
        self._status_since = 0.0
        self._last_status = 0.0
        self._settled = False
        self._lost: str | None = None
        self._paho_errors = PahoErrors()
        self._publishes: dict[int, tuple[str, int]] = {}  # PUBACK mid -> (device, id)

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.client_id = resolve_client_id(self.settings)
        client, self._endpoint = build_client(self.settings, self.client_id, self._paho_errors)
        await self._connect(client)
        # aiomqtt drops PUBACK reason codes; a refused request must not wait for its timeout.
        paho_client = client._client
        aiomqtt_on_publish: Any = paho_client.on_publish

        def on_publish(c: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
            self._on_puback(mid, reason)
            aiomqtt_on_publish(c, userdata, mid, reason, properties)

        paho_client.on_publish = on_publish
        try:
            self._reader = asyncio.create_task(self._read(), name="fleet reader")
            self._stack.push_async_callback(self._stop_reader)
            self._status_since = self._last_status = asyncio.get_running_loop().time()
            await self._subscribe(f"{self.prefix}/+/status")
            await self._subscribe(f"{self.prefix}/+/rpc/{self.client_id}/reply")
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            await self._stack.aclose()

    async def _connect(self, client: aiomqtt.Client) -> None:
        """Connect, or raise ConnectError as soon as paho logs why it cannot."""
        assert self._endpoint is not None
        connecting = asyncio.ensure_future(self._stack.enter_async_context(client))
        failed = asyncio.ensure_future(self._paho_errors.failed.wait())
        try:
            await asyncio.wait({connecting, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await connecting
            sock = client._client.socket()
            if sock is not None:
                sock.close()  # the broker has ended it: nothing to say goodbye to
            error = Exception(self._paho_errors.last or "connection failed")
            raise ConnectError(explain_connect_failure(error, self._endpoint))
        try:
            self._client = connecting.result()
        except aiomqtt.MqttError as exc:
            reason = self._paho_errors.last or exc
            raise ConnectError(explain_connect_failure(Exception(reason), self._endpoint)) from None
        set_tcp_nodelay(client._client.socket())

    def _on_puback(self, mid: int, reason: Any) -> None:
        request = self._publishes.pop(mid, None)
        if request is None or not getattr(reason, "is_failure", False):
            return
        entry = self._pending.get(request)
        if entry is not None and not entry[1].done():
            entry[1].set_exception(
                NotAuthorised(
                    f"{request[0]}: broker refused the request ({reason}): not authorised "
                    f"to publish on {self.prefix}/{request[0]}/rpc/{self.client_id}"
                )
            )

    async def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def _mqtt(self) -> aiomqtt.Client:
        if self._client is None:
            raise FleetError("Fleet used outside `async with`")
        if self._lost is not None:
            raise ConnectError(self._lost)
        return self._client

    async def _subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe once; NotAuthorised if the broker's ACL refuses the filter."""
        async with self._subscribe_lock:
            if topic in self._subscribed:
                return
            assert self._endpoint is not None
            try:
                granted = await self._mqtt().subscribe(topic, qos)
            except aiomqtt.MqttError as exc:
                raise ConnectError(explain_connect_failure(exc, self._endpoint)) from None
            refused = [
                str(code)
                for code in granted
                if (code.is_failure if isinstance(code, ReasonCode) else code >= 0x80)
            ]
            if refused:
                raise NotAuthorised(
                    f"broker {self._endpoint}: not authorised to subscribe to {topic} "
                    f"({', '.join(refused)}); is the client id {self.client_id!r} "
                    "the certificate's CN?"
                )
            self._subscribed.add(topic)

    # --- devices --------------------------------------------------------------------------

    async def devices(self) -> list[DeviceInfo]:
        """Every device with a retained status, sorted by id (offline ones included)."""
        await self._settle()
        return [self._devices[d] for d in sorted(self._devices)]

    async def resolve(self, target: str) -> list[str]:
        """The ids `target` names: one id as given, or the *online* devices a glob matches."""
        await self._settle()
        if not is_pattern(target):
            return [target]
        pattern = "*" if target == "all" else target
        online = (d for d, info in self._devices.items() if info.online)
        return sorted(d for d in online if fnmatch.fnmatchcase(d, pattern))

    async def _settle(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._settled:
            now = loop.time()
            quiet_for = now - max(self._status_since, self._last_status)
            if quiet_for >= SETTLE_QUIET or now - self._status_since >= SETTLE_MAX:
                self._settled = True
                break
            await asyncio.sleep(SETTLE_QUIET - quiet_for)

    # --- calls ----------------------------------------------------------------------------

    async def call(
        self,
        device: str,
        method: str,
        params: dict[str, Any] | None = None,
        /,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        **named: Any,
    ) -> Any:
        """Call `method` on one device and return its result.

        Params come as a dict, as keywords, or both (keywords win). Raises `RpcCallError`
        (the device's JSON-RPC error), `DeviceOffline`, `UnknownDevice`, `CallTimeout`.
        """
        await self._settle()
        info = self._devices.get(device)
        if info is None:
            raise UnknownDevice(device)
        if not info.online:
            raise DeviceOffline(device)
        body = {**(params or {}), **named}
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[(device, request_id)] = (method, future)
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": body}
        try:
            async with asyncio.timeout(timeout):
                self._publish_request(device, request_id, request)
                response = await future
        except TimeoutError:
            raise CallTimeout(device, method, timeout) from None
        except aiomqtt.MqttError as exc:
            raise ConnectError(f"broker connection failed during {method}: {exc}") from None
        finally:
            self._pending.pop((device, request_id), None)
        return _result_of(device, response)

    def _publish_request(self, device: str, request_id: int, request: dict[str, Any]) -> None:
        """Straight to paho, to learn the message id that the PUBACK's reason code is for."""
        info = self._mqtt()._client.publish(
            f"{self.prefix}/{device}/rpc/{self.client_id}",
            json.dumps(request, separators=(",", ":")).encode(),
            1,
        )
        if info.rc != 0:
            raise ConnectError(f"{device}: request not sent: {info.rc}")
        self._publishes[info.mid] = (device, request_id)

    async def call_many(
        self,
        target: str | Iterable[str],
        method: str,
        params: dict[str, Any] | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[CallResult]:
        """Call `method` on every device `target` names (see `resolve`), at most
        `concurrency` at once; one `CallResult` per device, sorted by id. Never raises for one
        device's failure: it is that device's `error`."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        devices = await self.resolve(target) if isinstance(target, str) else sorted(target)
        gate = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()

        async def one(device: str) -> CallResult:
            async with gate:
                started = loop.time()
                try:
                    result = await self.call(device, method, params, timeout=timeout)
                except FleetError as exc:
                    return CallResult(device, error=exc, elapsed=loop.time() - started)
                return CallResult(device, result=result, elapsed=loop.time() - started)

        return list(await asyncio.gather(*(one(d) for d in devices)))

    # --- following ------------------------------------------------------------------------

    async def events(self, target: str = "all") -> AsyncIterator[DeviceMessage]:
        """Every message on `P/D/events` of the devices `target` matches, until the
        connection ends. The subscription starts at the first iteration: use `following`
        to subscribe before doing what should cause events."""
        async with self.following("events", target) as stream:
            async for message in stream:
                yield message

    async def telemetry(self, target: str = "all") -> AsyncIterator[DeviceMessage]:
        """Every message on `P/D/telemetry` of the devices `target` matches."""
        async with self.following("telemetry", target) as stream:
            async for message in stream:
                yield message

    @contextlib.asynccontextmanager
    async def following(
        self, kind: str, target: str = "all"
    ) -> AsyncIterator[AsyncIterator[DeviceMessage]]:
        """Subscribed on entry to `kind` ("events" or "telemetry") of the devices `target`
        (an id, a glob, `all`); yields the stream of their messages."""
        if kind not in ("events", "telemetry"):
            raise ValueError(f"kind must be 'events' or 'telemetry', not {kind!r}")
        pattern = "*" if target == "all" else target
        queue: asyncio.Queue[DeviceMessage | None] = asyncio.Queue(FOLLOW_QUEUE)
        entry = (kind, pattern, queue)
        self._followers.append(entry)
        try:
            await self._subscribe(f"{self.prefix}/+/{kind}", 1 if kind == "events" else 0)
            yield self._drain(queue)
        finally:
            self._followers.remove(entry)

    async def _drain(
        self, queue: asyncio.Queue[DeviceMessage | None]
    ) -> AsyncIterator[DeviceMessage]:
        while (message := await queue.get()) is not None:
            yield message
        if self._lost is not None:
            raise ConnectError(self._lost)

    # --- incoming -------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._client is not None
        try:
            async for message in self._client.messages:
                payload = message.payload
                if isinstance(payload, bytes | bytearray):
                    self._route(message.topic.value, bytes(payload))
            self._lost = "connection to the broker closed"
        except aiomqtt.MqttError as exc:
            assert self._endpoint is not None
            self._lost = explain_connect_failure(exc, self._endpoint)
        finally:
            self._end_all(self._lost or "fleet client closed")

    def _end_all(self, reason: str) -> None:
        for _method, future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectError(reason))
        for _kind, _pattern, queue in self._followers:
            _offer(queue, None)

    def _route(self, topic: str, payload: bytes) -> None:
        head = f"{self.prefix}/"
        if not topic.startswith(head):
            return
        device, _, rest = topic[len(head) :].partition("/")
        if rest == "status":
            self._on_status(device, payload)
            return
        body = _decode(payload)
        if body is None:
            logger.debug("ignored a payload that is not a JSON object on %s", topic)
        elif rest == f"rpc/{self.client_id}/reply":
            self._on_reply(device, body)
        elif rest in ("events", "telemetry"):
            message = DeviceMessage(device, rest, body)
            for kind, pattern, queue in self._followers:
                if kind == rest and fnmatch.fnmatchcase(device, pattern):
                    _offer(queue, message)

    def _on_status(self, device: str, payload: bytes) -> None:
        self._last_status = asyncio.get_running_loop().time()
        if not payload:  # a cleared retained status: the device was removed
            self._devices.pop(device, None)
            return
        body = _decode(payload)
        if body is None:
            logger.debug("ignored a status of %s that is not a JSON object", device)
            return
        info = DeviceInfo.from_status(device, body, time.time())
        self._devices[device] = info
        if not info.online:
            for (who, _id), (_method, future) in self._pending.items():
                if who == device and not future.done():
                    future.set_exception(DeviceOffline(device))

    def _on_reply(self, device: str, body: dict[str, Any]) -> None:
        request_id = body.get("id")
        if "method" in body or not isinstance(request_id, int):
            return  # a notification about one of our sessions, or an id we never sent
        entry = self._pending.get((device, request_id))
        if entry is not None and not entry[1].done():
            entry[1].set_result(body)


def _decode(payload: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _offer(queue: asyncio.Queue[DeviceMessage | None], item: DeviceMessage | None) -> None:
    if queue.full():
        queue.get_nowait()  # the oldest goes: a slow follower must not hold the reader
    queue.put_nowait(item)


def _result_of(device: str, response: dict[str, Any]) -> Any:
    error = response.get("error")
    if error is None:
        return response.get("result")
    if not isinstance(error, dict):
        raise RpcCallError(-32603, f"malformed error: {error!r}", device=device)
    code = error.get("code")
    return_code = code if isinstance(code, int) and not isinstance(code, bool) else -32603
    raise RpcCallError(return_code, str(error.get("message", "")), error.get("data"), device=device)
