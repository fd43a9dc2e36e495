"""Fan-out of task events to async-iterator subscribers, free when nobody listens."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from .tasks import TaskEvent

__all__ = ["EventBus", "Subscription"]

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

    def drain(self) -> list[TaskEvent]:
        """Take every event already delivered, without waiting."""
        events = list(self.buffer)
        self.buffer.clear()
        return events

    async def aclose(self) -> None:
        """Stop receiving events."""
        self.closed = True
        self._bus.unsubscribe(self)


class EventBus:
    """Delivers each event to every live subscription whose filter accepts it.

    A subscription buffers at most `maxlen` events; a consumer that falls further behind loses
    the oldest ones, and a warning says how many, so a slow observer can never grow memory
    without bound or slow the tasks it watches.
    """

    def __init__(self, maxlen: int = 10_000) -> None:
        self._subscriptions: list[Subscription] = []
        self._maxlen = maxlen
        self.active = False
        """Whether anyone listens; publishers skip building events when not."""

    def publish(self, event: TaskEvent) -> None:
        for sub in self._subscriptions:
            if not sub.accepts(event):
                continue
            if len(sub.buffer) >= sub.maxlen:
                sub.buffer.popleft()
                sub.dropped += 1
                if sub.dropped == 1:
                    logger.warning(
                        "task event subscriber is %d events behind; dropping the oldest", sub.maxlen
                    )
            sub.buffer.append(event)
            sub.wakeup.set()

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

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)
        self.active = bool(self._subscriptions)
