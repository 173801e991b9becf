"""A per-client budget of log lines, so no client can fill an SD card with our complaints.

Each client may cause `burst` lines at once and `rate` lines per second after that; lines
beyond the budget are counted, and the next line that fits says how many were suppressed.
"""

from __future__ import annotations

import logging
from typing import Final

from agent.rpc.ratelimit import PerKeyLimiter

LOG_RATE: Final = 0.2  # one line per 5 s per client once the burst is spent
LOG_BURST: Final = 10
MAX_CLIENTS: Final = 1024


class LogBudget:
    """Log lines on behalf of clients, at most so many per client (in time ``now``)."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        rate: float = LOG_RATE,
        burst: float = LOG_BURST,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self._logger = logger
        self._limiter = PerKeyLimiter(rate, burst, max_clients)
        self._suppressed: dict[str, int] = {}
        self.suppressed_total = 0

    def log(
        self,
        client: str,
        now: float,
        level: int,
        message: str,
        *args: object,
        logger: logging.Logger | None = None,
    ) -> bool:
        """Log ``message % args`` (to ``logger``, else the budget's own) if ``client`` has
        budget left; False when suppressed. One budget shared by every layer that logs on a
        client's behalf keeps the client's total, not each layer's, bounded."""
        if not self._limiter.allow(client, now):
            if client in self._suppressed or len(self._suppressed) < MAX_CLIENTS:
                self._suppressed[client] = self._suppressed.get(client, 0) + 1
            self.suppressed_total += 1
            return False
        missed = self._suppressed.pop(client, 0)
        if missed:
            message += " (%d earlier lines for this client suppressed)"
            args = (*args, missed)
        (logger or self._logger).log(level, message, *args)
        return True
