"""Real browsers for tests: Debian Chromium through Playwright, Firefox ESR through WebDriver BiDi.

Chromium: `launch_chromium()` starts /usr/bin/chromium (never Playwright's own download) with
the flags from NOTES.md; `open_page()`, `evaluate()`, `page_webrtc_stats()` and
`wait_frames_decoded()` help with pages.

Firefox: Playwright cannot drive Debian's firefox-esr and there is no geckodriver package, so
`launch_firefox()` starts it with `--remote-debugging-port` and talks WebDriver BiDi over a
websocket (`FirefoxBidi`: session.new, browsingContext.navigate, script.evaluate). Firefox has no
H.264 here: use it for datachannel sessions.

Both take `netns=` to run the browser inside a topology namespace (see netns.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import shlex
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO, Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
from websockets.asyncio.client import ClientConnection, connect

from tests.infra.netns import netns_argv, netns_entered
from tests.infra.tools import free_port, log_tail, require_tool, stop_process

logger = logging.getLogger(__name__)

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    # Replaces Playwright's own --disable-features list (the last one wins in Chromium).
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
)

FIREFOX_PREFS: dict[str, bool | int | str] = {
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # 1 = WebDriver BiDi only (no CDP).
    "remote.active-protocols": 1,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "app.update.disabledForTesting": True,
    # Startup work that a test never needs: measured here, these take a cold start (up to
    # session.new answering) from about 4-7 s to about 3 s on two busy cores.
    "fission.autostart": False,
    "dom.ipc.processCount": 1,
    "dom.ipc.processPrelaunch.enabled": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.newtabpage.enabled": False,
    "browser.aboutwelcome.enabled": False,
    "startup.homepage_welcome_url": "about:blank",
    "app.normandy.enabled": False,
    "browser.search.update": False,
    "extensions.autoDisableScopes": 0,
    "browser.sessionstore.resume_from_crash": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "browser.region.network.url": "",
    "browser.places.importBookmarksHTML": False,
}


# --- Chromium ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def launch_chromium(
    *, netns: str | None = None, extra_args: Sequence[str] = ()
) -> AsyncIterator[Browser]:
    """Headless Debian Chromium driven by Playwright; closed on exit.

    With `netns`, Chromium runs inside that namespace (Playwright talks to it over a pipe, so
    the driver itself stays where pytest runs).
    """
    require_tool("chromium", "chromium")
    with tempfile.TemporaryDirectory(prefix="edgecam-chromium-") as tmp:
        executable = CHROMIUM_PATH
        if netns is not None:
            wrapper = Path(tmp) / "chromium-in-netns"
            argv = " ".join(shlex.quote(a) for a in netns_argv(netns, [CHROMIUM_PATH]))
            wrapper.write_text(f'#!/bin/sh\nexec {argv} "$@"\n')
            wrapper.chmod(0o755)
            executable = str(wrapper)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=executable,
                args=[*CHROMIUM_FLAGS, *extra_args],
                headless=True,
                timeout=30_000,
            )
            try:
                yield browser
            finally:
                await browser.close()


def _log_console(message: ConsoleMessage) -> None:
    logger.info("chromium console %s: %s", message.type, message.text)


async def open_page(
    browser: Browser,
    url: str | None = None,
    *,
    html: str | None = None,
    ignore_https_errors: bool = False,
) -> Page:
    """A new page in its own context, at `url` or showing `html`; console output is logged.

    The context has camera/microphone permission: without it Chromium lists no interface
    addresses for pages with an opaque origin (about:blank, data:, set_content) and gathers
    no host candidate at all (mDNS hiding being off). http://127.0.0.1 pages work either way.
    `ignore_https_errors=True` lets the page use https/wss servers with test-CA certificates
    (for example `MosquittoBroker(ws_tls=True).ws_url`).
    """
    # bypass_csp: the viewer's CSP forbids eval, which Playwright's wait_for_function uses.
    context = await browser.new_context(
        ignore_https_errors=ignore_https_errors, bypass_csp=True
    )
    await context.grant_permissions(["camera", "microphone"])
    page = await context.new_page()
    page.on("console", _log_console)
    page.on("pageerror", lambda exc: logger.warning("chromium page error: %s", exc))
    if url is not None:
        await page.goto(url)
    elif html is not None:
        await page.set_content(html)
    return page


async def evaluate(page: Page, js: str, arg: Any = None) -> Any:
    """Evaluate `js` (an expression or a function taking `arg`) and return its JSON value."""
    return await page.evaluate(js, arg)


async def page_webrtc_stats(page: Page, pc_expression: str = "window.pc") -> list[dict[str, Any]]:
    """`getStats()` of the RTCPeerConnection that `pc_expression` names, as a list of dicts."""
    stats: list[dict[str, Any]] = await page.evaluate(
        f"async () => Array.from((await ({pc_expression}).getStats()).values())"
    )
    return stats


async def wait_frames_decoded(
    page: Page, count: int, *, timeout: float = 30.0, pc_expression: str = "window.pc"
) -> dict[str, Any]:
    """Poll `getStats()` until the inbound video stream has decoded `count` frames; its entry.

    A test that needs N decoded frames must wait for `framesDecoded` itself: the page's count
    of presented frames can be ahead of it (seen here: 30 presented, then 29 decoded in a
    later getStats). Fails the test, naming the last count seen, at `timeout` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        stats = await page_webrtc_stats(page, pc_expression)
        inbound = next(
            (s for s in stats if s.get("type") == "inbound-rtp" and s.get("kind") == "video"),
            None,
        )
        decoded = None if inbound is None else inbound.get("framesDecoded", 0)
        if inbound is not None and decoded >= count:
            return inbound
        if loop.time() >= deadline:
            seen = "no inbound video stream" if inbound is None else f"{decoded} decoded"
            pytest.fail(f"{count} frames not decoded within {timeout} s ({seen})", pytrace=False)
        await asyncio.sleep(0.1)  # a poll interval: returns as soon as the count is reached


# --- Firefox over WebDriver BiDi ---------------------------------------------------------------


class BidiError(RuntimeError):
    """A BiDi command failed, or evaluated script threw."""


def deserialize(value: dict[str, Any]) -> Any:
    """A BiDi RemoteValue as a Python value (objects and maps as dicts)."""
    kind = value.get("type")
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean"):
        return value["value"]
    if kind == "number":
        number = value["value"]
        if isinstance(number, str):
            return {
                "NaN": float("nan"),
                "-0": -0.0,
                "Infinity": float("inf"),
                "-Infinity": float("-inf"),
            }[number]
        return number
    if kind == "bigint":
        return int(value["value"])
    if kind in ("array", "set"):
        return [deserialize(v) for v in value.get("value", [])]
    if kind in ("object", "map"):
        result: dict[Any, Any] = {}
        for key, item in value.get("value", []):
            result[key if isinstance(key, str) else deserialize(key)] = deserialize(item)
        return result
    return value


class FirefoxBidi:
    """A minimal WebDriver BiDi client bound to one Firefox and its first browsing context."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.context = ""
        self.console: list[str] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                future = self._pending.pop(message.get("id", -1), None)
                if future is not None:
                    if not future.done():
                        future.set_result(message)
                elif message.get("method") == "log.entryAdded":
                    entry = message["params"]
                    line = f"{entry.get('level')}: {entry.get('text')}"
                    self.console.append(line)
                    logger.info("firefox console %s", line)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(BidiError("connection to Firefox closed"))
            self._pending.clear()

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Send one command and return its `result` (raises BidiError on an error answer)."""
        if self._reader.done():
            raise BidiError("connection to Firefox closed")
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        await self.ws.send(json.dumps({"id": command_id, "method": method, "params": params or {}}))
        answer = await asyncio.wait_for(future, timeout)
        if answer.get("type") == "error":
            raise BidiError(f"{method}: {answer.get('error')}: {answer.get('message')}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def start_session(self) -> None:
        """session.new, then pick the first top-level browsing context; follow console logs."""
        await self.send(
            "session.new",
            {
                "capabilities": {
                    "alwaysMatch": {
                        "acceptInsecureCerts": True,
                        "unhandledPromptBehavior": {"default": "dismiss"},
                    }
                }
            },
        )
        tree = await self.send("browsingContext.getTree", {"maxDepth": 0})
        self.context = tree["contexts"][0]["context"]
        await self.send("session.subscribe", {"events": ["log.entryAdded"]})

    async def navigate(self, url: str) -> None:
        """browsingContext.navigate, waiting for the load to complete."""
        await self.send(
            "browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"}
        )

    async def evaluate(
        self, expression: str, *, await_promise: bool = True, timeout: float = 30.0
    ) -> Any:
        """script.evaluate in the page; returns the deserialized value or raises BidiError."""
        result = await self.send(
            "script.evaluate",
            {
                "expression": expression,
                "target": {"context": self.context},
                "awaitPromise": await_promise,
                "resultOwnership": "none",
            },
            timeout=timeout,
        )
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise BidiError(f"script threw: {details.get('text')}")
        return deserialize(result["result"])

    async def evaluate_json(self, expression: str, *, timeout: float = 30.0) -> Any:
        """Evaluate `expression` and move its value through JSON (simplest for nested data)."""
        text = await self.evaluate(
            f"(async () => JSON.stringify(await ({expression})))()", timeout=timeout
        )
        return None if text is None else json.loads(text)

    async def close(self) -> None:
        with contextlib.suppress(BidiError, asyncio.TimeoutError, OSError):
            await self.send("browser.close", timeout=5.0)
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


def write_firefox_profile(profile: Path, prefs: dict[str, bool | int | str]) -> None:
    profile.mkdir(parents=True, exist_ok=True)
    lines = [f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in prefs.items()]
    (profile / "user.js").write_text("\n".join(lines) + "\n")


_LISTENING = re.compile(rb"WebDriver BiDi listening on (ws://\S+)")


async def _wait_for_bidi_url(
    proc: subprocess.Popen[bytes], log: Path, offset: int, timeout: float
) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        with contextlib.suppress(OSError):
            match = _LISTENING.search(log.read_bytes()[offset:])
            if match:
                return match.group(1).decode()
        if proc.poll() is not None:
            raise RuntimeError(f"firefox exited with {proc.returncode}\n{log_tail(log)}")
        if loop.time() >= deadline:
            raise TimeoutError(f"firefox: no BiDi listener after {timeout} s\n{log_tail(log)}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def launch_firefox(
    workdir: Path,
    *,
    netns: str | None = None,
    prefs: dict[str, bool | int | str] | None = None,
    start_timeout: float = 30.0,
) -> AsyncIterator[FirefoxBidi]:
    """Headless firefox-esr with a fresh profile in `workdir`, as a started BiDi session."""
    firefox = require_tool("firefox-esr", "firefox-esr")
    workdir.mkdir(parents=True, exist_ok=True)
    profile = workdir / "profile"
    write_firefox_profile(profile, {**FIREFOX_PREFS, **(prefs or {})})
    port = free_port()
    log_path = workdir / "firefox.log"
    env = {**os.environ, "HOME": str(workdir), "MOZ_CRASHREPORTER_DISABLE": "1"}
    log: IO[bytes] = log_path.open("ab")
    offset = log.tell()
    proc = subprocess.Popen(
        netns_argv(
            netns,
            [
                firefox,
                "--headless",
                "--no-remote",
                "--profile",
                str(profile),
                "--remote-debugging-port",
                str(port),
                "about:blank",
            ],
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    bidi: FirefoxBidi | None = None
    try:
        url = await _wait_for_bidi_url(proc, log_path, offset, start_timeout)
        host, _, rest = url.removeprefix("ws://").partition(":")
        # Made inside the namespace (Firefox listens on that namespace's loopback).
        with netns_entered(netns):
            sock = socket.create_connection((host, int(rest.split("/")[0])), timeout=5)
        ws = await connect(f"{url.rstrip('/')}/session", sock=sock, max_size=None, open_timeout=10)
        bidi = FirefoxBidi(ws)
        await bidi.start_session()
        yield bidi
    finally:
        if bidi is not None:
            await bidi.close()
        stop_process(proc, timeout=5.0)
        log.close()


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium (in the namespace pytest runs in); closed after the test."""
    async with launch_chromium() as browser:
        yield browser


@pytest.fixture
async def firefox(tmp_path: Path) -> AsyncIterator[FirefoxBidi]:
    """A headless Firefox ESR with a started BiDi session; closed after the test."""
    async with launch_firefox(tmp_path / "firefox") as bidi:
        yield bidi
