"""Change events: what the relay applies to the store and publishes on channels."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from db.models import OutboxEntry, OutboxKind

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
        committed_at: transaction time of the change, UTC.
    """

    outbox_id: int
    user_id: str
    seq: int
    kind: OutboxKind
    payload: dict[str, Any] | None
    committed_at: datetime

    @classmethod
    def from_entry(cls, entry: OutboxEntry) -> ChangeEvent:
        return cls(
            outbox_id=entry.id,
            user_id=entry.user_id,
            seq=entry.seq,
            kind=OutboxKind(entry.kind),
            payload=entry.payload,
            committed_at=entry.committed_at,
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
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        if max_bytes is not None and len(text.encode()) > max_bytes:
            body["p"] = None
            text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        return text

    @classmethod
    def decode(cls, text: str) -> ChangeEvent:
        """Parse :meth:`encode` output. Raises ``ValueError`` on anything else."""
        try:
            body = json.loads(text)
            return cls(
                outbox_id=int(body["o"]),
                user_id=str(body["u"]),
                seq=int(body["s"]),
                kind=OutboxKind(body["k"]),
                payload=body["p"],
                committed_at=datetime.fromisoformat(body["t"]),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a change event: {text[:200]!r}") from exc

    def with_payload(self, payload: dict[str, Any]) -> ChangeEvent:
        return replace(self, payload=payload)
