"""The run service under load: 200 streamed runs on one uvicorn worker, against the same runs
streamed in process; what an open stream weighs; how fast a reconnect is served.

The server is `bench/serve_server.py` in a process of its own (127.0.0.1, a free port, a
SQLite journal: the service shows committed events only, the realistic case), the clients
are httpx in this process. Three figures:

1. Delivery latency. `CLIENTS` runs wait on a gate; each has an SSE client (or, in process, an
   `agent.astream` consumer) that has read its first event. The gate opens; each run, after
   its own small delay (the runs' starts spread over `SPREAD_SECONDS`), runs `TICKS` async
   tasks ending one every 100 ms: events keep coming for about three seconds. Latency = receive
   time - the event's `at` (both `time.time()` on this machine), for every event after the
   gate opened. Rounds alternate service and in process; judged: the median over rounds of
   the service's p99 minus the in-process p99 of the round beside it.
2. Memory per open stream: the server's VmRSS with `CLIENTS` open streams to waiting runs,
   minus its VmRSS with the same runs and no clients (a full collection before each reading,
   one stream opened and closed before the first, so one-time costs are in both), / CLIENTS.
3. Reconnect: `RECONNECT_RUNS` finished runs of about 1,000 events each; a client reconnects
   with `Last-Event-ID` = the 10th event's id and reads to the last event. Cold: a fresh
   server process over the same journal (it never held the runs: read from the journal);
   warm: the process that ran them (served from memory). p50 over the runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._measure import Result, Series, Table, fmt
from .serve_server import TICKS

__all__ = ["service"]

logger = logging.getLogger("bench")

CLIENTS = 200
SPREAD_SECONDS = 2.0
RECONNECT_RUNS = 20
RECONNECT_AFTER = 10
"""The reconnecting client has read this many events."""
P99_TARGET_MS, KIB_TARGET, RECONNECT_TARGET_MS = 20.0, 64.0, 50.0
_END = ("final_answer", "run_failed")


# -- the server ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A running `bench.serve_server` process."""

    process: subprocess.Popen[str]
    url: str

    def rss_kib(self) -> int:
        """The server's resident set size (VmRSS) in KiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1])


@contextlib.contextmanager
def _server(journal: Path) -> Iterator[Server]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, sys.path))}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.serve_server", "--journal", str(journal)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"the bench server did not start (said {port!r})")
        yield Server(process, f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _until_up(client: Any, url: str) -> None:
    """Until the server answers (its lifespan has run)."""
    import httpx

    for _ in range(600):
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(f"{url}/api/agents")).status_code == 200:
                return
        await asyncio.sleep(0.05)  # a process starting up: nothing to wait on but time
    raise RuntimeError(f"the bench server at {url} did not answer in 30 s")


async def _start(client: Any, url: str, task: str) -> str:
    response = await client.post(f"{url}/api/runs", json={"agent": "bench", "task": task})
    response.raise_for_status()
    return str(response.json()["run"]["run_id"])


@contextlib.asynccontextmanager
async def _events(
    client: Any, url: str, run_id: str, last_event_id: int | None = None
) -> AsyncIterator[AsyncIterator[tuple[float, dict[str, Any]]]]:
    """The run's SSE events as (receive time, data): frames split by hand from the raw
    chunks (one clock reading per chunk), so the client's own parsing stays small."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    async with client.stream("GET", f"{url}/api/runs/{run_id}/events", headers=headers) as resp:
        resp.raise_for_status()

        async def frames() -> AsyncIterator[tuple[float, dict[str, Any]]]:
            buffer = b""
            async for chunk in resp.aiter_raw():
                now = time.time()
                buffer += chunk
                *whole, buffer = buffer.split(b"\n\n")
                for frame in whole:
                    for line in frame.split(b"\n"):
                        if line.startswith(b"data: "):
                            yield now, json.loads(line[6:])

        yield frames()


def _client() -> Any:
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=CLIENTS + 10)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0))


POOLS = 20
"""httpx clients the SSE streams share: httpcore's pool scans all its connections for each
request and each closed stream, so 200 streams in one pool cost the bench 9 s of CPU a round
(profiled), which the server's figures then paid for on the shared cores."""


@contextlib.asynccontextmanager
async def _clients() -> AsyncIterator[list[Any]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(_client()) for _ in range(POOLS)]


# -- 1. delivery latency ------------------------------------------------------------------------


@dataclass
class Round:
    """One round's latencies (ms) and what it checked."""

    latencies: list[float]
    events: int
    seconds: float


class _Ready:
    """Counts the consumers that have their first event; set when all have."""

    def __init__(self, expected: int) -> None:
        self.left = expected
        self.all = asyncio.Event()

    def one(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.all.set()


def _delay(i: int) -> float:
    return i * SPREAD_SECONDS / CLIENTS


async def _served_round(clients: list[Any], url: str, gate: str) -> Round:
    from .serve_server import latency_task

    client = clients[0]
    run_ids = await asyncio.gather(
        *(_start(client, url, latency_task(gate, _delay(i))) for i in range(CLIENTS))
    )
    ready, latencies, released = _Ready(CLIENTS), [], [float("inf")]

    async def read(i: int, run_id: str) -> int:
        count = 0
        async with _events(clients[i % len(clients)], url, run_id) as frames:
            async for received, data in frames:
                count += 1
                if count == 1:
                    ready.one()
                if data["at"] >= released[0]:
                    latencies.append((received - data["at"]) * 1e3)
                if data["kind"] in _END:
                    break
        return count

    readers = [asyncio.create_task(read(i, run_id)) for i, run_id in enumerate(run_ids)]
    await asyncio.wait_for(ready.all.wait(), 60)
    start = released[0] = time.time()
    (await client.post(f"{url}/bench/release/{gate}")).raise_for_status()
    counts = await asyncio.wait_for(asyncio.gather(*readers), 120)
    return Round(latencies, sum(counts), time.time() - start)


async def _in_process_round(agent: Any, gates: Any, gate: str) -> Round:
    from .serve_server import latency_task

    ready, latencies, released = _Ready(CLIENTS), [], [float("inf")]

    async def read(i: int) -> int:
        count = 0
        async with agent.astream(latency_task(gate, _delay(i))) as stream:
            async for event in stream:
                received = time.time()
                if event.kind.value == "model_delta":  # the service sends none without ?deltas
                    continue
                count += 1
                if count == 1:
                    ready.one()
                if event.at >= released[0]:
                    latencies.append((received - event.at) * 1e3)
        return count

    readers = [asyncio.create_task(read(i)) for i in range(CLIENTS)]
    await asyncio.wait_for(ready.all.wait(), 60)
    start = released[0] = time.time()
    gates.release(gate)
    counts = await asyncio.wait_for(asyncio.gather(*readers), 120)
    return Round(latencies, sum(counts), time.time() - start)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- 2. memory per open stream -------------------------------------------------------------------


async def _memory(clients: list[Any], server: Server) -> tuple[int, int]:
    """The server's VmRSS (KiB) with `CLIENTS` waiting runs and no clients, then with one open
    stream to each."""
    from .serve_server import wait_task

    url, client = server.url, clients[0]
    run_ids = await asyncio.gather(*(_start(client, url, wait_task("mem")) for _ in range(CLIENTS)))
    spare = await _start(client, url, wait_task("mem"))
    ready = _Ready(CLIENTS)

    async def waiting(i: int, run_id: str, then: Callable[[], Any] | None = None) -> None:
        """Read the run's events until its `hold` task has started (it waits in it)."""
        async with _events(clients[i % len(clients)], url, run_id) as frames:
            async for _, data in frames:
                if data["kind"] == "task_started":
                    break
            if then is not None:
                then()
                async for _, data in frames:
                    if data["kind"] in _END:
                        break

    for run_id in [spare, *run_ids]:  # every run waits (and one stream was opened and closed)
        await waiting(0, run_id)
    (await client.post(f"{url}/bench/gc")).raise_for_status()
    without = server.rss_kib()
    readers = [asyncio.create_task(waiting(i, r, ready.one)) for i, r in enumerate(run_ids)]
    await asyncio.wait_for(ready.all.wait(), 60)
    (await client.post(f"{url}/bench/gc")).raise_for_status()
    with_streams = server.rss_kib()
    (await client.post(f"{url}/bench/release/mem")).raise_for_status()
    await asyncio.wait_for(asyncio.gather(*readers), 60)
    return without, with_streams


# -- 3. reconnect --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    run_id: str
    resume_after: int
    last: int
    events: int


async def _long_runs(client: Any, url: str) -> list[Finished]:
    """`RECONNECT_RUNS` runs of about 1,000 events, read to their end."""
    from .serve_server import long_task

    async def one() -> Finished:
        run_id = await _start(client, url, long_task())
        ids: list[int] = []
        async with _events(client, url, run_id) as frames:
            async for _, data in frames:
                ids.append(data["seq"])
                if data["kind"] in _END:
                    break
        return Finished(run_id, ids[RECONNECT_AFTER - 1], ids[-1], len(ids))

    found: list[Finished] = []
    for _ in range(RECONNECT_RUNS // 5):  # five at a time: the journal stays the bottleneck
        found += await asyncio.gather(*(one() for _ in range(5)))
    return found


async def _reconnect(client: Any, url: str, run: Finished) -> float:
    """Seconds from the request to the run's last event; checks it got exactly the rest."""
    start = time.perf_counter()
    ids: list[int] = []
    async with _events(client, url, run.run_id, run.resume_after) as frames:
        async for _, data in frames:
            ids.append(data["seq"])
            if data["kind"] in _END:
                break
    took = time.perf_counter() - start
    expected = run.events - RECONNECT_AFTER
    if ids[0] <= run.resume_after or ids[-1] != run.last or len(ids) != expected:
        raise RuntimeError(
            f"reconnect to {run.run_id} after {run.resume_after}: got {len(ids)} events "
            f"({ids[0]}..{ids[-1]}), expected {expected} ending at {run.last}"
        )
    return took


# -- the scenario --------------------------------------------------------------------------------


@dataclass
class Found:
    served: list[Round]
    in_process: list[Round]
    rss_without: int
    rss_with: int
    cold: list[float]
    warm: list[float]
    long_events: int


async def _measure(rounds: int, tmp: Path) -> Found:
    from agentloop import SQLiteJournal

    from .serve_server import Gates, bench_agent

    served: list[Round] = []
    in_process: list[Round] = []
    gates = Gates()
    agent = bench_agent(SQLiteJournal(tmp / "in-process.db"), gates)
    journal = tmp / "service.db"
    async with agent, _clients() as clients:
        client = clients[0]
        with _server(journal) as server:
            await _until_up(client, server.url)
            await _served_round(clients, server.url, "warmup")  # imports, threads, caches
            await _in_process_round(agent, gates, "warmup")
            for i in range(rounds):
                sides = [
                    lambda i=i: _served_round(clients, server.url, f"s{i}"),
                    lambda i=i: _in_process_round(agent, gates, f"p{i}"),
                ]
                for side, into in zip(
                    sides if i % 2 == 0 else sides[::-1],
                    [served, in_process] if i % 2 == 0 else [in_process, served],
                    strict=True,
                ):
                    gc.collect()
                    into.append(await side())
            without, with_streams = await _memory(clients, server)
            finished = await _long_runs(client, server.url)
            warm = [await _reconnect(client, server.url, run) for run in finished]
        with _server(journal) as fresh:  # never held these runs: they come from the journal
            await _until_up(client, fresh.url)
            cold = [await _reconnect(client, fresh.url, run) for run in finished]
    return Found(
        served,
        in_process,
        without,
        with_streams,
        cold,
        warm,
        statistics.median(run.events for run in finished),
    )


def service(repeats: int) -> Result:
    """See the module docstring."""
    rounds = min(repeats, 2)  # the scenario stays under a minute on 2 cores
    with tempfile.TemporaryDirectory(prefix="agentloop-bench-serve-") as tmp:
        found = asyncio.run(_measure(rounds, Path(tmp)))
    p50s = [_percentile(r.latencies, 50) for r in found.served]
    p99s = [_percentile(r.latencies, 99) for r in found.served]
    local_p50s = [_percentile(r.latencies, 50) for r in found.in_process]
    local_p99s = [_percentile(r.latencies, 99) for r in found.in_process]
    diffs = [s - p for s, p in zip(p99s, local_p99s, strict=True)]
    diff = statistics.median(diffs)
    per_stream = (found.rss_with - found.rss_without) / CLIENTS
    cold, warm = statistics.median(found.cold) * 1e3, statistics.median(found.warm) * 1e3
    events = statistics.median(r.events for r in found.served)
    checks = [
        diff <= P99_TARGET_MS,
        per_stream < KIB_TARGET,
        cold < RECONNECT_TARGET_MS and warm < RECONNECT_TARGET_MS,
    ]
    med = statistics.median
    rows = (
        ("p50 delivery", f"{fmt(med(local_p50s))} ms", f"{fmt(med(p50s))} ms",
         f"{med(p50s) - med(local_p50s):+.1f} ms", "-"),
        ("p99 delivery", f"{fmt(med(local_p99s))} ms", f"{fmt(med(p99s))} ms",
         f"{diff:+.1f} ms", f"<= +{P99_TARGET_MS:g} ms"),
        ("memory per open stream", "-", f"{per_stream:.1f} KiB",
         f"{(found.rss_with - found.rss_without) / 1024:.1f} MiB / {CLIENTS}",
         f"< {KIB_TARGET:g} KiB"),
        (f"reconnect, {fmt(found.long_events)} events, cold", "-", f"{fmt(cold)} ms",
         f"max {fmt(max(found.cold) * 1e3)} ms", f"< {RECONNECT_TARGET_MS:g} ms"),
        ("reconnect, warm (in memory)", "-", f"{fmt(warm)} ms",
         f"max {fmt(max(found.warm) * 1e3)} ms", f"< {RECONNECT_TARGET_MS:g} ms"),
    )  # fmt: skip
    series = (
        Series("in process p50", "ms", tuple(local_p50s)),
        Series("in process p99", "ms", tuple(local_p99s)),
        Series("service p50", "ms", tuple(p50s)),
        Series("service p99", "ms", tuple(p99s)),
        Series("p99 service - in process", "ms", tuple(diffs)),
        Series("reconnect cold", "ms", tuple(t * 1e3 for t in found.cold)),
        Series("reconnect warm", "ms", tuple(t * 1e3 for t in found.warm)),
    )
    return Result(
        name="service",
        title=(
            f"14. the run service: {CLIENTS} runs streamed over SSE from one uvicorn worker "
            "(SQLite journal) against the same runs streamed in process"
        ),
        headline=(
            f"p99 {diff:+.1f} ms over in process; {per_stream:.1f} KiB per open stream; "
            f"reconnect {fmt(cold)} ms cold, {fmt(warm)} ms warm"
        ),
        target=(
            f"p99 <= in process + {P99_TARGET_MS:g} ms; < {KIB_TARGET:g} KiB per stream; "
            f"reconnect < {RECONNECT_TARGET_MS:g} ms"
        ),
        met=all(checks),
        series=series,
        figures={
            "p99_diff_ms": diff,
            "service_p99_ms": med(p99s),
            "in_process_p99_ms": med(local_p99s),
            "kib_per_stream": per_stream,
            "reconnect_cold_ms": cold,
            "reconnect_warm_ms": warm,
        },
        table=Table(("figure", "in process", "service", "difference", "target"), rows, "lrrrl"),
        notes=(
            f"{rounds} rounds per side, alternating; {fmt(events)} events per round "
            f"({CLIENTS} runs of {TICKS} async tasks, starts spread over {SPREAD_SECONDS:g} s); "
            "latency = receive time - the event's `at`, events after the gate opened; the "
            "service shows committed events only (SQLite journal), both sides journal",
            f"memory: VmRSS {found.rss_without / 1024:.1f} MiB with {CLIENTS} waiting runs, "
            f"{found.rss_with / 1024:.1f} MiB with a stream open to each",
            f"reconnect: Last-Event-ID = the {RECONNECT_AFTER}th event's id, p50 of "
            f"{len(found.cold)}; cold = a fresh server over the journal, warm = the one that "
            "ran them",
        ),
    )
