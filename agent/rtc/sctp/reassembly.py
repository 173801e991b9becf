"""Fragments to messages (RFC 9260 6.9), then per-stream order (SSNs) for ordered ones.

Fragments of one message have consecutive TSNs. Each (stream, ordered-or-not) keeps runs of
consecutive fragments that may still be one message: a run never extends past an END or
before a BEGIN, so joining a fragment to its neighbours is O(1) and a message is complete
when its run starts with BEGIN and ends with END. Every step is linear in the bytes held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.rtc.sctp.data_chunks import Data
from agent.rtc.sctp.tsn import TSN_MASK, ssn_add, ssn_gt, tsn_gt


class ReassemblyError(ValueError):
    """The peer broke the rules: a message over the limit, or fragments that disagree."""


@dataclass(frozen=True, slots=True)
class Message:
    stream_id: int
    ssn: int
    ppid: int
    data: bytes
    unordered: bool


@dataclass(slots=True)
class _Runs:
    fragments: dict[int, Data] = field(default_factory=dict)
    by_start: dict[int, int] = field(default_factory=dict)  # start TSN -> end TSN
    by_end: dict[int, int] = field(default_factory=dict)  # end TSN -> start TSN
    sizes: dict[int, int] = field(default_factory=dict)  # start TSN -> bytes in the run


class Reassembly:
    """Holds fragments and out-of-order messages; ``bytes_held`` is what the window counts."""

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self.bytes_held = 0
        self._runs: dict[tuple[int, bool], _Runs] = {}
        self._next_ssn: dict[int, int] = {}
        self._waiting: dict[int, dict[int, Message]] = {}  # stream -> ssn -> message

    def _too_large(self, size: int) -> str:
        return (
            f"received message of {size}+ bytes exceeds our a=max-message-size "
            f"{self.max_message_size}"
        )

    def add(self, chunk: Data) -> list[Message]:
        """Take one new DATA chunk; return the messages it makes deliverable, in order."""
        if chunk.begin and chunk.end:
            message = Message(
                chunk.stream_id, chunk.ssn, chunk.ppid, chunk.user_data, chunk.unordered
            )
            if len(chunk.user_data) > self.max_message_size:
                raise ReassemblyError(self._too_large(len(chunk.user_data)))
            return self._order(message)
        completed = self._add_fragment(chunk)
        return self._order(completed) if completed else []

    def forward(self, new_cumulative: int, streams: tuple[tuple[int, int], ...]) -> list[Message]:
        """FORWARD TSN: drop fragments up to the new point, skip ordered SSNs named."""
        for runs in self._runs.values():
            # Every fragment is in exactly one run; a run starting at or below the new
            # point belongs to an abandoned message (even if a broken peer cut it in two).
            for start in [s for s in runs.by_start if not tsn_gt(s, new_cumulative)]:
                self._drop_run(runs, start)
        delivered: list[Message] = []
        for stream_id, ssn in streams:
            expected = self._next_ssn.get(stream_id, 0)
            if not ssn_gt(expected, ssn):
                self._next_ssn[stream_id] = ssn_add(ssn, 1)
                waiting = self._waiting.get(stream_id, {})
                for old in [s for s in waiting if not ssn_gt(s, ssn)]:
                    self.bytes_held -= len(waiting.pop(old).data)
                delivered += self._drain(stream_id)
        return delivered

    def reset_stream(self, stream_id: int) -> None:
        """An incoming stream was reset: its SSNs start again at 0."""
        self._next_ssn[stream_id] = 0
        for message in self._waiting.pop(stream_id, {}).values():
            self.bytes_held -= len(message.data)

    def _add_fragment(self, chunk: Data) -> Message | None:
        runs = self._runs.setdefault((chunk.stream_id, chunk.unordered), _Runs())
        tsn = chunk.tsn
        if tsn in runs.fragments:
            return None
        runs.fragments[tsn] = chunk
        self.bytes_held += len(chunk.user_data)
        start = end = tsn
        size = len(chunk.user_data)
        left = (tsn - 1) & TSN_MASK
        if not chunk.begin and left in runs.by_end and not runs.fragments[left].end:
            start = runs.by_end.pop(left)
            del runs.by_start[start]
            size += runs.sizes.pop(start)
        right = (tsn + 1) & TSN_MASK
        if not chunk.end and right in runs.by_start and not runs.fragments[right].begin:
            end = runs.by_start.pop(right)
            del runs.by_end[end]
            size += runs.sizes.pop(right)
        runs.by_start[start] = end
        runs.by_end[end] = start
        runs.sizes[start] = size
        if size > self.max_message_size:
            raise ReassemblyError(self._too_large(size))
        if runs.fragments[start].begin and runs.fragments[end].end:
            return self._extract(runs, start, end)
        return None

    def _extract(self, runs: _Runs, start: int, end: int) -> Message:
        del runs.by_start[start]
        del runs.by_end[end]
        size = runs.sizes.pop(start)
        first = runs.fragments[start]
        parts: list[bytes] = []
        tsn = start
        while True:
            fragment = runs.fragments.pop(tsn)
            if not fragment.unordered and fragment.ssn != first.ssn:
                raise ReassemblyError("fragments of one message carry different SSNs")
            parts.append(fragment.user_data)
            if tsn == end:
                break
            tsn = (tsn + 1) & TSN_MASK
        self.bytes_held -= size
        return Message(first.stream_id, first.ssn, first.ppid, b"".join(parts), first.unordered)

    def _drop_run(self, runs: _Runs, start: int) -> None:
        end = runs.by_start.pop(start)
        del runs.by_end[end]
        self.bytes_held -= runs.sizes.pop(start)
        tsn = start
        while True:
            del runs.fragments[tsn]
            if tsn == end:
                return
            tsn = (tsn + 1) & TSN_MASK

    def _order(self, message: Message) -> list[Message]:
        if message.unordered:
            return [message]
        stream = message.stream_id
        expected = self._next_ssn.get(stream, 0)
        if message.ssn == expected:
            self._next_ssn[stream] = ssn_add(expected, 1)
            return [message, *self._drain(stream)]
        if ssn_gt(message.ssn, expected):
            self._waiting.setdefault(stream, {})[message.ssn] = message
            self.bytes_held += len(message.data)
        return []  # an SSN already delivered or skipped: a stale retransmission

    def _drain(self, stream: int) -> list[Message]:
        waiting = self._waiting.get(stream)
        delivered: list[Message] = []
        expected = self._next_ssn.get(stream, 0)
        while waiting and expected in waiting:
            message = waiting.pop(expected)
            self.bytes_held -= len(message.data)
            delivered.append(message)
            expected = ssn_add(expected, 1)
        self._next_ssn[stream] = expected
        return delivered
