"""A client for fleets of edgecam devices over the MQTT contract (docs/PROTOCOL.md).

    from agent.client import Fleet

    async with Fleet(broker="mqtts://broker:8883", ca="ca.pem", cert="ops.pem",
                     key="ops.key") as fleet:
        for device in await fleet.devices():
            print(device.id, device.state)
        await fleet.call("cam-01", "stream.set", bitrate=1_000_000)
        results = await fleet.call_many("cam-*", "device.status")
        async for event in fleet.events("cam-*"):
            print(event.device, event.body)

`SyncFleet` is the same for scripts without asyncio. `edgecam ctl` is built on this package.
"""

from agent.client.connection import FleetSettings
from agent.client.errors import (
    CallTimeout,
    ConnectError,
    DeviceOffline,
    FleetError,
    NotAuthorised,
    RpcCallError,
    UnknownDevice,
)
from agent.client.fleet import Fleet, is_pattern
from agent.client.models import CallResult, DeviceInfo, DeviceMessage
from agent.client.sync import SyncFleet

__all__ = [
    "CallResult",
    "CallTimeout",
    "ConnectError",
    "DeviceInfo",
    "DeviceMessage",
    "DeviceOffline",
    "Fleet",
    "FleetError",
    "FleetSettings",
    "NotAuthorised",
    "RpcCallError",
    "SyncFleet",
    "UnknownDevice",
    "is_pattern",
]
