"""Send-side bandwidth estimation (GCC, draft-ietf-rmcat-gcc-02, as libwebrtc does it).

`estimator.SendSideEstimator` is the one public object: transport-wide CC feedback (or REMB)
and loss reports in, a target bitrate out. Inside, one concept per module: `sent_packets`
(matching feedback to what was sent), `inter_arrival` (send-time groups), `trendline`
(delay-gradient overuse detection), `aimd` (delay-based rate control), `acked_bitrate`
(measured throughput) and `loss_based` (the loss controller).
"""

from .estimator import BweStats, SendSideEstimator

__all__ = ["BweStats", "SendSideEstimator"]
