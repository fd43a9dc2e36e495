"""Task events reach their scope's subscribers and the every-scope ones, by scope id."""

from __future__ import annotations

from agentloop.engine._bus import EventBus
from agentloop.tasks import TaskEvent, TaskEventKind, TaskStatus


def _event(scope: str, n: int = 0) -> TaskEvent:
    return TaskEvent(
        kind=TaskEventKind.SUBMITTED,
        task_id=f"t{n}",
        target_name="x",
        scope_id=scope,
        status=TaskStatus.PENDING,
        at=0.0,
    )


async def test_events_go_to_their_scope_and_to_every_scope_subscribers_only() -> None:
    bus = EventBus()
    got: dict[str, list[str]] = {"a": [], "b": [], "all": []}
    bus.listen("a", lambda e: got["a"].append(e.task_id))
    bus.listen("b", lambda e: got["b"].append(e.task_id))
    bus.listen(None, lambda e: got["all"].append(f"{e.scope_id}/{e.task_id}"))
    others = [bus.listen(f"other-{i}", lambda e: got["a"].append("wrong")) for i in range(100)]
    bus.publish(_event("a", 1))
    bus.publish(_event("b", 2))
    bus.publish(_event("nobody", 3))
    assert got == {"a": ["t1"], "b": ["t2"], "all": ["a/t1", "b/t2", "nobody/t3"]}
    for listener in others:
        listener.close()
    assert bus.active


async def test_a_listener_that_leaves_while_called_does_not_skip_the_next() -> None:
    bus = EventBus()
    seen: list[str] = []
    first = bus.listen("a", lambda e: (seen.append("first"), first.close()))
    bus.listen("a", lambda e: seen.append("second"))
    bus.publish(_event("a"))
    bus.publish(_event("a"))
    assert seen == ["first", "second", "second"]


async def test_a_subscription_iterates_its_scope_and_ends_when_the_bus_closes() -> None:
    bus = EventBus()
    mine = bus.subscribe("a")
    everything = bus.subscribe(None)
    bus.publish(_event("b", 1))
    bus.publish(_event("a", 2))
    bus.close()
    assert [e.task_id async for e in mine] == ["t2"]
    assert [e.task_id async for e in everything] == ["t1", "t2"]
    assert not bus.active


async def test_the_bus_is_inactive_once_everyone_left() -> None:
    bus = EventBus()
    one, two = bus.subscribe("a"), bus.listen(None, lambda e: None)
    await one.aclose()
    assert bus.active
    two.close()
    assert not bus.active
