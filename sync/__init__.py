"""Mirror and publish: the outbox relay, realtime stores and channels over a fan-out hub."""

from .channels import Channels, EventStream
from .events import ChangeEvent
from .hub import Hub
from .reads import ActivityPage, Reader
from .relay import Relay
from .stores import RealtimeStore, StoreUnavailable, UserState, create_store
from .subscribers import (
    ChannelDisconnected,
    ChannelError,
    Subscriber,
    SubscriberOverflow,
    SubscriptionClosed,
)

__all__ = [
    "ActivityPage",
    "ChangeEvent",
    "ChannelDisconnected",
    "ChannelError",
    "Channels",
    "EventStream",
    "Hub",
    "Reader",
    "RealtimeStore",
    "Relay",
    "StoreUnavailable",
    "Subscriber",
    "SubscriberOverflow",
    "SubscriptionClosed",
    "UserState",
    "create_store",
]
