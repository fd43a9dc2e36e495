"""Journaled runs in processes of their own, for the recovery tests (`test_recovery.py`,
`tests/postgres/test_recovery_replicas.py`).

`python -m tests.durability.recovery_worker JOURNAL LOG ROLE [RUN_ID ...]`

Each run's task names a key; its one model step submits `work(key)` and answers with the
result. Every execution of `work` appends `<pid> work <key>` to LOG (flushed to disk), so the
parent counts which process ran what. Roles:

- `hold`: run every RUN_ID (`arun`) and hang inside `work`, saying `IN_FLIGHT <key>` on stdout
  for each, until killed. A RUN_ID starting with `foreign-` runs on another agent (other
  instructions, so another configuration fingerprint).
- `replica`: `recovering()` until stdin closes (and `hold` for the RUN_IDs given, hanging in
  their `work`, when `AGENTLOOP_TEST_HOLD=1`); says `READY` once its first pass is done, then
  prints one JSON line of what it recovered.

With `AGENTLOOP_TEST_HOST` set, the process poses as that machine (its host name), so its
leases are taken over only when they expire, as a replica's on another machine would be.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from ._worker_io import say

LEASE_SECONDS = float(os.environ.get("AGENTLOOP_TEST_LEASE", "30"))

CODE = """
t = submit_task("tool", "work", {{"key": {key!r}}})
wait_for_tasks([t])
final_answer(get_task_results([t])[t])
"""


def task_for(run_id: str) -> str:
    return f"Do the work of key={run_id}"


def build_agent(
    journal: Any, log_path: str, *, hang: bool, foreign: bool = False, **options: Any
) -> Any:
    """The agent every process of these tests builds (the same configuration fingerprint,
    unless `foreign`); `hang`: `work` never returns."""
    from agentloop import create_async_agent
    from agentloop.testing import FunctionModel

    def log(key: str) -> None:
        with open(log_path, "a", encoding="utf-8") as log_file:
            log_file.write(f"{os.getpid()} work {key}\n")
            log_file.flush()
            os.fsync(log_file.fileno())

    async def work(key: str) -> str:
        """Do the work of one key."""
        log(key)
        if hang:
            say(f"IN_FLIGHT {key}")
            await asyncio.Event().wait()
        return f"done-{key}"

    def reply(messages: list[Any]) -> str:
        text = str(messages[1].content if len(messages) > 1 else messages[0].content)
        key = text.rsplit("key=", 1)[1].split()[0].strip("'\"}]")
        return CODE.format(key=key)

    return create_async_agent(
        tools=[work],
        model=FunctionModel(reply),
        journal=journal,
        idempotent={"work"},
        lease_seconds=LEASE_SECONDS,
        instructions="another agent" if foreign else None,
        **options,
    )


async def hold(journal: str, log: str, run_ids: list[str]) -> None:
    mine = build_agent(journal, log, hang=True)
    other = build_agent(journal, log, hang=True, foreign=True)
    async with asyncio.TaskGroup() as group:
        for run_id in run_ids:
            agent = other if run_id.startswith("foreign-") else mine
            group.create_task(agent.arun(task_for(run_id), run_id=run_id))


async def replica(journal: str, log: str, run_ids: list[str]) -> None:
    import anyio.to_thread

    from agentloop import PostgresJournal

    store = PostgresJournal(journal, schema=os.environ["AGENTLOOP_TEST_SCHEMA"])
    holding = os.environ.get("AGENTLOOP_TEST_HOLD") == "1"
    agent = build_agent(store, log, hang=holding)
    async with agent, agent.recovering(interval=0.2) as progress:
        held = [asyncio.create_task(agent.arun(task_for(r), run_id=r)) for r in run_ids]
        await progress.wait_passes(1)
        say("READY")
        await anyio.to_thread.run_sync(sys.stdin.read)  # until the parent closes stdin
        for task in held:
            task.cancel()
        recovered = [
            {"run_id": r.run_id, "ok": r.ok, "previous_holder": r.previous_holder}
            for r in progress.recovered
        ]
    say(json.dumps({"recovered": recovered, "lost": progress.lost}))


def main() -> None:
    journal, log, role, *run_ids = sys.argv[1:]
    host = os.environ.get("AGENTLOOP_TEST_HOST")
    if host:
        import socket

        socket.gethostname = lambda: host  # before agentloop reads it
    if role == "hold":
        asyncio.run(hold(journal, log, run_ids))
    elif role == "replica":
        asyncio.run(replica(journal, log, run_ids))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
