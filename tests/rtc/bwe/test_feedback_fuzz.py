"""agent/rtc/bwe: arbitrary feedback sequences (wraparound, reordering, gaps) never raise."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rtc.bwe import SendSideEstimator
from agent.rtc.rtcp import TWCC_LARGE_DELTA, TWCC_NOT_RECEIVED, TWCC_SMALL_DELTA, TransportWideCC

# Sequence numbers near the 16-bit wrap, so sent packets and feedback overlap and wrap.
near_wrap = st.integers(0xFFC0, 0x1003F).map(lambda n: n & 0xFFFF)


@st.composite
def feedback(draw: st.DrawFn) -> TransportWideCC:
    statuses = draw(
        st.lists(
            st.sampled_from([TWCC_NOT_RECEIVED, TWCC_SMALL_DELTA, TWCC_LARGE_DELTA]),
            min_size=1,
            max_size=40,
        )
    )
    deltas = [
        draw(st.integers(0, 255) if s == TWCC_SMALL_DELTA else st.integers(-32768, 32767))
        for s in statuses
        if s
    ]
    return TransportWideCC(
        sender_ssrc=1,
        media_ssrc=2,
        base_sequence=draw(near_wrap),
        reference_time=draw(st.integers(0, 0xFFFFFF)),
        feedback_count=draw(st.integers(0, 255)),
        statuses=tuple(statuses),
        deltas=tuple(deltas),
    )


Event = Callable[[SendSideEstimator, float], None]


def burst(first: int, count: int, size: int) -> Event:
    def send(estimator: SendSideEstimator, now: float) -> None:
        for i in range(count):
            estimator.on_packet_sent((first + i) & 0xFFFF, size, now + i * 1e-3)

    return send


events: st.SearchStrategy[Event] = st.one_of(
    st.builds(burst, near_wrap, st.integers(1, 60), st.integers(1, 1500)),
    st.builds(burst, st.integers(0, 0xFFFF), st.just(1), st.integers(1, 1500)),
    feedback().map(lambda fb: lambda e, now: e.on_transport_feedback(fb, now)),
    st.integers(0, 1 << 40).map(lambda bitrate: lambda e, now: e.on_remb(bitrate, now)),
    st.builds(
        lambda fraction, rtt: lambda e, now: e.on_loss_report(fraction, rtt, now),
        st.floats(allow_nan=True, allow_infinity=True),
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    ),
    st.integers(1, 10_000_000).map(lambda bitrate: lambda e, now: e.set_max_bitrate(bitrate)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(events, st.floats(0, 2)), max_size=40))
def test_any_sequence_of_inputs_keeps_the_target_within_bounds(
    script: list[tuple[Event, float]],
) -> None:
    estimator = SendSideEstimator(1_000_000, 50_000, 3_000_000)
    now = 0.0
    for event, gap in script:
        now += gap
        event(estimator, now)
        stats = estimator.stats()
        assert estimator.target_bitrate > 0
        assert stats.target_bitrate == estimator.target_bitrate
        assert stats.state in {"normal", "overusing", "underusing"}
        assert 0.0 <= stats.loss_fraction <= 1.0
