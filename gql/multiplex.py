"""Multiplexed subscription events: each live event executed and serialised once per group.

A *group* is the subscriptions that share one parsed operation (the same
document, so the same operation name and fragments), the same coerced
variable values and the same authorization scope (the principal's role, and
for the ``user`` role its user id). Variables used only in the root field's
arguments (``userId``, ``after``) choose the event stream, not what an event
resolves to, so they do not split a group (:func:`event_variables`): a
member that resumed with ``after`` replays on its own, then shares the
live events with the members that did not. Every member of a group that receives
the same live change event would execute the same selection set against the
same payload and get the same result, so the first member to reach the
event executes it and the others reuse that result; the first to send it
serialises the payload once and every member sends those same bytes, framed
with its own operation id.

Each subscription still keeps its own event stream (:mod:`sync.streams`): its
inbox, replay with ``after``, the seam between them, conflation, overflow and
the broker's disconnection are unchanged, and so is every delivery metric.
What is shared is only the work that depends on nothing but the group and
the event:

* :func:`share` marks the root value a subscription resolver yields for a
  live :class:`sync.events.ChangeEvent`. Events decoded from one broker
  message are one object (:mod:`sync.streams` decodes each message once),
  so the event's identity names it across subscriptions; replayed events and
  snapshots are read per subscription and are never marked.
* :class:`MultiplexedExecutionContext` executes a marked event once per group
  and hands the same result to the group's other members. A result with
  errors is never shared: errors are formatted, masked and logged per
  operation.
* :func:`shared_frame` turns a ``next`` (legacy ``data``) message that
  carries a shared result into its text: the payload's JSON is built once
  per group and event, the operation's own ``id`` is spliced around it. The
  text is byte for byte what :class:`gql.response_size.ResponseEncoder`
  writes for the same message.

The results live in :data:`EVENT_RESULTS`, a bounded LRU per process: a
member that reads an event after its entry was evicted executes it again,
which costs time, never correctness.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    OperationDefinitionNode,
    VariableNode,
    Visitor,
    visit,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from sync.events import ChangeEvent
from sync.streams import is_shared

from .auth import Role

__all__ = [
    "EVENT_RESULTS",
    "EventResults",
    "GroupKey",
    "MultiplexedExecutionContext",
    "event_variables",
    "share",
    "shared_frame",
]

_T = TypeVar("_T")

# The attribute of a root value that names its live change event.
_EVENT_ATTRIBUTE = "_multiplexed_event"

# Results kept: one per group and event. A group's members read a live event
# within one fan-out of each other, unless they lag; a lagging member that
# finds the result gone executes it again. Kept small because every event of
# a single-member group has an entry too, up to 16 KiB of metadata each.
DEFAULT_RESULTS = 256


class GroupKey:
    """What a group shares: one operation (by identity), coerced variables and scope.

    Hashed once. Holding the operation keeps its ``id`` from naming another
    operation while a result of the group is kept.
    """

    __slots__ = ("_hash", "operation", "scope", "variables")

    def __init__(self, operation: object, variables: str, scope: object) -> None:
        self.operation = operation
        self.variables = variables
        self.scope = scope
        self._hash = hash((id(operation), variables, scope))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, GroupKey)
            and other.operation is self.operation
            and other.variables == self.variables
            and other.scope == self.scope
        )


def share(value: _T, event: ChangeEvent) -> _T:
    """Mark ``value``, the root value yielded for ``event``, as shareable if the event is live.

    Only an event decoded once for every local subscriber
    (:func:`sync.streams.is_shared`) is marked; a replayed one is read per
    subscription and shared by nobody.

    Returns:
        ``value`` itself.
    """
    if is_shared(event):
        object.__setattr__(value, _EVENT_ATTRIBUTE, event)
    return value


class _Entry:
    __slots__ = ("event", "result", "text")

    def __init__(self, event: ChangeEvent, result: ExecutionResult) -> None:
        # Held so that ``id(event)`` names no other event while the entry lives.
        self.event = event
        self.result = result
        self.text: str | None = None


class EventResults:
    """The results of live events, one per group and event, and their payloads' JSON.

    Args:
        size: entries kept; the least recently used goes first.

    Attributes:
        executions: marked events executed (a miss: the first member, or after eviction).
        reuses: marked events whose result was taken from here instead.
        encodings: payloads serialised.
        frames: messages sent with a shared payload.
    """

    def __init__(self, size: int = DEFAULT_RESULTS) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[GroupKey, int], _Entry] = OrderedDict()
        # By ``id`` of the result's data: how a message finds its payload's text.
        self._by_data: dict[int, _Entry] = {}
        # Executions under way (resolvers awaited): the group's other members
        # wait for them instead of starting their own.
        self._running: dict[tuple[GroupKey, int], tuple[ChangeEvent, asyncio.Future[Any]]] = {}
        self.executions = 0
        self.reuses = 0
        self.encodings = 0
        self.frames = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, group: GroupKey, event: ChangeEvent) -> ExecutionResult | None:
        """The result of ``event`` for ``group``, if one is held."""
        key = (group, id(event))
        entry = self._entries.get(key)
        if entry is None or entry.event is not event:
            return None
        self._entries.move_to_end(key)
        self.reuses += 1
        return entry.result

    def running(self, group: GroupKey, event: ChangeEvent) -> asyncio.Future[Any] | None:
        """The execution of ``event`` for ``group`` under way, if any."""
        running = self._running.get((group, id(event)))
        if running is None or running[0] is not event:
            return None
        return running[1]

    def start(self, group: GroupKey, event: ChangeEvent, execution: asyncio.Future[Any]) -> None:
        """Note ``execution`` of ``event`` for ``group``; its result is kept when it is done."""
        key = (group, id(event))
        self._running[key] = (event, execution)

        def done(future: asyncio.Future[Any]) -> None:
            if self._running.get(key, (None, None))[1] is future:
                del self._running[key]
            if future.cancelled() or future.exception() is not None:
                return
            result = future.result()
            if isinstance(result, ExecutionResult):  # not incremental delivery
                self.put(group, event, result)

        # Added first: the result is kept before any waiter resumes.
        execution.add_done_callback(done)

    def put(self, group: GroupKey, event: ChangeEvent, result: ExecutionResult) -> None:
        """Keep ``result`` of ``event`` for ``group``, unless it has errors (never shared)."""
        self.executions += 1
        if result.errors or not isinstance(result.data, dict):
            return
        key = (group, id(event))
        old = self._entries.pop(key, None)
        if old is not None:
            self._forget(old)
        entry = self._entries[key] = _Entry(event, result)
        self._by_data[id(result.data)] = entry
        while len(self._entries) > self.size:
            _, evicted = self._entries.popitem(last=False)
            self._forget(evicted)

    def _forget(self, entry: _Entry) -> None:
        data_id = id(entry.result.data)
        if self._by_data.get(data_id) is entry:
            del self._by_data[data_id]

    def payload_text(self, payload: Mapping[str, Any]) -> str | None:
        """The JSON of ``payload`` if it is exactly ``{"data": <a held result's data>}``."""
        if len(payload) != 1 or "data" not in payload:
            return None
        data = payload["data"]
        entry = self._by_data.get(id(data))
        if entry is None or entry.result.data is not data:
            return None
        if entry.text is None:
            entry.text = json.dumps({"data": data}, separators=(",", ":"))
            self.encodings += 1
        return entry.text

    def clear(self) -> None:
        """Drop every entry (the counters stay)."""
        self._entries.clear()
        self._by_data.clear()
        self._running.clear()


EVENT_RESULTS = EventResults()
"""This process's results; see the module docstring."""


def shared_frame(message: Mapping[str, Any], max_bytes: int) -> str | None:
    """The text of ``message`` if its payload is a shared result and it fits ``max_bytes``.

    Keys are written in the message's own order, as the response encoder
    writes them, so the text is the same as it would be unshared. ``None``:
    send the message the usual way (not shared, or over the cap, which the
    usual way replaces with ``RESPONSE_TOO_LARGE``).
    """
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return None
    text = EVENT_RESULTS.payload_text(payload)
    if text is None:
        return None
    parts = [
        json.dumps(key) + ":" + (text if key == "payload" else json.dumps(value))
        for key, value in message.items()
    ]
    frame = "{" + ",".join(parts) + "}"
    if len(frame) > max_bytes:
        return None
    EVENT_RESULTS.frames += 1
    return frame


def _scope(context: object) -> object:
    """What authorization depends on: the role, and the user id for the ``user`` role."""
    principal = getattr(context, "principal", None)
    if principal is None:
        return None
    if principal.role is Role.USER:
        return (principal.role, principal.user_id)
    return (principal.role,)


class _Variables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_: object) -> None:
        self.names.add(node.name.value)


def event_variables(
    operation: OperationDefinitionNode, fragments: Iterable[FragmentDefinitionNode]
) -> frozenset[str]:
    """The variables an event's result can depend on: all but those only in root arguments.

    A root subscription field's arguments choose its event stream (``userId``,
    ``after``); each event then resolves that field to the event itself, so
    only the variables of its directives, of the selection set under it and
    of fragments shape the result. Two members that differ only in ``after``
    (one resumed, one did not) are of one group once both are live.
    """
    collector = _Variables()
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode):
            for directive in selection.directives or ():
                visit(directive, collector)
            if selection.selection_set is not None:
                visit(selection.selection_set, collector)
        else:  # a fragment at the root: everything in it counts
            visit(selection, collector)
    for directive in operation.directives or ():
        visit(directive, collector)
    for fragment in fragments:
        visit(fragment, collector)
    return frozenset(collector.names)


def _variables_key(values: Mapping[str, Any], names: frozenset[str]) -> str:
    # Coerced input values are JSON-like (strings, numbers, lists, input objects).
    chosen = {name: value for name, value in values.items() if name in names}
    return json.dumps(chosen, sort_keys=True, default=repr)


class _Held:
    """Stands for a per-event executor whose result the group already holds."""

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        return self.result


class MultiplexedExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Executes each live event marked by :func:`share` once per group.

    The group is computed once per subscription, from its operation (the
    parsed document is one object per operation text, cached by the parser
    cache), its coerced variables and the principal's scope.
    """

    _group: GroupKey | None = None
    _shared_event: ChangeEvent | None = None
    _event_group: GroupKey | None = None

    def _group_key(self) -> GroupKey:
        group = self._group
        if group is None:
            names = event_variables(
                self.operation, (details.definition for details in self.fragments.values())
            )
            group = self._group = GroupKey(
                self.operation,
                _variables_key(self.variable_values.coerced, names),
                _scope(self.context_value),
            )
        return group

    def build_per_event_executor(self, payload: Any) -> Any:
        event = getattr(payload, _EVENT_ATTRIBUTE, None)
        if not isinstance(event, ChangeEvent):
            return super().build_per_event_executor(payload)
        group = self._group_key()
        held = EVENT_RESULTS.get(group, event)
        if held is not None:
            return _Held(held)  # no executor to copy
        executor = super().build_per_event_executor(payload)
        if isinstance(executor, MultiplexedExecutionContext):
            executor._shared_event = event
            executor._event_group = group
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        event, group = self._shared_event, self._event_group
        if event is None or group is None:
            return super().execute_operation(serially)
        held = EVENT_RESULTS.get(group, event)
        if held is not None:
            return held
        running = EVENT_RESULTS.running(group, event)
        if running is not None:
            return self._join(running, serially)
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            execution = asyncio.ensure_future(result)
            EVENT_RESULTS.start(group, event, execution)
            # Shielded: this member leaving must not cancel the others' result.
            return asyncio.shield(execution)
        if isinstance(result, ExecutionResult):  # not incremental delivery
            EVENT_RESULTS.put(group, event, result)
        return result

    async def _join(self, running: asyncio.Future[Any], serially: bool | None) -> Any:
        """The result of another member's execution; this member's own if that one failed."""
        try:
            result = await asyncio.shield(running)
        except asyncio.CancelledError:
            if not running.cancelled():
                raise  # this member was cancelled
            result = None
        except Exception:
            result = None  # the member that ran it reports its error
        if isinstance(result, ExecutionResult) and not result.errors:
            EVENT_RESULTS.reuses += 1
            return result
        # Errors are formatted, masked and logged per operation: run it here.
        own = super().execute_operation(serially)
        return await own if self.is_awaitable(own) else own
