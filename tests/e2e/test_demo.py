"""`edgecam demo` on this checkout, then Chromium at the printed URL: it plays, Ctrl-C stops it.

The demo runs with the Python running the tests (`python -m agent.tools.cli`), so the test needs
nothing from how that environment was made (`make`, or `pip install -e '.[dev]'`). Whatever
fails, the failure shows everything the demo printed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.infra.browsers import launch_chromium, open_page
from tests.infra.demo_process import Demo

ROOT = Path(__file__).resolve().parents[2]
VENDORED_MQTT = ROOT / "agent" / "web" / "vendor" / "mqtt.min.js"


@asynccontextmanager
async def running_demo(*args: str) -> AsyncIterator[Demo]:
    """`edgecam demo ARGS` in its own process group; any failure inside carries its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent.tools.cli",
        "demo",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    demo = Demo(process)
    try:
        yield demo
    except Exception as exc:
        raise AssertionError(f"{exc!r}\n--- edgecam demo printed ---\n{demo.text()}") from exc
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await demo.reader


async def test_edgecam_demo_prints_a_url_that_plays_in_chromium() -> None:
    if not VENDORED_MQTT.exists():
        pytest.fail(
            f"{VENDORED_MQTT.relative_to(ROOT)} missing (the viewer page needs it): "
            "run `make web-deps`",
            pytrace=False,
        )
    async with running_demo("--port", "0", "--size", "640x360") as demo:
        url = await asyncio.wait_for(demo.url, 60)
        async with launch_chromium() as browser:
            page = await open_page(browser, url)
            await page.wait_for_function(
                "window.edgecam && window.edgecam.framesDecoded() >= 60", timeout=60_000
            )
            codec = await page.evaluate("window.edgecam.stats().codec")
            assert codec.startswith("H264")
            assert (await page.evaluate("window.edgecam.stats().width")) == 640
        os.killpg(demo.process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        await asyncio.wait_for(demo.process.wait(), 30)
        await demo.reader
        assert "edgecam demo stopped" in demo.text()
