"""The JSON-RPC methods of PROTOCOL.md section 4, shared by MQTT and the datachannel."""

from __future__ import annotations

from agent.control import session, stream, webrtc
from agent.control.api import Device
from agent.signaling.rpc import MethodTable


def build_method_table(device: Device) -> MethodTable:
    table = MethodTable()
    webrtc.register(table, device)
    stream.register(table, device)
    session.register(table, device)
    return table
