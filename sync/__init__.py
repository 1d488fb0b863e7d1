"""Mirror and publish: the outbox relay, realtime stores and broadcast channels."""

from .broadcast import Broadcast, ChannelDisconnected, ChannelError, SubscriberOverflow
from .channels import Channels, EventStream
from .events import ChangeEvent
from .leadership import Leadership, store_reset
from .mirror import StoreMirror
from .reads import ActivityPage, Reader
from .relay import Publisher, Relay
from .stores import RealtimeStore, StoreUnavailable, UserState, create_store
from .writes import Waiters, Writer

__all__ = [
    "ActivityPage",
    "Broadcast",
    "ChangeEvent",
    "ChannelDisconnected",
    "ChannelError",
    "Channels",
    "EventStream",
    "Leadership",
    "Publisher",
    "Reader",
    "RealtimeStore",
    "Relay",
    "StoreMirror",
    "StoreUnavailable",
    "SubscriberOverflow",
    "UserState",
    "Waiters",
    "Writer",
    "create_store",
    "store_reset",
]
