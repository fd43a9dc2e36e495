"""The run service the `service` scenario measures, and the agent it serves.

`python -m bench.serve_server --journal PATH` serves `create_app` over `bench_agent` under one
uvicorn worker on 127.0.0.1 (a free port, printed on its first line of output). Beside the
service, `/bench/release/{gate}` opens a gate the runs' `hold` tool waits on: the bench starts
runs, connects its clients while they wait, then releases them all at once, or keeps them
waiting to weigh the open streams.

The agent is the same in the server and in the bench's in-process comparison
(`bench_agent`): its scripted model reads what to do from the task text, so one model serves
every run at once.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from agentloop import AsyncAgent, Limits, SQLiteJournal, create_async_agent
from agentloop.testing import FunctionModel

__all__ = ["TICKS", "Gates", "bench_agent", "latency_task", "long_task", "wait_task"]

TICKS = 10
"""Short async tasks per latency run: their completions come one every `TICK_SECONDS`."""
TICK_SECONDS = 0.25
LONG_TASKS = 333
"""No-op tasks of the reconnect run: three events each, about 1,000 events in all."""

ASGI = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class Gates:
    """Named gates the runs' `hold` tool waits on, opened by the bench (one loop's events)."""

    def __init__(self) -> None:
        self._gates: dict[str, asyncio.Event] = {}

    def gate(self, name: str) -> asyncio.Event:
        return self._gates.setdefault(name, asyncio.Event())

    async def wait(self, name: str) -> None:
        await self.gate(name).wait()

    def release(self, name: str) -> None:
        self.gate(name).set()


def latency_task(gate: str, delay: float) -> str:
    """A run that waits for `gate`, then `delay` seconds (spreading the runs' starts), then
    runs `TICKS` async tasks that end one every `TICK_SECONDS`."""
    return f"bench:latency:{gate}:{delay:.4f}"


def wait_task(gate: str) -> str:
    """A run that waits for `gate`, then answers."""
    return f"bench:wait:{gate}"


def long_task() -> str:
    """A run of `LONG_TASKS` no-op tasks: about 1,000 events."""
    return "bench:long"


_TASK = re.compile(r"bench:(\w+)(?::([\w-]+))?(?::([\d.]+))?")


def _code(messages: list[Any]) -> str:
    text = str(messages[1].content[0]["text"])
    found = _TASK.search(text)
    if found is None:
        return "final_answer('unknown task')"
    what, gate, delay = found.groups()
    if what == "latency":
        return (
            f'wait_for_tasks([submit_task("tool", "hold", {{"gate": "{gate}", '
            f'"delay": {float(delay)}}})])\n'
            f'ids = [submit_task("tool", "tick", {{"i": i}}) for i in range({TICKS})]\n'
            "wait_for_tasks(ids)\n"
            "final_answer(len(ids))"
        )
    if what == "wait":
        return (
            f'wait_for_tasks([submit_task("tool", "hold", {{"gate": "{gate}", "delay": 0.0}})])\n'
            "final_answer(0)"
        )
    return (
        f'ids = [submit_task("tool", "noop") for _ in range({LONG_TASKS})]\n'
        "wait_for_tasks(ids)\n"
        "final_answer(len(ids))"
    )


def bench_agent(journal: SQLiteJournal | None, gates: Gates) -> AsyncAgent:
    """The agent both sides run. Every run of a round waits in its code at once, so it has
    256 code threads (the default 128 would queue the rest behind them) and room for all
    their async tasks at once (the default 256 would queue 4,000 ticks: a 1 s run took 9)."""

    async def hold(gate: str, delay: float) -> str:
        """Wait until the bench opens a gate, then a little longer.

        Args:
            gate: the gate's name.
            delay: seconds to wait once it is open.
        """
        await gates.wait(gate)
        await asyncio.sleep(delay)
        return gate

    async def tick(i: int) -> int:
        """Sleep a little longer for each later task, so they end one by one.

        Args:
            i: the task's index.
        """
        await asyncio.sleep(TICK_SECONDS * (i + 1))
        return i

    async def noop() -> None:
        """Do nothing."""

    return create_async_agent(
        tools=[hold, tick, noop],
        model=FunctionModel(_code),
        name="bench",
        journal=journal,
        limits=Limits(max_tasks_per_scope=LONG_TASKS + 10, max_async_tasks=10_000),
        max_controller_threads=256,
    )


def with_gates(service: ASGI, gates: Gates) -> ASGI:
    """The service, with `POST /bench/release/{gate}` and `POST /bench/gc` beside it."""

    async def app(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/bench/"):
            await service(scope, receive, send)
            return
        if path.startswith("/bench/release/"):
            gates.release(path.removeprefix("/bench/release/"))
        elif path == "/bench/gc":
            gc.collect()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def main() -> None:
    import uvicorn

    from agentloop.serve import create_app

    parser = argparse.ArgumentParser(prog="python -m bench.serve_server")
    parser.add_argument("--journal", help="a SQLite journal's path (none: runs in memory)")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(sock.getsockname()[1], flush=True)
    gates = Gates()
    journal = SQLiteJournal(args.journal) if args.journal else None
    service = create_app(bench_agent(journal, gates), runs_per_minute=0, owns_agents=True)
    config = uvicorn.Config(
        with_gates(service, gates),
        log_level="warning",
        lifespan="on",
        backlog=1024,
        timeout_keep_alive=300,  # the bench's pooled connections idle between phases
    )
    gc.collect()  # as `agentloop serve` does before it serves
    gc.freeze()
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
