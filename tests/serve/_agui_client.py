"""An AG-UI client for the tests: post a `RunAgentInput`, read the SSE frames, check every
event against `ag_ui.core` (the discriminated `Event` union) and its `EventEncoder`."""

from __future__ import annotations

import json
from typing import Any

import httpx
from ag_ui.core import Event
from ag_ui.encoder import EventEncoder
from pydantic import TypeAdapter

EVENT: TypeAdapter[Any] = TypeAdapter(Event)
ENCODER = EventEncoder()


def agui_frames(body: str) -> list[dict[str, Any]]:
    """`[{"id": int | None, "event": dict}]`, each event validated and re-encoded to the same
    bytes by the package's encoder."""
    found = []
    for block in body.split("\n\n"):
        event_id, payload = None, None
        for line in block.splitlines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                payload = line[6:]
        if payload is None:
            continue
        model = EVENT.validate_json(payload)  # raises on anything the protocol does not allow
        assert ENCODER.encode(model) == f"data: {payload}\n\n", payload
        found.append({"id": event_id, "event": json.loads(payload)})
    return found


def run_input(thread: str, run: str, text: str | None = "ship it", **extra: Any) -> dict[str, Any]:
    messages = [] if text is None else [{"id": f"{run}-m", "role": "user", "content": text}]
    return {"threadId": thread, "runId": run, "messages": messages, **extra}


async def post_agui(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    *,
    last: int | None = None,
    stop_after: int | None = None,
) -> list[dict[str, Any]]:
    """The AG-UI stream of one POST (until its end, or `stop_after` frames: then it leaves)."""
    headers = {} if last is None else {"Last-Event-ID": str(last)}
    text = ""
    async with client.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for chunk in response.aiter_text():
            text += chunk
            if stop_after is not None and len(agui_frames(text)) >= stop_after:
                break
    found = agui_frames(text)
    return found[:stop_after] if stop_after is not None else found


def types(frames: list[dict[str, Any]]) -> list[str]:
    return [f["event"]["type"] for f in frames]
