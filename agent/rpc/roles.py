"""Access levels of clients (PROTOCOL.md section 7), shared by config and the dispatcher."""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    """Access level of a client (PROTOCOL.md section 7); a higher value may do more."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3
