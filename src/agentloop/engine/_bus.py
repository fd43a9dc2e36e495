"""Fan-out of task events to async-iterator subscribers, free when nobody listens.

A subscriber follows one scope (a run's stream, a scope's `events()`) or every scope (the
registry's `events()`). Events are routed by scope id, so publishing costs the same however
many other runs are streamed: with a filter per subscriber, each event asked every streamed
run's filter, and 200 streamed runs spent a tenth of a service's loop on it (profiled)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from ..tasks import TaskEvent

__all__ = ["EventBus", "Listener", "Subscription"]

logger = logging.getLogger("agentloop")


class Subscription:
    """An async iterator over the events one subscriber accepts, registered from creation on
    (so nothing published between subscribing and the first `anext` is missed)."""

    def __init__(self, bus: EventBus, scope_id: str | None, maxlen: int) -> None:
        self._bus = bus
        self.scope_id = scope_id
        """The scope it follows; None: every scope."""
        self.buffer: deque[TaskEvent] = deque()
        self.maxlen = maxlen
        self.dropped = 0
        self.closed = False
        self.wakeup = asyncio.Event()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> TaskEvent:
        while not self.buffer:
            if self.closed:
                raise StopAsyncIteration
            self.wakeup.clear()
            await self.wakeup.wait()
        return self.buffer.popleft()

    def deliver(self, event: TaskEvent) -> None:
        if len(self.buffer) >= self.maxlen:
            self.buffer.popleft()
            self.dropped += 1
            if self.dropped == 1:
                logger.warning(
                    "task event subscriber is %d events behind; dropping the oldest", self.maxlen
                )
        self.buffer.append(event)
        self.wakeup.set()

    async def aclose(self) -> None:
        """Stop receiving events."""
        self.closed = True
        self._bus.unsubscribe(self)


class Listener:
    """A subscriber that is called with each accepted event instead of buffering it."""

    def __init__(
        self, bus: EventBus, scope_id: str | None, callback: Callable[[TaskEvent], None]
    ) -> None:
        self._bus = bus
        self.scope_id = scope_id
        """The scope it follows; None: every scope."""
        self.deliver = callback
        self.closed = False
        self.wakeup = asyncio.Event()

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    """Delivers each event to every live subscription of its scope and of every scope.

    A subscription buffers at most `maxlen` events; a consumer that falls further behind loses
    the oldest ones, and a warning says how many, so a slow observer can never grow memory
    without bound or slow the tasks it watches.
    """

    def __init__(self, maxlen: int = 10_000) -> None:
        self._everything: list[Subscription | Listener] = []
        self._by_scope: dict[str, list[Subscription | Listener]] = {}
        self._maxlen = maxlen
        self.active = False
        """Whether anyone listens; publishers skip building events when not."""

    def publish(self, event: TaskEvent) -> None:
        # the lists are replaced, never changed, when someone joins or leaves (rare): a
        # callback that unsubscribes cannot make the loop skip the next subscriber
        for sub in self._everything:
            sub.deliver(event)
        for sub in self._by_scope.get(event.scope_id, ()):
            sub.deliver(event)

    def close(self) -> None:
        """End every subscription: iterators finish after draining what they hold."""
        for sub in self._all():
            sub.closed = True
            sub.wakeup.set()
        self._everything = []
        self._by_scope = {}
        self.active = False

    def subscribe(self, scope_id: str | None) -> Subscription:
        """An async iterator over the events of scope `scope_id` (None: of every scope)."""
        sub = Subscription(self, scope_id, self._maxlen)
        self._add(sub)
        return sub

    def listen(self, scope_id: str | None, callback: Callable[[TaskEvent], None]) -> Listener:
        """Call `callback` with each event of scope `scope_id` (None: of every scope),
        synchronously as it is published (on the loop); for consumers that keep their own
        buffer. `unsubscribe` it when done."""
        listener = Listener(self, scope_id, callback)
        self._add(listener)
        return listener

    def unsubscribe(self, sub: Subscription | Listener) -> None:
        if sub.scope_id is None:
            self._everything = [s for s in self._everything if s is not sub]
        else:
            rest = [s for s in self._by_scope.get(sub.scope_id, ()) if s is not sub]
            if rest:
                self._by_scope[sub.scope_id] = rest
            else:
                self._by_scope.pop(sub.scope_id, None)
        self.active = bool(self._everything or self._by_scope)

    def _add(self, sub: Subscription | Listener) -> None:
        if sub.scope_id is None:
            self._everything = [*self._everything, sub]
        else:
            self._by_scope[sub.scope_id] = [*self._by_scope.get(sub.scope_id, ()), sub]
        self.active = True

    def _all(self) -> list[Subscription | Listener]:
        return [*self._everything, *(s for subs in self._by_scope.values() for s in subs)]
