"""What several test modules share: a client for both WebSocket subprotocols, documents, and
real doubles (``publishers``)."""

from .documents import ACTIVITY_ADDED, FEED, STATUS_CHANGED
from .protocol import LEGACY_WS, TRANSPORT_WS, Protocol, closed_with, wait_subscribed

__all__ = [
    "ACTIVITY_ADDED",
    "FEED",
    "LEGACY_WS",
    "STATUS_CHANGED",
    "TRANSPORT_WS",
    "Protocol",
    "closed_with",
    "wait_subscribed",
]
