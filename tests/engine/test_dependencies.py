"""`depends_on` and result references: pipelines run without a round trip between steps."""

from __future__ import annotations

import asyncio

import pytest

from agentloop import (
    DependencyFailedError,
    InvalidArgumentsError,
    TaskFailure,
    TaskRegistry,
    TaskStatus,
    result_of,
)


async def test_pipeline_passes_results_downstream() -> None:
    order: list[str] = []

    async def clean(name: str) -> dict[str, object]:
        order.append(f"clean {name}")
        return {"rows": [3, 1, 2], "name": name}

    def analyse(data: dict[str, object]) -> dict[str, object]:
        order.append(f"analyse {data['name']}")
        rows = data["rows"]
        assert isinstance(rows, list)
        return {"summary": {"max": max(rows)}}

    async def chart(stats: dict[str, int]) -> str:
        order.append("chart")
        return f"chart(max={stats['max']})"

    async with TaskRegistry(tools=[clean, analyse, chart]) as registry:
        c = await registry.submit("tool", "clean", {"name": "f1"})
        a = await registry.submit("tool", "analyse", {"data": result_of(c)})
        ch = await registry.submit("tool", "chart", {"stats": result_of(a, "summary")})
        assert registry.get(ch).depends_on == (a,)
        await registry.wait(ch)
        assert await registry.result(ch) == "chart(max=3)"
    assert order == ["clean f1", "analyse f1", "chart"]


async def test_reference_written_as_plain_json_works() -> None:
    async def one() -> int:
        return 1

    async def inc(x: int) -> int:
        return x + 1

    async with TaskRegistry(tools=[one, inc]) as registry:
        first = await registry.submit("tool", "one")
        second = await registry.submit("tool", "inc", {"x": {"$result_of": first}})
        await registry.wait(second)
        assert await registry.result(second) == 2


async def test_depends_on_waits_without_passing_results() -> None:
    release = asyncio.Event()
    log: list[str] = []

    async def slow() -> None:
        await release.wait()
        log.append("slow")

    async def after() -> None:
        log.append("after")

    async with TaskRegistry(tools=[slow, after]) as registry:
        s = await registry.submit("tool", "slow")
        a = await registry.submit("tool", "after", depends_on=s)
        for _ in range(5):
            await asyncio.sleep(0)
        assert registry.get(a).status is TaskStatus.PENDING
        release.set()
        await registry.wait(a)
    assert log == ["slow", "after"]


async def test_failed_upstream_fails_downstream_clearly() -> None:
    async def broken() -> int:
        raise ValueError("bad input file")

    async def use(x: int) -> int:
        return x

    async with TaskRegistry(tools=[broken, use]) as registry:
        up = await registry.submit("tool", "broken")
        down = await registry.submit("tool", "use", {"x": result_of(up)})
        outcome = await registry.wait(down)
        info = registry.get(down)
        result = (await registry.results([down]))[down]
        with pytest.raises(DependencyFailedError):
            raise DependencyFailedError(info.error)
    assert outcome.failed == (down,)
    assert info.status is TaskStatus.FAILED
    assert info.started_at is None
    assert f"upstream task `{up}` ended failed (ValueError: bad input file)" in str(info.error)
    assert isinstance(result, TaskFailure)


async def test_cancelled_upstream_fails_downstream() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def use(x: object) -> object:
        return x

    async with TaskRegistry(tools=[forever, use]) as registry:
        up = await registry.submit("tool", "forever")
        down = await registry.submit("tool", "use", {"x": result_of(up)})
        await registry.cancel(up)
        await registry.wait(down)
        results = await registry.results([up, down])
    assert [type(v) for v in results.values()] == [TaskFailure, TaskFailure]
    assert results[up].status is TaskStatus.CANCELLED
    assert "ended cancelled" in results[down].error


async def test_bad_reference_path_fails_the_task_with_the_reason() -> None:
    async def one() -> dict[str, int]:
        return {"a": 1}

    async def use(x: int) -> int:
        return x

    async with TaskRegistry(tools=[one, use]) as registry:
        up = await registry.submit("tool", "one")
        down = await registry.submit("tool", "use", {"x": result_of(up, "b")})
        await registry.wait(down)
        assert "step 'b' does not exist" in str(registry.get(down).error)


async def test_malformed_reference_is_refused_at_submit() -> None:
    async def use(x: object) -> object:
        return x

    async with TaskRegistry(tools=[use]) as registry:
        first = await registry.submit("tool", "use", {"x": 1})
        with pytest.raises(InvalidArgumentsError, match="malformed result reference"):
            await registry.submit("tool", "use", {"x": {"$result_of": first, "oops": 1}})


async def test_reference_to_unknown_task_is_refused_at_submit() -> None:
    async def use(x: object) -> object:
        return x

    async with TaskRegistry(tools=[use]) as registry:
        with pytest.raises(Exception, match="no task `ghost`"):
            await registry.submit("tool", "use", {"x": result_of("ghost")})
