"""Change events: what the relay applies to the store and publishes on channels.

An event's ``kind`` says what its payload is. Code that handles each kind
branches on ``event.kind`` and reads :attr:`ChangeEvent.activity` or
:attr:`ChangeEvent.status`, typed payloads that refuse the wrong kind; its
exhaustive branches end in :func:`typing.assert_never`, so a new
:class:`OutboxKind` fails type-checking until every layer handles it::

    match event.kind:
        case OutboxKind.ACTIVITY:
            add(event.activity)
        case OutboxKind.STATUS:
            replace_status(event.status)
        case _:
            assert_never(event.kind)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from db.models import OutboxEntry, OutboxKind
from db.payloads import ActivityPayload, Payload, StatusPayload, parse

from .trace_context import valid_trace_parent

__all__ = ["ChangeEvent", "OutboxKind"]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One committed change of one user.

    Attributes:
        outbox_id: id of the outbox entry that carries it.
        user_id: whose change it is.
        seq: position in the user's change stream: 1, 2, 3, ... with no gaps,
            in commit order. Activities and status changes share the stream.
        kind: ``activity`` (payload is the added activity) or ``status``
            (payload is the full status after the change).
        payload: the snapshot, or ``None`` when the event travelled as a
            reference (too big for the broker) and has not been loaded yet.
            Its type agrees with ``kind``; read it through :attr:`activity`
            or :attr:`status`.
        committed_at: transaction time of the change, UTC.
        trace_parent: W3C ``traceparent`` of the span the change was
            committed in, or ``None`` (see :mod:`sync.trace_context`).
    """

    outbox_id: int
    user_id: str
    seq: int
    kind: OutboxKind
    payload: Payload | None
    committed_at: datetime
    trace_parent: str | None = None

    @property
    def activity(self) -> ActivityPayload:
        """The added activity.

        Raises:
            TypeError: the event is not an activity.
            ValueError: the payload has not been loaded.
        """
        if self.kind is not OutboxKind.ACTIVITY:
            raise TypeError(f"event {self.outbox_id} is a {self.kind}, not an activity")
        return cast(ActivityPayload, self._loaded())

    @property
    def status(self) -> StatusPayload:
        """The user's status after the change.

        Raises:
            TypeError: the event is not a status change.
            ValueError: the payload has not been loaded.
        """
        if self.kind is not OutboxKind.STATUS:
            raise TypeError(f"event {self.outbox_id} is a {self.kind}, not a status")
        return cast(StatusPayload, self._loaded())

    def _loaded(self) -> Payload:
        # from_entry, decode and with_payload check the payload against the kind.
        if self.payload is None:
            raise ValueError(f"event {self.outbox_id} has no payload loaded")
        return self.payload

    @classmethod
    def from_entry(cls, entry: OutboxEntry) -> ChangeEvent:
        """The event an outbox entry carries.

        Raises:
            db.payloads.InvalidPayload: the entry's payload does not fit its kind.
        """
        kind = OutboxKind(entry.kind)
        return cls(
            outbox_id=entry.id,
            user_id=entry.user_id,
            seq=entry.seq,
            kind=kind,
            payload=parse(kind, entry.payload),
            committed_at=entry.committed_at,
            trace_parent=valid_trace_parent(entry.trace_parent),
        )

    def encode(self, *, max_bytes: int | None = None) -> str:
        """The JSON text published on a channel.

        When the full text would exceed ``max_bytes`` (UTF-8), the payload is
        left out and receivers load it from the outbox by ``outbox_id``.
        """
        body = {
            "o": self.outbox_id,
            "u": self.user_id,
            "s": self.seq,
            "k": self.kind.value,
            "t": self.committed_at.isoformat(),
            "p": self.payload,
        }
        if self.trace_parent is not None:
            body["c"] = self.trace_parent
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        if max_bytes is not None and len(text.encode()) > max_bytes:
            body["p"] = None
            text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        return text

    @classmethod
    def decode(cls, text: str) -> ChangeEvent:
        """Parse :meth:`encode` output.

        Raises:
            ValueError: anything else, including a payload that does not fit
                the event's kind (:class:`db.payloads.InvalidPayload`).
        """
        try:
            body = json.loads(text)
            kind = OutboxKind(body["k"])
            raw = body["p"]
            return cls(
                outbox_id=int(body["o"]),
                user_id=str(body["u"]),
                seq=int(body["s"]),
                kind=kind,
                payload=None if raw is None else parse(kind, raw),
                committed_at=datetime.fromisoformat(body["t"]),
                trace_parent=valid_trace_parent(body.get("c")),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a change event: {text[:200]!r}") from exc

    def with_payload(self, payload: Mapping[str, Any]) -> ChangeEvent:
        """This event carrying ``payload``, e.g. one loaded from its outbox entry.

        Raises:
            db.payloads.InvalidPayload: ``payload`` does not fit the event's kind.
        """
        return replace(self, payload=parse(self.kind, payload))
