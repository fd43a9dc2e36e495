"""A journaled session in a process of its own, for `test_durable_sessions.py`.

`python -m tests.durability.session_worker JOURNAL SESSION_ID LOG MODE`

The conversation: turn 1 stores `secret = 7` and fetches 10 in a task; turn 2 adds them (it
reads turn 1's variable and task); turn 3 answers from what it remembers; turn 4 charges the
secret in a task. Every model call and tool execution appends a line to LOG (flushed to disk),
so the parent can count what ran in which process. MODE:

- `two`: turns 1 and 2, then says `TWO_DONE` and waits with the session open (to be killed).
- `third`: opens the session and asks turn 3.
- `crash4`: turns 1 and 2, then turn 4, whose `charge` says `IN_FLIGHT` and hangs (to be killed).
- `resume4`: opens the session, asks another task (refused), then turn 4's task again.

The last line on stdout is a JSON summary; a refused open exits 3 with the error as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from agentloop import AgentloopError, create_async_agent
from agentloop.testing import FunctionModel

from ._worker_io import execution_log, fetch_tool, say

TASKS = {
    "t1": "Turn one: remember the secret and fetch a number.",
    "t2": "Turn two: add the fetched number to the secret.",
    "t3": "Turn three: what do you remember?",
    "t4": "Turn four: charge the secret.",
}
CODE = {
    "t1": 'secret = 7\nt = submit_task("tool", "fetch", {"n": 1})\n'
    'wait_for_tasks([t])\nfinal_answer("noted")',
    "t2": "total = secret + get_task_results([t])[t]\nfinal_answer(total)",
    "t4": 'c = submit_task("tool", "charge", {"amount": secret})\n'
    "wait_for_tasks([c])\nfinal_answer(get_task_results([c])[c])",
}


def text_of(message: Any) -> str:
    content = getattr(message, "content", None)
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def role_of(message: Any) -> str:
    return str(getattr(message.role, "value", message.role))


def current_turn(messages: list[Any]) -> tuple[str, int]:
    """Which task the model is asked now (the latest task message), and its step in it."""
    latest, at = "", 0
    for i, message in enumerate(messages):
        if role_of(message) == "user":
            for key, task in TASKS.items():
                if task in text_of(message):
                    latest, at = key, i
    steps = sum(1 for m in messages[at:] if role_of(m) == "assistant")
    return latest, steps + 1


def main() -> None:
    journal, session_id, log_path, mode = sys.argv[1:5]

    log = execution_log(log_path)
    fetch = fetch_tool(log)

    async def charge(amount: int) -> str:
        """Charge an amount."""
        log(f"charge {amount}")
        if mode == "crash4":
            say("IN_FLIGHT")
            await asyncio.Event().wait()
        return f"receipt-{amount}"

    def reply(messages: list[Any]) -> str:
        key, step = current_turn(messages)
        log(f"model {key} step {step}")
        if key != "t3":
            return CODE[key]
        seen = "\n".join(text_of(m) for m in messages)
        remembered = all(TASKS[k] in seen for k in ("t1", "t2")) and CODE["t2"] in seen
        return f"final_answer({{'total': total, 'secret': secret, 'seen': {remembered}}})"

    agent = create_async_agent(
        tools=[fetch, charge], model=FunctionModel(reply), journal=journal, idempotent={"charge"}
    )

    async def run() -> dict[str, Any]:
        async with agent, agent.session(session_id=session_id) as session:
            if mode in ("two", "crash4"):
                answers = [await session.arun(TASKS["t1"]), await session.arun(TASKS["t2"])]
                if mode == "two":
                    say("TWO_DONE " + json.dumps(answers))
                    await asyncio.Event().wait()
                await session.arun(TASKS["t4"])
            if mode == "third":
                return {"answer": await session.arun(TASKS["t3"])}
            unfinished, refused = session.unfinished_task, None
            try:
                await session.arun(TASKS["t3"])
            except AgentloopError as exc:
                refused = type(exc).__name__
            return {
                "unfinished": unfinished,
                "refused": refused,
                "answer": await session.arun(TASKS["t4"]),
            }

    try:
        summary = asyncio.run(run())
    except AgentloopError as exc:
        say(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        raise SystemExit(3) from None
    say(json.dumps(summary))


if __name__ == "__main__":
    main()
