"""asyncio adapters: ICE on aioice and the loop that drives a sans-IO peer."""
