"""Stream reset by RE-CONFIG (RFC 6525), the way RFC 8831 6.7 closes a data channel.

We only ever reset our outgoing streams (the peer resets its own in reply). An outgoing
request waits until every queued message of those streams has its TSN; a request from the
peer waits ("deferred reset processing") until our cumulative TSN reaches its last TSN.
"""

from __future__ import annotations

import logging

from agent.rtc.sctp.events import StreamsReset
from agent.rtc.sctp.inbound import InboundTsns
from agent.rtc.sctp.outbound import Outbound
from agent.rtc.sctp.reassembly import Reassembly
from agent.rtc.sctp.reconfig import (
    RESULT_ERROR_BAD_SEQUENCE,
    RESULT_IN_PROGRESS,
    RESULT_SUCCESS_NOTHING_TO_DO,
    RESULT_SUCCESS_PERFORMED,
    IncomingResetRequest,
    OutgoingResetRequest,
    ReConfig,
    ReconfigResponse,
)
from agent.rtc.sctp.tsn import TSN_MASK, tsn_add, tsn_ge

logger = logging.getLogger(__name__)


class StreamResets:
    """Our outstanding request, the streams waiting to be reset, the peer's deferred one."""

    def __init__(self, local_initial_tsn: int, peer_initial_tsn: int) -> None:
        self.next_request_seq = local_initial_tsn
        self.peer_expected_seq = peer_initial_tsn
        self.pending: set[int] = set()
        self.outstanding: OutgoingResetRequest | None = None
        self.deadline: float | None = None
        self.deferred: OutgoingResetRequest | None = None
        self._last_result = RESULT_SUCCESS_NOTHING_TO_DO

    def request(self, stream_ids: list[int]) -> None:
        self.pending.update(stream_ids)

    def poll(self, outbound: Outbound, now: float, rto: float) -> ReConfig | None:
        """A new request once no queued data of the pending streams is left to number."""
        if self.outstanding is not None or not self.pending or outbound.has_unsent(self.pending):
            return None
        self.outstanding = OutgoingResetRequest(
            request_seq=self.next_request_seq,
            response_seq=(self.peer_expected_seq - 1) & TSN_MASK,
            last_tsn=tsn_add(outbound.next_tsn, -1),
            stream_ids=tuple(sorted(self.pending)),
        )
        self.pending.clear()
        self.deadline = now + rto
        return ReConfig((self.outstanding,))

    def on_timer(self, now: float, rto: float) -> ReConfig | None:
        if self.outstanding is None:
            self.deadline = None
            return None
        self.deadline = now + rto
        return ReConfig((self.outstanding,))

    def on_response(self, response: ReconfigResponse, outbound: Outbound) -> StreamsReset | None:
        request = self.outstanding
        if request is None or response.response_seq != request.request_seq:
            return None
        if response.result == RESULT_IN_PROGRESS:
            return None  # the timer asks again
        self.outstanding = None
        self.deadline = None
        self.next_request_seq = tsn_add(self.next_request_seq, 1)
        if response.result not in (RESULT_SUCCESS_PERFORMED, RESULT_SUCCESS_NOTHING_TO_DO):
            logger.warning(
                "peer refused stream reset of %s: result %d", request.stream_ids, response.result
            )
            return None
        outbound.reset_ssns(request.stream_ids)
        return StreamsReset(request.stream_ids, incoming=False)

    def on_outgoing_request(
        self, request: OutgoingResetRequest, inbound: InboundTsns, reassembly: Reassembly
    ) -> tuple[ReconfigResponse, StreamsReset | None]:
        """The peer resets its outgoing streams: perform now, defer, or refuse."""
        if request.request_seq == (self.peer_expected_seq - 1) & TSN_MASK:
            return ReconfigResponse(request.request_seq, self._last_result), None
        if request.request_seq != self.peer_expected_seq:
            return ReconfigResponse(request.request_seq, RESULT_ERROR_BAD_SEQUENCE), None
        if not tsn_ge(inbound.cumulative, request.last_tsn):
            self.deferred = request
            return ReconfigResponse(request.request_seq, RESULT_IN_PROGRESS), None
        return self._perform(request, reassembly)

    def on_incoming_request(self, request: IncomingResetRequest) -> ReconfigResponse:
        """The peer asks us to reset our outgoing streams: queue them, say it is under way."""
        if request.request_seq != self.peer_expected_seq:
            return ReconfigResponse(request.request_seq, RESULT_ERROR_BAD_SEQUENCE)
        self.peer_expected_seq = tsn_add(self.peer_expected_seq, 1)
        self._last_result = RESULT_SUCCESS_PERFORMED
        self.pending.update(request.stream_ids)
        return ReconfigResponse(request.request_seq, RESULT_SUCCESS_PERFORMED)

    def check_deferred(
        self, inbound: InboundTsns, reassembly: Reassembly
    ) -> tuple[ReconfigResponse, StreamsReset | None] | None:
        request = self.deferred
        if request is None or not tsn_ge(inbound.cumulative, request.last_tsn):
            return None
        self.deferred = None
        return self._perform(request, reassembly)

    def _perform(
        self, request: OutgoingResetRequest, reassembly: Reassembly
    ) -> tuple[ReconfigResponse, StreamsReset | None]:
        self.deferred = None
        self.peer_expected_seq = tsn_add(self.peer_expected_seq, 1)
        self._last_result = RESULT_SUCCESS_PERFORMED
        for stream_id in request.stream_ids:
            reassembly.reset_stream(stream_id)
        return (
            ReconfigResponse(request.request_seq, RESULT_SUCCESS_PERFORMED),
            StreamsReset(request.stream_ids, incoming=True),
        )
