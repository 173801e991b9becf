"""The two kinds of SDP failure: the peer's offer, or our own call (h11's lesson)."""

from __future__ import annotations


class NegotiationError(ValueError):
    """An offer the device cannot answer; the message names what is missing or incompatible.

    The peer's fault: the signalling layer passes the message to the client (-32004).
    """


class LocalUsageError(TypeError):
    """Our own code called the SDP API with invalid arguments: a bug of ours, not the peer's.

    Deliberately not a ValueError: NegotiationError is one (the parse convention of every wire
    format here), so a handler that maps ValueError to "the client's input is bad" can never
    catch our bug by accident; it surfaces as an internal error (-32603) with a traceback.
    """
