"""Mirror and publish: the outbox relay, realtime stores and channels over a fan-out hub."""

from .channels import Channels, EventStream
from .escalation import Escalator
from .events import ChangeEvent
from .hub import Hub
from .leadership import Leadership, store_reset
from .mirror import StoreMirror
from .reads import ActivityPage, Reader, StatusPage
from .relay import Publisher, Relay
from .stores import RealtimeStore, StoreUnavailable, UserState, create_store
from .subscribers import (
    ChannelDisconnected,
    ChannelError,
    Subscriber,
    SubscriberOverflow,
    SubscriptionClosed,
)
from .writes import Waiters, Writer

__all__ = [
    "ActivityPage",
    "ChangeEvent",
    "ChannelDisconnected",
    "ChannelError",
    "Channels",
    "Escalator",
    "EventStream",
    "Hub",
    "Leadership",
    "Publisher",
    "Reader",
    "RealtimeStore",
    "Relay",
    "StatusPage",
    "StoreMirror",
    "StoreUnavailable",
    "Subscriber",
    "SubscriberOverflow",
    "SubscriptionClosed",
    "UserState",
    "Waiters",
    "Writer",
    "create_store",
    "store_reset",
]
