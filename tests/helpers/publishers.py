"""A real in-memory :class:`sync.Publisher` for relay tests, instead of patching channels."""

from __future__ import annotations

from sync import ChangeEvent, Publisher


class RecordingPublisher:
    """Keeps every event it publishes, and forwards it to ``forward`` if given.

    Attributes:
        published: the events published, in order.
        down: while true, every publish fails as an unreachable broker does.
        fail_next: that many publishes fail before the next one goes through.
        attempts: publishes tried, failed ones included.
    """

    def __init__(self, forward: Publisher | None = None) -> None:
        self._forward = forward
        self.published: list[ChangeEvent] = []
        self.down = False
        self.fail_next = 0
        self.attempts = 0

    async def publish(self, event: ChangeEvent) -> None:
        self.attempts += 1
        if self.down or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            raise ConnectionError("broker unreachable")
        self.published.append(event)
        if self._forward is not None:
            await self._forward.publish(event)
