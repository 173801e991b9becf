"""`make demo` on this checkout, then Chromium at the printed URL: it plays, Ctrl-C stops it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

from tests.infra.browsers import launch_chromium, open_page

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(rb"open (http://127\.0\.0\.1:\d+/\S*)")


async def test_make_demo_prints_a_url_that_plays_in_chromium() -> None:
    demo = await asyncio.create_subprocess_exec(
        "make",
        "-s",
        "demo",
        "DEMO_ARGS=--port 0 --size 640x360",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert demo.stdout is not None
    output = b""
    try:
        async with asyncio.timeout(120):  # a first run installs the Python packages
            while (match := URL.search(output)) is None:
                line = await demo.stdout.readline()
                assert line, f"make demo ended without printing a URL:\n{output.decode()}"
                output += line
        url = match.group(1).decode()
        async with launch_chromium() as browser:
            page = await open_page(browser, url)
            await page.wait_for_function(
                "window.edgecam && window.edgecam.framesDecoded() >= 60", timeout=60_000
            )
            codec = await page.evaluate("window.edgecam.stats().codec")
            assert codec.startswith("H264")
            assert (await page.evaluate("window.edgecam.stats().width")) == 640
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        rest, _ = await asyncio.wait_for(demo.communicate(), 30)
        assert b"edgecam demo stopped" in rest, (output + rest).decode()
    finally:
        if demo.returncode is None:
            os.killpg(demo.pid, signal.SIGKILL)
            await demo.wait()
