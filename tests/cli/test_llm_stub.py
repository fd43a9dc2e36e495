"""The LLM stub itself: streaming in OpenAI's chunk format, its rate and token limits, and its
scripted failures and delays. Other tests lean on these behaviours, so they are pinned here,
over plain HTTP and once through litellm's own stream parser."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import litellm
import pytest

from .llm_stub import LLMStub

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi there"}]}


def post(stub: LLMStub, body: dict[str, Any] = BODY) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.post(f"{stub.base_url}/chat/completions", json=body)


def events(response: httpx.Response) -> list[Any]:
    lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
    return [line[6:] if line == "data: [DONE]" else json.loads(line[6:]) for line in lines]


def test_a_stream_is_chunks_then_finish_then_usage_then_done() -> None:
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    with LLMStub(["one two three"]) as stub:
        response = post(stub, body)

    assert response.headers["content-type"] == "text/event-stream"
    *chunks, last = events(response)
    assert last == "[DONE]"
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    texts = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert texts == ["one ", "two ", "three"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert stub.requests[0].streamed


def test_without_include_usage_a_stream_has_no_usage_chunk() -> None:
    with LLMStub(["abcdefg"], chunk_chars=3) as stub:
        *chunks, _ = events(post(stub, {**BODY, "stream": True}))

    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["abc", "def", "g"]
    assert all("usage" not in chunk for chunk in chunks)


def test_the_gate_holds_a_stream_after_its_first_text_chunk() -> None:
    gate = threading.Event()
    body = {**BODY, "stream": True}
    with LLMStub(["alpha beta gamma"], stream_gate=gate) as stub:
        url = f"{stub.base_url}/chat/completions"
        with (
            httpx.Client(trust_env=False, timeout=10) as client,
            client.stream("POST", url, json=body) as response,
        ):
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("data: ") and '"alpha ' in line:
                    break
            assert stub.streams_ended == 0  # the first delta arrived while the rest waits
            gate.set()
            rest = "\n".join(lines)

    assert '"beta ' in rest and '"gamma"' in rest and "data: [DONE]" in rest
    assert stub.streams_ended == 1


async def test_litellm_reads_the_stream_and_its_usage() -> None:
    litellm.suppress_debug_info = True
    with LLMStub(["Forty two, as computed."], chunk_chars=5) as stub:
        response = await litellm.acompletion(
            model="openai/gpt-4o-mini",
            api_key="sk-test",
            api_base=stub.base_url,
            messages=BODY["messages"],
            stream=True,
            stream_options={"include_usage": True},
            max_retries=0,
        )
        deltas, usage = [], None
        async for chunk in response:
            if chunk.choices and chunk.choices[0].delta.content:
                deltas.append(chunk.choices[0].delta.content)
            usage = getattr(chunk, "usage", None) or usage

    assert "".join(deltas) == "Forty two, as computed."
    assert len(deltas) == 5
    assert usage is not None and usage.completion_tokens == 4 and usage.prompt_tokens == 2


def test_past_the_rate_limit_a_429_says_when_a_slot_frees() -> None:
    with LLMStub(respond=lambda request: "ok", rate_limit=(2, 5.0)) as stub:
        statuses = [post(stub).status_code for _ in range(2)]
        refused = post(stub)

    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    wait_ms = int(refused.headers["retry-after-ms"])
    assert 4000 < wait_ms <= 5000
    assert refused.headers["retry-after"] == "5"
    assert stub.rate_limited == 1
    assert len(stub.accepted_at) == 2
    assert [r.status for r in stub.requests] == [200, 200, 429]


def test_the_token_limit_counts_prompt_and_reply() -> None:
    # the first request counts 2 prompt + 3 reply tokens = 5; the next one's 2 prompt tokens
    # would make 7, past a limit of 6 (a request is admitted on its prompt, charged its reply)
    with LLMStub(respond=lambda request: "a b c", token_limit=(6, 5.0)) as stub:
        first, second = post(stub), post(stub)

    assert (first.status_code, second.status_code) == (200, 429)
    assert stub.rate_limited == 1


def test_a_request_larger_than_the_token_limit_passes_an_empty_window() -> None:
    with LLMStub(["a b c d e"], token_limit=(1, 5.0)) as stub:
        assert post(stub).status_code == 200


def test_fail_next_scripts_statuses_and_retry_headers_then_replies() -> None:
    with LLMStub(["fine"]) as stub:
        stub.fail_next(503, 429, retry_after=2, retry_after_ms=None)
        answers = [post(stub) for _ in range(3)]

    assert [a.status_code for a in answers] == [503, 429, 200]
    assert answers[1].headers["retry-after"] == "2"
    assert "retry-after-ms" not in answers[1].headers


def test_respond_writes_a_reply_once_scripted_ones_ran_out() -> None:
    with LLMStub(["scripted"], respond=lambda request: request.text("user").upper()) as stub:
        first, second = post(stub), post(stub)

    assert first.json()["choices"][0]["message"]["content"] == "scripted"
    assert second.json()["choices"][0]["message"]["content"] == "HI THERE"


def test_bad_window_values_are_refused() -> None:
    with pytest.raises(ValueError, match="limit >= 1"):
        LLMStub(rate_limit=(0, 1.0))
