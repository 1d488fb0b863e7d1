"""A long subscription must not keep anything per delivered event.

graphql-core 3.3.1+ builds each event's executor as a shallow copy of the
subscription's, sharing its subfield memo, which then grows by one entry
(about 1.5 KB) per event until the subscription ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from graphql import build_schema, parse, subscribe

from gql.schema import create_schema

SDL = """
type Query { x: Int }
type Item { id: ID, seq: Int }
type Subscription { items: Item }
"""


async def test_subscription_events_leave_no_memo_behind() -> None:
    executor_class: Any = create_schema().execution_context_class
    executors: list[Any] = []

    class Recording(executor_class):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            executors.append(self)

    async def items(_root: object, _info: object) -> AsyncIterator[dict[str, Any]]:
        for seq in range(1, 101):
            yield {"items": {"id": str(seq), "seq": seq}}

    stream: Any = subscribe(
        build_schema(SDL),
        parse("subscription { items { id seq } }"),
        subscribe_field_resolver=items,
        executor_class=Recording,
    )
    if not hasattr(stream, "__anext__"):
        stream = await stream
    seqs = [result.data["items"]["seq"] async for result in stream]

    assert seqs == list(range(1, 101))
    assert [len(e._relevant_sub_fields) for e in executors] == [0]
