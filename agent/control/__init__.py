"""The JSON-RPC methods, shared by MQTT and the datachannel."""
