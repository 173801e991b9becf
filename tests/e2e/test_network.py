"""Issue 11's acceptance: Chromium behind shaped paths. Hosts in network namespaces joined
by veth pairs through a router, which forwards through a userspace netem + tbf
(tests/infra/linkemu.py: this machine's kernel has no sch_netem).

A 2 Mbit/s 640x360 test pattern; the agent's bitrate controller runs as in the agent. The
bounds are the issue's, generous on purpose: these are behaviour checks, not benchmarks
(figures: `edgecam bench network`, docs/BENCHMARKS.md, "Network paths").
"""

from __future__ import annotations

import asyncio
import logging

from agent.net.session_stats import viewer_key
from tests.e2e.network_rig import network, network_rig, shape, until, watched_viewer
from tests.infra.netns import Topology

logger = logging.getLogger(__name__)

# "Recovered": the encoder back at 75% of the camera's 2 Mbit/s, within the 20 s.
# GCC grows additively (about a packet per rtt + 100 ms) near the capacity it measured at
# its overuses, until the throughput leaves that estimate behind and growth turns
# multiplicative; the policy then smooths increases. To 1.8 Mbit/s took 8.5-16 s here
# (docs/BENCHMARKS.md, "Network paths"): 1.5 Mbit/s keeps a margin on a slower machine.
RECOVERED = 1_500_000


async def test_bottleneck_then_recovery(netns_topology: Topology) -> None:
    with network(netns_topology, ["viewer"]) as net:
        async with network_rig(net) as rig:
            shape(net, "viewer", rate_kbit=1000, delay_ms=40)
            async with watched_viewer(rig, net.hosts["viewer"], "v1") as watch:
                start = watch.now
                below = await until(watch, lambda: rig.bitrate.encoder_bitrate < 1_000_000, 10.0)
                assert below is not None, (
                    f"encoder still at {rig.bitrate.encoder_bitrate} bps 10 s into a 1 Mbit/s path"
                )
                # The issue gives the sender 10 s to converge (what it sent at 2 Mbit/s until
                # then may still cost a freeze); from there on, no freeze over 1 s.
                settled = start + 10.0
                await asyncio.sleep(settled + 10.0 - watch.now)
                stall = watch.longest_stall(settled, watch.now)
                freezes = watch.freezes(settled, watch.now)
                logger.warning(
                    "1 Mbit/s: encoder below it after %.1f s; 10-20 s: longest stall %.2f s, "
                    "freezes %s, %.0f kbit/s received",
                    below - start,
                    stall,
                    freezes,
                    watch.received_kbps(settled, watch.now),
                )
                assert stall <= 1.0, f"video stalled {stall:.2f} s under the bottleneck"
                assert watch.fps(settled, watch.now) > 10

                shape(net, "viewer", delay_ms=40)
                restored = watch.now
                back = await until(watch, lambda: rig.bitrate.encoder_bitrate >= RECOVERED, 20.0)
                logger.warning(
                    "capacity restored: encoder back at %d bps after %s s",
                    rig.bitrate.encoder_bitrate,
                    None if back is None else round(back - restored, 1),
                )
                assert back is not None, (
                    f"encoder at {rig.bitrate.encoder_bitrate} bps 20 s after capacity returned"
                )


async def test_three_percent_loss_keeps_playing(netns_topology: Topology) -> None:
    with network(netns_topology, ["viewer"]) as net:
        async with network_rig(net) as rig:
            shape(net, "viewer", delay_ms=40, loss_percent=3.0)
            async with watched_viewer(rig, net.hosts["viewer"], "v1") as watch:
                await until(watch, lambda: bool(watch.samples), 10.0)
                start = watch.now
                await asyncio.sleep(12)
                [(_, _, stats)] = rig.stack.manager.stats()
                fps, stall = watch.fps(start, watch.now), watch.longest_stall(start, watch.now)
                logger.warning(
                    "3%% loss: %.1f fps, longest stall %.2f s, freezes %s, %d NACKs, %d resent, "
                    "%d frames dropped by the pacer, %d keyframe requests",
                    fps,
                    stall,
                    watch.freezes(start, watch.now),
                    getattr(stats, "nacks_received", 0),
                    getattr(stats, "retransmits", 0),
                    getattr(stats, "frames_dropped", 0),
                    getattr(stats, "keyframe_requests", 0),
                )
                assert getattr(stats, "nacks_received", 0) > 0
                assert getattr(stats, "retransmits", 0) > 0
                # "Keeps playing": most frames decoded, never 3 s without one (a lost keyframe
                # costs a keyframe request's round trip; such freezes are counted above).
                assert fps > 15, f"only {fps:.1f} frames/s decoded under 3% loss"
                assert stall < 3.0, f"no frame decoded for {stall:.2f} s under 3% loss"


async def test_a_slow_viewer_does_not_lower_the_other(netns_topology: Topology) -> None:
    floor = 600_000
    with network(netns_topology, ["fast", "slow"]) as net:
        async with network_rig(net, min_bitrate=floor) as rig:
            shape(net, "fast", delay_ms=20)
            shape(net, "slow", rate_kbit=300, delay_ms=40)
            async with (
                watched_viewer(rig, net.hosts["fast"], "fast") as fast_watch,
                watched_viewer(rig, net.hosts["slow"], "slow") as slow_watch,
            ):
                await asyncio.sleep(3)  # both estimates settle past the start
                start = fast_watch.now
                lowest = rig.bitrate.encoder_bitrate
                for _ in range(40):
                    await asyncio.sleep(0.25)
                    lowest = min(lowest, rig.bitrate.encoder_bitrate)
                stall = fast_watch.longest_stall(start, fast_watch.now)
                rows = {row["client"]: row for row in rig.stack.manager.rows()}
                logger.warning(
                    "two viewers, one at 300 kbit/s: encoder lowest %d bps, fast viewer stall "
                    "%.2f s freezes %s, slow viewer %.1f fps, below_floor %s",
                    lowest,
                    stall,
                    fast_watch.freezes(start, fast_watch.now),
                    slow_watch.fps(start, slow_watch.now),
                    rig.stack.manager.below_floor,
                )
                assert lowest >= floor
                assert stall <= 1.0, f"the fast viewer stalled {stall:.2f} s"
                assert rows["slow"]["below_floor"] is True and rows["fast"]["below_floor"] is False
                assert viewer_key("slow", "s1") in rig.stack.manager.below_floor
