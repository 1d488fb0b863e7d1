"""Mirror and publish: the outbox relay, realtime stores and broadcast channels."""

from .broadcast import Broadcast, ChannelDisconnected, ChannelError, SubscriberOverflow
from .channels import Channels, EventStream
from .events import ChangeEvent
from .reads import ActivityPage, Reader
from .relay import Relay
from .stores import RealtimeStore, StoreUnavailable, UserState, create_store

__all__ = [
    "ActivityPage",
    "Broadcast",
    "ChangeEvent",
    "ChannelDisconnected",
    "ChannelError",
    "Channels",
    "EventStream",
    "Reader",
    "RealtimeStore",
    "Relay",
    "StoreUnavailable",
    "SubscriberOverflow",
    "UserState",
    "create_store",
]
