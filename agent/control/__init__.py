"""The JSON-RPC methods of PROTOCOL.md section 4, shared by MQTT and the datachannel."""

from __future__ import annotations

from agent.control import camera, config, session, stream, webrtc
from agent.control.api import Device
from agent.rpc.methods import MethodTable


def build_method_table(device: Device) -> MethodTable:
    table = MethodTable()
    for family in (webrtc, stream, camera, session, config):
        family.register(table, device)
    return table
