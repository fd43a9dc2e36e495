"""Fan-out of task events to async-iterator subscribers, free when nobody listens."""

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

    def __init__(self, bus: EventBus, accepts: Callable[[TaskEvent], bool], maxlen: int) -> None:
        self._bus = bus
        self.accepts = accepts
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
        self,
        bus: EventBus,
        accepts: Callable[[TaskEvent], bool],
        callback: Callable[[TaskEvent], None],
    ) -> None:
        self._bus = bus
        self.accepts = accepts
        self.deliver = callback
        self.closed = False
        self.wakeup = asyncio.Event()

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    """Delivers each event to every live subscription whose filter accepts it.

    A subscription buffers at most `maxlen` events; a consumer that falls further behind loses
    the oldest ones, and a warning says how many, so a slow observer can never grow memory
    without bound or slow the tasks it watches.
    """

    def __init__(self, maxlen: int = 10_000) -> None:
        self._subscriptions: list[Subscription | Listener] = []
        self._maxlen = maxlen
        self.active = False
        """Whether anyone listens; publishers skip building events when not."""

    def publish(self, event: TaskEvent) -> None:
        for sub in self._subscriptions:
            if sub.accepts(event):
                sub.deliver(event)

    def close(self) -> None:
        """End every subscription: iterators finish after draining what they hold."""
        for sub in self._subscriptions:
            sub.closed = True
            sub.wakeup.set()
        self._subscriptions.clear()
        self.active = False

    def subscribe(self, accepts: Callable[[TaskEvent], bool]) -> Subscription:
        sub = Subscription(self, accepts, self._maxlen)
        self._subscriptions.append(sub)
        self.active = True
        return sub

    def listen(
        self, accepts: Callable[[TaskEvent], bool], callback: Callable[[TaskEvent], None]
    ) -> Listener:
        """Call `callback` with each accepted event, synchronously as it is published (on the
        loop); for consumers that keep their own buffer. `unsubscribe` it when done."""
        listener = Listener(self, accepts, callback)
        self._subscriptions.append(listener)
        self.active = True
        return listener

    def unsubscribe(self, sub: Subscription | Listener) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)
        self.active = bool(self._subscriptions)
