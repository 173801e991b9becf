"""agent/rtc/pacer.py: paced output, retransmissions first, bounded queue, drop to keyframe."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rtc.pacer import Pacer

PACKET = 1200


def packets(count: int, tag: bytes = b"m") -> list[bytes]:
    return [tag + bytes(PACKET - 1) for _ in range(count)]


def drain(pacer: Pacer, until: float) -> list[tuple[float, bytes]]:
    """Run the pacer on its own timer up to `until`; (send time, packet) in order."""
    sent: list[tuple[float, bytes]] = []
    while (timer := pacer.get_timer()) is not None and timer <= until:
        sent += [(timer, packet) for packet in pacer.due(timer)]
    return sent


def max_bytes_in_window(sent: list[tuple[float, bytes]], window: float) -> int:
    best = 0
    for i, (start, _) in enumerate(sent):
        total = sum(len(p) for t, p in sent[i:] if t < start + window)
        best = max(best, total)
    return best


def test_a_keyframe_leaves_at_the_pacing_rate_not_in_one_burst() -> None:
    pacer = Pacer(1_000_000, burst=0.005, multiplier=2.5)
    assert pacer.enqueue_frame(packets(50), keyframe=True, now=0.0)
    sent = drain(pacer, until=10.0)
    assert len(sent) == 50
    rate = 1_000_000 * 2.5 / 8  # bytes per second
    # 50 packets at 2.5 Mbit/s take ~0.19 s: the last leaves no earlier than that.
    assert sent[-1][0] >= (50 * PACKET - rate * 0.005 - PACKET) / rate
    for window in (0.006, 0.01, 0.05, 0.1):
        assert max_bytes_in_window(sent, window) <= rate * (window + 0.005) + PACKET


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 0.2), st.integers(1, 30), st.booleans()), min_size=1, max_size=30
    ),
    st.integers(100_000, 5_000_000),
)
def test_no_window_longer_than_burst_exceeds_the_pacing_rate(
    frames: list[tuple[float, int, bool]], rate_bps: int
) -> None:
    pacer = Pacer(rate_bps)
    now, sent = 0.0, []
    for gap, count, keyframe in frames:
        sent += drain(pacer, until=now + gap)
        now += gap
        pacer.enqueue_frame(packets(count), keyframe, now)
        sent += [(now, p) for p in pacer.due(now)]
    sent += drain(pacer, until=now + 100)
    rate = pacer.pacing_rate / 8
    for window in (0.006, 0.02, 0.1):
        assert max_bytes_in_window(sent, window) <= rate * (window + 0.005) + PACKET


def test_retransmissions_leave_before_queued_media() -> None:
    pacer = Pacer(1_000_000)
    pacer.enqueue_frame(packets(20), keyframe=True, now=0.0)
    first = pacer.due(0.0)
    pacer.enqueue_retransmission(b"r" + bytes(PACKET - 1), now=0.001)
    rest = [p for _, p in drain(pacer, until=1.0)]
    assert rest[0][:1] == b"r"
    assert len(first) + len(rest) == 21


def test_the_queue_is_bounded_by_its_delay_and_drops_to_the_next_keyframe() -> None:
    pacer = Pacer(400_000, max_queue_delay=0.5, multiplier=1.0)  # 50 kB/s: 25 kB in 0.5 s
    assert pacer.enqueue_frame(packets(10), keyframe=True, now=0.0)
    accepted = [pacer.enqueue_frame(packets(5), keyframe=False, now=0.0) for _ in range(3)]
    assert accepted == [True, True, False]  # the third would wait longer than 0.5 s
    assert pacer.needs_keyframe and pacer.dropped_frames == 1
    assert pacer.queued_bytes * 8 / 400_000 <= 0.5
    drain(pacer, until=5.0)
    assert pacer.queued_bytes == 0
    # An empty queue, but the decoder lacks the dropped frame: deltas still go until a keyframe.
    assert not pacer.enqueue_frame(packets(1), keyframe=False, now=5.0)
    assert pacer.enqueue_frame(packets(3), keyframe=True, now=5.0)
    assert not pacer.needs_keyframe
    assert pacer.enqueue_frame(packets(1), keyframe=False, now=5.0)
    assert pacer.dropped_frames == 2


def test_a_keyframe_over_the_budget_replaces_the_queued_media() -> None:
    pacer = Pacer(400_000, max_queue_delay=0.5, multiplier=1.0)
    pacer.enqueue_frame(packets(15), keyframe=True, now=0.0)
    assert pacer.enqueue_frame(packets(15), keyframe=True, now=0.0)
    assert pacer.queued_bytes == 15 * PACKET
    assert pacer.dropped_frames == 1


def test_set_rate_changes_the_pacing_rate() -> None:
    pacer = Pacer(1_000_000, multiplier=2.0)
    pacer.set_rate(300_000)
    assert pacer.pacing_rate == 600_000
    pacer.enqueue_frame(packets(10), keyframe=True, now=0.0)
    sent = drain(pacer, until=10.0)
    assert sent[-1][0] >= (10 * PACKET * 8 - 600_000 * 0.005 - PACKET * 8) / 600_000


def test_the_timer_is_none_when_idle_and_due_is_empty_before_it() -> None:
    pacer = Pacer(1_000_000)
    assert pacer.get_timer() is None and pacer.due(0.0) == []
    pacer.enqueue_frame(packets(10), keyframe=True, now=1.0)
    assert pacer.get_timer() == 1.0
    pacer.due(1.0)
    timer = pacer.get_timer()
    assert timer is not None and timer > 1.0
    assert pacer.due(timer - 1e-6) == []
    assert len(pacer.due(timer)) >= 1


def test_retransmissions_that_would_arrive_stale_are_dropped() -> None:
    pacer = Pacer(100_000, max_queue_delay=0.1, multiplier=1.0)  # 1250 bytes of budget
    pacer.enqueue_retransmission(bytes(1000), now=0.0)
    pacer.enqueue_retransmission(bytes(1000), now=0.0)
    assert pacer.queued_bytes == 1000 and pacer.dropped_retransmissions == 1


def test_on_average_no_more_than_the_estimate_leaves_and_keyframes_still_do() -> None:
    # One encoder for many viewers: this viewer's estimate is under half the encoder's rate,
    # which its pacing rate (2.5 times the estimate) could carry, but its path could not.
    pacer = Pacer(250_000)
    sent: list[tuple[float, bytes]] = []
    for index in range(300):  # 10 s of ~600 kbit/s: 30 frames a second of 2.4 kB
        now = index / 30
        sent += drain(pacer, until=now)
        keyframe = index % 60 == 0
        frame = packets(10, b"k") if keyframe else packets(2)
        assert pacer.enqueue_frame(frame, keyframe, now) or not keyframe
        sent += [(now, p) for p in pacer.due(now)]
    sent += drain(pacer, until=10.5)
    assert sum(len(p) for _, p in sent) * 8 <= 250_000 * (10.5 + 1.0)  # estimate + a bucket
    key_times = [t for t, p in sent if p[:1] == b"k"]
    assert len(key_times) == 50  # every keyframe got through, whole
    for start in range(0, 300, 60):  # and each within the queue bound of being enqueued
        assert all(start / 30 <= t <= start / 30 + 0.5 for t in key_times[start // 6 :][:10])
    assert pacer.dropped_frames > 100
