"""One paho client's socket on the asyncio loop, instead of paho's network thread.

Readable: ``loop_read`` (and again while TLS holds decrypted bytes the selector cannot
see, paho issue 131). Write interest: as paho asks through ``on_socket_register_write``.
Keep alives: ``loop_misc`` every `MISC_INTERVAL`. paho raising instead of reporting is handed
to ``on_error(reason)``; the owner then closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

MISC_INTERVAL: Final = 1.0


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PahoSocket:
    """The socket of the paho client attached last, watched by the running loop."""

    def __init__(self, on_error: Callable[[str], None], on_detached: Callable[[], None]) -> None:
        self._on_error = on_error
        self._on_detached = on_detached
        self._client: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: Any = None
        self._fd = -1
        self._misc_timer: asyncio.TimerHandle | None = None

    @property
    def attached(self) -> bool:
        return self._sock is not None

    def owns(self, sock: Any) -> bool:
        """Whether ``sock`` is the attached one (paho's socket callbacks also run in the
        executor during connect(), for a socket that is not attached yet)."""
        return sock is not None and sock is self._sock

    def attach(self, client: paho.Client) -> None:
        """Watch ``client``'s socket (connect() has returned, so it has one)."""
        self._loop = asyncio.get_running_loop()
        sock = client.socket()
        assert sock is not None
        self._client, self._sock, self._fd = client, sock, sock.fileno()
        set_tcp_nodelay(sock)
        self._loop.add_reader(self._fd, self._readable)
        # The CONNECT packet was queued in the executor, before there was a loop to tell.
        if client.want_write():
            self._loop.add_writer(self._fd, self._writable)
        self._misc_timer = self._loop.call_later(MISC_INTERVAL, self._misc)

    def want_write(self, wanted: bool) -> None:
        if self._sock is None or self._loop is None:
            return
        if wanted:
            self._loop.add_writer(self._fd, self._writable)
        else:
            self._loop.remove_writer(self._fd)

    def detach(self) -> None:
        """Stop watching (the socket is paho's to close, or already closed)."""
        if self._sock is None or self._loop is None:
            return
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        if self._misc_timer is not None:
            self._misc_timer.cancel()
            self._misc_timer = None
        self._sock, self._fd = None, -1
        self._on_detached()

    def close(self) -> None:
        """Drop the connection without DISCONNECT (so a connected session's will fires)."""
        sock = self._sock
        self.detach()
        if sock is not None:
            sock.close()

    def _readable(self) -> None:
        assert self._client is not None
        try:
            while self._sock is not None:
                if self._client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                pending = getattr(self._sock, "pending", None)
                if pending is None or not pending():
                    break
        except Exception as exc:
            self._on_error(f"read failed: {describe(exc)}")

    def _writable(self) -> None:
        assert self._client is not None
        try:
            self._client.loop_write()
        except Exception as exc:
            self._on_error(f"write failed: {describe(exc)}")

    def _misc(self) -> None:
        assert self._client is not None and self._loop is not None
        self._misc_timer = None
        try:
            self._client.loop_misc()
        except Exception as exc:
            self._on_error(f"keepalive failed: {describe(exc)}")
        if self._sock is not None:
            self._misc_timer = self._loop.call_later(MISC_INTERVAL, self._misc)


def set_tcp_nodelay(sock: Any) -> None:
    """TCP_NODELAY on an MQTT socket (the agent's, the fleet client's). Requests and replies
    are small writes that follow one another (the answer, then its trickled candidates,
    then a state): with Nagle each waits for the broker's delayed ACK (~40 ms)."""
    with contextlib.suppress(OSError, AttributeError):  # an SSLSocket passes it to its TCP one
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
