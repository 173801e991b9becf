"""A running `edgecam demo` process (from the checkout or from an installed venv) and what
it printed: the tests of the demo and of the wheel read the viewer URL from it."""

from __future__ import annotations

import asyncio
import re

URL = re.compile(rb"open (http://127\.0\.0\.1:\d+/\S*)")


class Demo:
    """A running `edgecam demo` and all it has printed so far (stdout and stderr)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output = bytearray()
        self.url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.output.extend(line)
            match = URL.search(line)
            if match and not self.url.done():
                self.url.set_result(match.group(1).decode())
        if not self.url.done():
            self.url.set_exception(AssertionError("edgecam demo ended without printing a URL"))

    def text(self) -> str:
        return self.output.decode(errors="replace")
