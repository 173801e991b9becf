"""The demo's HTTP server for the browser viewer: a handful of static files, nothing else.

Only the names in `ROUTES` are ever served, each mapped to a fixed file under the root: a
request path is compared with that table as it came (no percent-decoding, no joining with
the root), so `..`, `%2e%2e`, absolute-form targets and the like cannot reach any other file.
Everything is read per request so that edits to the page show on reload.

`GET` and `HEAD` only (anything else: 405), one request per connection (`Connection: close`),
loopback by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

logger = logging.getLogger(__name__)

WEB_ROOT: Final = Path(__file__).resolve().parent
VENDOR_MQTT: Final = "vendor/mqtt.min.js"

_JS: Final = "text/javascript; charset=utf-8"
# path -> (file relative to the root, content type)
ROUTES: Final[dict[str, tuple[str, str]]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/viewer.js": ("viewer.js", _JS),
    "/refusals.js": ("refusals.js", _JS),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    f"/{VENDOR_MQTT}": (VENDOR_MQTT, _JS),
}

# No inline script can run, whatever a device manages to get into the page. The page talks to
# the broker only (ws/wss); snapshots are data: URLs; mqtt.js runs its timers in a blob: worker.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; worker-src 'self' blob:; "
    "connect-src 'self' ws: wss:; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
MAX_REQUEST_HEAD: Final = 8192
READ_TIMEOUT: Final = 10.0

_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The method and request target of one request; its headers are read and ignored."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
    except asyncio.LimitOverrunError:
        raise _BadRequest(431, "request head too large") from None
    except asyncio.IncompleteReadError:
        raise _BadRequest(400, "connection closed inside the request head") from None
    except TimeoutError:
        raise _BadRequest(408, "request head not complete in time") from None
    request_line = head.split(b"\r\n", 1)[0]
    try:
        method, target, version = request_line.decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest(400, "malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise _BadRequest(400, f"unsupported version {version[:16]!r}")
    return method, target


def _response(
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    *,
    head_only: bool = False,
    extra: dict[str, str] | None = None,
) -> bytes:
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Connection": "close",
        **(extra or {}),
    }
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head if head_only else head + body


def _resolve(root: Path, target: str) -> tuple[Path, str] | None:
    """The file and content type for a request target, or None when it names nothing we serve."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    route = ROUTES.get(path)
    if route is None:
        return None
    name, content_type = route
    file = (root / name).resolve()
    # ROUTES holds plain relative names; this only guards against a symlink leading out.
    if not file.is_relative_to(root.resolve()):
        logger.warning("viewer server: %s resolves outside %s; refused", name, root)
        return None
    return file, content_type


def _answer(root: Path, method: str, target: str) -> bytes:
    if method not in ("GET", "HEAD"):
        return _response(405, b"method not allowed\n", extra={"Allow": "GET, HEAD"})
    head_only = method == "HEAD"
    found = _resolve(root, target)
    if found is None:
        return _response(404, b"not found\n", head_only=head_only)
    file, content_type = found
    try:
        body = file.read_bytes()
    except FileNotFoundError:
        message = b"not found\n"
        if file.name == Path(VENDOR_MQTT).name:
            message = b"vendor/mqtt.min.js missing: run `make web-deps`\n"
        return _response(404, message, head_only=head_only)
    except OSError as exc:
        logger.warning("viewer server: cannot read %s: %s", file, exc)
        return _response(500, b"cannot read file\n", head_only=head_only)
    return _response(200, body, content_type, head_only=head_only)


_Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _handler(root: Path) -> _Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            try:
                method, target = await _read_head(reader)
            except _BadRequest as exc:
                logger.info("viewer server: %s from %s", exc, peer)
                writer.write(_response(exc.status, f"{exc}\n".encode()))
            else:
                response = _answer(root, method, target)
                logger.debug("viewer server: %s %s -> %s", method, target, response[9:12])
                writer.write(response)
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            logger.debug("viewer server: connection from %s lost: %s", peer, exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    return handle


async def serve_viewer(
    host: str = "127.0.0.1", port: int = 0, *, root: Path | None = None
) -> tuple[asyncio.Server, str]:
    """Start serving the viewer; returns the server (close it to stop) and its base URL.

    `root` defaults to this package's directory (agent/web); tests point it elsewhere.
    """
    web_root = (root or WEB_ROOT).resolve()
    server = await asyncio.start_server(_handler(web_root), host, port, limit=MAX_REQUEST_HEAD)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}/"
    logger.info("viewer served at %s from %s", url, web_root)
    return server, url


class ViewerServer:
    """`serve_viewer` as an object with start/stop, for callers that keep it for a lifetime."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, root: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.root = root
        self._server: asyncio.Server | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL (`http://host:port/`); only once started."""
        if self._url is None:
            raise RuntimeError("viewer server not started")
        return self._url

    async def start(self) -> str:
        """Listen (raises OSError when the port is taken) and return the base URL."""
        if self._server is None:
            self._server, self._url = await serve_viewer(self.host, self.port, root=self.root)
        return self.url

    async def stop(self) -> None:
        """Stop listening and wait for open connections to finish."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()


def viewer_url(
    base: str,
    *,
    broker: str,
    device: str,
    client: str | None = None,
    username: str | None = None,
    password: str | None = None,
    prefix: str | None = None,
    ice: str | None = None,
    autoplay: bool = True,
) -> str:
    """The viewer page URL that connects to `broker` and (with `autoplay`) plays `device`.

    `ice` is a JSON array of RTCIceServer objects, passed to RTCPeerConnection as is.
    """
    params = {
        "broker": broker,
        "username": username,
        "password": password,
        "client": client,
        "device": device,
        "prefix": prefix,
        "ice": ice,
        "autoplay": "1" if autoplay else None,
    }
    return base + "?" + urlencode({k: v for k, v in params.items() if v is not None})
