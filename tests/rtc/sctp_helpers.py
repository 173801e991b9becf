"""Two associations on a virtual network, with their events collected."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.rtc.sctp import Association, AssociationEvent, Connected, MessageReceived
from agent.rtc.sctp.packet import Packet
from tests.rtc.sctp_net import Network, Sent


@dataclass
class Recorder:
    """Wraps an association so the network's receive/timer calls also drain its events."""

    association: Association
    events: list[AssociationEvent] = field(default_factory=list)

    def receive(self, data: bytes, now: float) -> None:
        self.association.receive(data, now)
        self.drain()

    def datagrams_to_send(self) -> list[bytes]:
        return self.association.datagrams_to_send()

    def get_timer(self) -> float | None:
        return self.association.get_timer()

    def handle_timer(self, now: float) -> None:
        self.association.handle_timer(now)
        self.drain()

    def drain(self) -> None:
        while (event := self.association.next_event()) is not None:
            self.events.append(event)

    def messages(self) -> list[MessageReceived]:
        return [e for e in self.events if isinstance(e, MessageReceived)]

    @property
    def connected(self) -> bool:
        return any(isinstance(e, Connected) for e in self.events)


def make_pair(**network: object) -> tuple[Recorder, Recorder, Network]:
    big = 64 * 1024 * 1024
    a = Recorder(Association(role_is_client=True, name="a", max_message_size=big))
    b = Recorder(Association(role_is_client=False, name="b", max_message_size=big))
    return a, b, Network(a, b, **network)  # type: ignore[arg-type]


def connected_pair(**network: object) -> tuple[Recorder, Recorder, Network]:
    a, b, net = make_pair(**network)
    a.association.connect(net.now)
    net.run(lambda: a.connected and b.connected)
    return a, b, net


def chunk_names(sent: Sent) -> list[str]:
    return [type(c).__name__ for c in Packet.parse(sent.data).chunks]
