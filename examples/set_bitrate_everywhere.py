"""Lower the bitrate of every online camera matching a glob, 8 at a time (plain script).

    python examples/set_bitrate_everywhere.py 'cam-*' 800000
"""

import os
import sys

from agent.client import SyncFleet

target, bitrate = sys.argv[1], int(sys.argv[2])
with SyncFleet(
    broker=os.environ["EDGECAM_BROKER"],
    ca=os.environ["EDGECAM_CA"],
    cert=os.environ["EDGECAM_CERT"],
    key=os.environ["EDGECAM_KEY"],
) as fleet:
    results = fleet.call_many(target, "stream.set", {"bitrate": bitrate}, concurrency=8)
for result in results:
    print(result.device, "ok" if result.ok else f"failed: {result.error}")
sys.exit(0 if all(r.ok for r in results) else 1)
