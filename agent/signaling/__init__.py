"""MQTT signalling and the JSON-RPC dispatcher."""
