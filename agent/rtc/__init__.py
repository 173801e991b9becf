"""Sans-IO WebRTC core: nothing here imports asyncio, socket, threading or time."""
