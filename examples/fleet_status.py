"""Print every device and its stream, from retained status (asyncio).

    EDGECAM_BROKER=mqtts://broker:8883 EDGECAM_CA=ca.pem EDGECAM_CERT=ops.pem \\
    EDGECAM_KEY=ops.key python examples/fleet_status.py
"""

import asyncio
import os

from agent.client import Fleet


async def main() -> None:
    async with Fleet(
        broker=os.environ["EDGECAM_BROKER"],
        ca=os.environ["EDGECAM_CA"],
        cert=os.environ["EDGECAM_CERT"],
        key=os.environ["EDGECAM_KEY"],
    ) as fleet:
        for device in await fleet.devices():
            print(device.id, device.state, device.viewers, device.stream)


asyncio.run(main())
