"""agent/web/server.py: the viewer's static files, and nothing else, over HTTP/1.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from agent.web.server import WEB_ROOT, ViewerServer, serve_viewer, viewer_url

SECRET = b"top-secret-outside-the-root"
VENDOR = b"var mqtt = {connect() {}};\n"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


async def fetch(url: str, raw_request: bytes) -> Response:
    """Send `raw_request` as is (so malformed requests can be tested) and read the answer."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(raw_request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)  # the server closes after one answer
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("ascii").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(int(status_line.split(" ")[1]), headers, body)


async def get(url: str, target: str, method: str = "GET") -> Response:
    return await fetch(url, f"{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def make_root(tmp_path: Path, *, vendor: bool = True) -> Path:
    """A web root like agent/web (with files that must not be served) and a secret beside it."""
    root = tmp_path / "web"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>t</title>")
    (root / "viewer.js").write_text("export {};\n")
    (root / "style.css").write_text("body {}\n")
    (root / "package.json").write_text("{}")
    (root / "server.py").write_text("# not for browsers\n")
    if vendor:
        (root / "vendor").mkdir()
        (root / "vendor" / "mqtt.min.js").write_bytes(VENDOR)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "pyproject.toml").write_bytes(SECRET)
    return root


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[str]:
    server, url = await serve_viewer(root=make_root(tmp_path))
    try:
        yield url
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("target", ["/", "/index.html", "/?broker=ws://h:1&autoplay=1"])
async def test_serves_index_html(site: str, target: str) -> None:
    response = await get(site, target)
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.body == b"<!doctype html><title>t</title>"
    assert response.headers["content-length"] == str(len(response.body))


@pytest.mark.parametrize(
    ("target", "content_type", "body"),
    [
        ("/viewer.js", "text/javascript; charset=utf-8", b"export {};\n"),
        ("/style.css", "text/css; charset=utf-8", b"body {}\n"),
        ("/vendor/mqtt.min.js", "text/javascript; charset=utf-8", VENDOR),
    ],
)
async def test_serves_static_files_with_their_content_type(
    site: str, target: str, content_type: str, body: bytes
) -> None:
    response = await get(site, target)
    assert response.status == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.body == body


async def test_missing_vendor_file_is_404_saying_how_to_install_it(tmp_path: Path) -> None:
    server, url = await serve_viewer(root=make_root(tmp_path, vendor=False))
    try:
        response = await get(url, "/vendor/mqtt.min.js")
    finally:
        server.close()
        await server.wait_closed()
    assert response.status == 404
    assert b"make web-deps" in response.body


@pytest.mark.parametrize(
    "target", ["/missing.js", "/package.json", "/server.py", "/vendor/", "/vendor", "/index.htm"]
)
async def test_anything_not_in_the_route_table_is_404(site: str, target: str) -> None:
    response = await get(site, target)
    assert response.status == 404
    assert b"{}" not in response.body and b"not for browsers" not in response.body


@pytest.mark.parametrize(
    "target",
    [
        "/../pyproject.toml",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e/",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/vendor/../../secret.txt",
        "/vendor/..%5c..%5csecret.txt",
        "/./../secret.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/proc/self/environ",
        "http://127.0.0.1/../secret.txt",
        "..",
        "*",
    ],
)
async def test_traversal_attempts_are_refused(site: str, target: str) -> None:
    response = await get(site, target)
    assert response.status in (400, 404)
    assert SECRET not in response.body
    assert b"root:" not in response.body


async def test_a_symlink_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    root = make_root(tmp_path, vendor=False)
    (root / "vendor").mkdir()
    (root / "vendor" / "mqtt.min.js").symlink_to(tmp_path / "secret.txt")
    server, url = await serve_viewer(root=root)
    try:
        response = await get(url, "/vendor/mqtt.min.js")
    finally:
        server.close()
        await server.wait_closed()
    assert response.status == 404
    assert SECRET not in response.body


async def test_head_answers_headers_without_a_body(site: str) -> None:
    response = await get(site, "/viewer.js", method="HEAD")
    assert response.status == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["content-length"] == str(len(b"export {};\n"))
    assert response.body == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"])
async def test_other_methods_are_405(site: str, method: str) -> None:
    response = await get(site, "/index.html", method=method)
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /\r\n\r\n", 400),
        (b"GET / SPDY/3\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"\xff\xfe / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n", 431),
    ],
)
async def test_malformed_requests_get_a_client_error(site: str, raw: bytes, status: int) -> None:
    response = await fetch(site, raw)
    assert response.status == status


async def test_a_client_that_hangs_up_early_does_not_stop_the_server(site: str) -> None:
    parts = urlsplit(site)
    assert parts.hostname is not None and parts.port is not None
    _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(b"GET / HTT")
    writer.close()
    await writer.wait_closed()
    assert (await get(site, "/")).status == 200


async def test_pages_forbid_inline_script(site: str) -> None:
    policy = (await get(site, "/")).headers["content-security-policy"]
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src


async def test_default_root_is_the_packaged_viewer() -> None:
    server = ViewerServer()
    url = await server.start()
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        index = await get(url, "/")
        script = await get(url, "/viewer.js")
        source = await get(url, "/server.py")
    finally:
        await server.stop()
    assert index.body == (WEB_ROOT / "index.html").read_bytes()
    assert script.body == (WEB_ROOT / "viewer.js").read_bytes()
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert source.status == 404


async def test_viewer_server_url_needs_a_start() -> None:
    server = ViewerServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    await server.stop()  # stopping a server that never started is harmless


def test_viewer_url_carries_the_autoplay_parameters() -> None:
    url = viewer_url(
        "http://127.0.0.1:8080/", broker="ws://127.0.0.1:9001", device="cam-01",
        client="viewer-1", username="viewer-1", password="p&ss=word", ice='[{"urls":"stun:x"}]',
    )
    parts = urlsplit(url)
    assert parts.path == "/"
    assert parse_qs(parts.query) == {
        "broker": ["ws://127.0.0.1:9001"], "device": ["cam-01"], "client": ["viewer-1"],
        "username": ["viewer-1"], "password": ["p&ss=word"], "ice": ['[{"urls":"stun:x"}]'],
        "autoplay": ["1"],
    }
