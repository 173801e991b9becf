"""Print session and camera events of the whole fleet as they happen; Ctrl-C stops.

    python examples/watch_events.py
"""

import asyncio
import contextlib
import os

from agent.client import Fleet


async def main() -> None:
    async with Fleet(
        broker=os.environ["EDGECAM_BROKER"],
        ca=os.environ["EDGECAM_CA"],
        cert=os.environ["EDGECAM_CERT"],
        key=os.environ["EDGECAM_KEY"],
    ) as fleet:
        async for message in fleet.events("all"):
            print(message.device, message.body.get("event"), message.body)


with contextlib.suppress(KeyboardInterrupt):
    asyncio.run(main())
