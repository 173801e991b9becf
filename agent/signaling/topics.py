"""The MQTT topic layout of one device (PROTOCOL.md section 2)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    """``P/D/...`` topics of device ``D`` under prefix ``P``."""

    prefix: str
    device: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def telemetry(self) -> str:
        return f"{self.base}/telemetry"

    @property
    def rpc_subscription(self) -> str:
        """What the device subscribes to: every client's request topic."""
        return f"{self.base}/rpc/+"

    def reply(self, client: str) -> str:
        """Where responses and notifications for ``client`` go."""
        return f"{self.base}/rpc/{client}/reply"

    def client_of(self, topic: str) -> str | None:
        """The client id of a request topic ``P/D/rpc/C``; None for any other topic."""
        head = f"{self.base}/rpc/"
        if not topic.startswith(head):
            return None
        client = topic[len(head) :]
        return client if client and "/" not in client else None
