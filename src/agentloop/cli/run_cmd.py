"""`agentloop run`: one task, a real model through LiteLLM, the same live view as the demo.

Configuration. The key is `API_KEY`, else LiteLLM's own variable for the provider
(`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, ...), else none at all for a local endpoint given with
`--base-url` or `BASE_URL` (see `cli._credentials`). Variables come from the environment, then
from the env file (`.env` by default) read with python-dotenv as `async_task_system`'s examples
did (docs/migrating.md). Unlike their `override=True`, the real environment wins:
`API_KEY=... agentloop run ...` must mean what it says.

Retries. On LiteLLM's OpenAI-compatible path the request goes through the openai SDK client,
which retries 408/409/429/5xx answers and connection errors itself, honouring the server's
`retry-after` headers, else backing off exponentially from 0.5 s (at most 8 s). We pass
`max_retries=MODEL_RETRIES` (three attempts in all) explicitly rather than rely on the SDK's
default. We do not use litellm's `num_retries`: it sets the same client retries and, once they
are exhausted, re-runs the whole call through `completion_with_retries`, multiplying the
attempts; that path also needs `tenacity`, which litellm does not install, so the real error
would be replaced by "tenacity import failed". And we turn smolagents' own retry off
(`retry=False`): it retries any error whose text mentions 429 after sleeping 120-240 s, which
makes a CLI look hung. A call that still fails ends the run with one line naming the HTTP status
and endpoint (exit 1); `-v` adds the traceback.

Output. The view (a rich live table on a terminal, plain lines otherwise or with `--no-live`)
goes to stderr and the final answer to stdout, so `agentloop run ... > answer.txt` captures
just the answer. With `--events` there is no view: stdout carries the run's events, one JSON
line each (`event.to_dict()`), ending with `final_answer` or `run_failed`. The view, `--trace`
and `--events` all read the run's one event stream (`agent.astream`, see `cli.feed`).

The first line is printed before smolagents and litellm are imported (3-7 s
on a cold start), so the command never starts blank; this module imports neither at its top.
Approval. `--needs-approval NAME` (repeatable) makes calls of that tool or managed agent wait
for a person (see docs/approval.md); `--approve` asks on the terminal for each, one at a time
(the live view pauses while it asks; answers are read from stdin, `y` approves, anything else
rejects, end of input rejects). Without `--approve` such calls are rejected at once, with a
reason the model reads: asking only when told to keeps a piped or unattended run from hanging
on a question no one sees. See `cli.approve`.

Exit codes: 0 answered, 1 the run failed, 2 bad command line or configuration (including a
model id LiteLLM cannot route), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import reprlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from .._text import close_match_hint
from .._util import prefer_local_cost_map
from ..agent.stream import RunEventKind
from ..core._budgets import usd
from ..errors import AgentloopError
from ._credentials import MissingKeyError, credentials, endpoint
from ._exits import EXIT_USAGE
from .approve import TerminalApprovals, reject_unasked
from .eventlog import EventLog
from .feed import Sink, follow, json_lines
from .view import RunView

__all__ = ["MODEL_RETRIES", "run"]

EXIT_FAILED = 1
MODEL_RETRIES = 2
"""Retries of a failed model call (429, 5xx, connection errors) by the openai SDK client."""
DEFAULT_ENV_FILE = ".env"
_RETRIED = frozenset({408, 409, 429})
"""Statuses the openai client retries, besides 5xx."""
_HINTS = {
    401: "; check the API key (API_KEY, or the provider's variable)",
    403: "; check the API key (API_KEY, or the provider's variable)",
    404: "; check --model and --base-url / BASE_URL",
}

logger = logging.getLogger("agentloop")


class UsageError(Exception):
    """A problem with the command line or the configuration (exit code 2)."""


def run(args: argparse.Namespace) -> int:
    """Run `args.task` with a LiteLLM model; return the exit code."""
    view_console = Console(stderr=True, highlight=False)
    try:
        _load_env_file(args.env_file)  # first: tool modules may read its variables
        # before the slow part: smolagents and litellm take seconds to import on a cold start
        view_console.print(
            f"agentloop run · {args.model}: loading smolagents and LiteLLM...", markup=False
        )
        tools = _resolve_all("--tools", args.tools, _check_tool)
        managed = _resolve_all("--managed", args.managed, _check_agent)
        _check_approval_names(args.needs_approval, args.approve, [*tools, *managed])
        base_url = endpoint(args.base_url)
        model = _build_model(args.model, base_url, args.env_file)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)

    from ..agent.async_agent import (
        create_async_agent,  # imports smolagents: only once we know we run
    )

    view = RunView(
        view_console,
        live=view_console.is_terminal and not args.no_live,
        title=f"agentloop run · {args.model}",
    )
    log = EventLog()
    sinks: list[Sink] = [log.add, json_lines(sys.stdout) if args.events else view.on_event]
    shown = None if args.events else view
    started: float | None = None
    try:
        try:
            agent = create_async_agent(
                tools,
                managed,
                model=model,
                max_workers=args.max_workers,
                max_steps=args.max_steps,
                needs_approval=set(args.needs_approval) or None,
                approver=None if args.approve else reject_unasked(shown),
            )
        except AgentloopError as exc:
            return _fail(f"cannot set up the agent: {exc}", EXIT_USAGE)
        started = time.perf_counter()
        try:
            answer = asyncio.run(_run(agent, shown, args.task, sinks, ask=args.approve))
        except Exception as exc:
            if not _is_run_error(exc):
                raise
            logger.debug("the run failed", exc_info=True)
            return _fail(_describe(exc, base_url), EXIT_FAILED)
        steps = sum(e.kind is RunEventKind.STEP for e in log.last_run)
        tasks = len({e.task_event.task_id for e in log.last_run if e.task_event is not None})
        view_console.print(
            f"done in {time.perf_counter() - started:.2f}s: {steps} controller steps, "
            f"{tasks} tasks{_spent(log.last_run)}",
            markup=False,
        )
        if not args.events:  # else the answer is in the last event
            Console(highlight=False, soft_wrap=True).print(str(answer), markup=False)
        return 0
    finally:
        if args.trace and started is not None:  # also after a failed or interrupted run
            _write_trace(log, args.trace, view_console)


async def _run(agent: Any, view: RunView | None, task: str, sinks: list[Sink], *, ask: bool) -> Any:
    async with agent, contextlib.AsyncExitStack() as stack:
        stream = agent.astream(task)
        if ask:
            approvals = TerminalApprovals(stream, view, sys.stderr, sys.stdin)
            stack.push_async_callback(approvals.aclose)
            sinks = [*sinks, approvals.on_event]
        if view is not None:
            await stack.enter_async_context(view.showing())
        return await follow(stream, sinks)


def _spent(events: list[Any]) -> str:
    """`, 1234 tokens, $0.0012`: what the run's models spent, from its end event (the cost
    only where LiteLLM's cost map prices the model)."""
    usage = events[-1].extra.get("usage") if events else None
    if not isinstance(usage, dict):
        return ""
    text = f", {usage.get('total_tokens', 0)} tokens"
    cost = usage.get("cost_usd")
    return text + (f", {usd(cost)}" if isinstance(cost, float | int) else "")


def _write_trace(log: EventLog, path: str, console: Console) -> None:
    try:
        count = log.write_chrome_trace(path, process="agentloop run")
    except OSError as exc:
        _fail(f"--trace {path!r}: cannot write the trace: {exc}", EXIT_FAILED)
    else:
        console.print(f"wrote {count} trace events to {path}", markup=False)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"agentloop run: error: {message}\n")
    return code


# -- configuration ---------------------------------------------------------------------------


def _load_env_file(env_file: str) -> None:
    """Read `env_file` into the environment; variables already set win."""
    from dotenv import load_dotenv

    if Path(env_file).is_file():
        load_dotenv(env_file, override=False)
    elif env_file != DEFAULT_ENV_FILE:
        raise UsageError(f"--env-file {env_file!r}: no such file")


def _build_model(model_id: str, base_url: str | None, env_file: str) -> Any:
    """A smolagents `LiteLLMModel` with the key `cli._credentials` finds; a model id LiteLLM
    cannot route, or no key where the provider needs one, is a usage error.

    LiteLLM only finds out which provider serves `model_id` when the first call is made, and
    then reports it as an HTTP 400 from no provider at all; asking it here (no network) turns
    that into one line about the model id, before the run starts."""
    prefer_local_cost_map()  # before litellm's import: no cost-map download
    import litellm
    import openai
    from smolagents import LiteLLMModel

    litellm.suppress_debug_info = True  # its "Give Feedback" banner on every error
    try:
        litellm.get_llm_provider(model=model_id, api_base=base_url)
    except openai.BadRequestError:  # litellm's own subclasses it
        providers = [str(getattr(p, "value", p)) for p in litellm.provider_list]
        raise UsageError(_unknown_provider(model_id, providers)) from None
    try:
        key = credentials(model_id, base_url, env_file)
    except MissingKeyError as exc:
        raise UsageError(str(exc)) from None
    logger.debug("model %s at %s; API key: %s", model_id, base_url or "its provider", key.source)
    return LiteLLMModel(
        model_id=model_id,
        api_key=key.api_key,
        api_base=key.base_url,
        retry=False,
        max_retries=MODEL_RETRIES,
    )


def _unknown_provider(model_id: str, providers: list[str]) -> str:
    prefix, sep, name = model_id.partition("/")
    if sep:
        problem = f"`{prefix}` is not a LiteLLM provider.{close_match_hint(prefix, providers)}"
    else:
        problem, name = "the model id names no provider, and LiteLLM cannot infer one.", prefix
    return (
        f"--model {model_id!r}: {problem} Write PROVIDER/MODEL, e.g. `openai/{name}` (also for "
        "an OpenAI-compatible --base-url); providers: https://docs.litellm.ai/docs/providers"
    )


# -- --tools / --managed ---------------------------------------------------------------------


def _resolve_all(
    option: str, entries: list[str], check: Callable[[str, str, Any], None]
) -> list[Any]:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` does, so ./mytools.py is importable
    resolved: list[Any] = []
    for entry in entries:
        value = _resolve(option, entry)
        items = list(value) if isinstance(value, list | tuple) else [value]
        for item in items:
            check(option, entry, item)
        resolved.extend(items)
    return resolved


def _resolve(option: str, entry: str) -> Any:
    """Import `module:attr` (attr may be dotted) and return the attribute."""
    module_name, sep, attr = entry.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{option} {entry!r}: expected MODULE:ATTR, e.g. mytools:TOOLS")
    try:
        value: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise UsageError(
                f"{option} {entry!r}: no module named `{module_name}` "
                "(looked in the current directory and sys.path)"
            ) from None
        raise UsageError(f"{option} {entry!r}: importing `{module_name}` failed: {exc}") from None
    except Exception as exc:
        raise UsageError(
            f"{option} {entry!r}: importing `{module_name}` failed: {type(exc).__name__}: {exc}"
        ) from None
    owner = module_name
    for part in attr.split("."):
        if not hasattr(value, part):
            names = [n for n in dir(value) if not n.startswith("_")]
            raise UsageError(
                f"{option} {entry!r}: `{owner}` has no attribute `{part}`."
                f"{close_match_hint(part, names)}"
            )
        value = getattr(value, part)
        owner = f"{owner}.{part}"
    return value


def _check_tool(option: str, entry: str, item: Any) -> None:
    if isinstance(item, type):
        raise UsageError(
            f"{option} {entry!r}: `{item.__name__}` is a class; pass an instance "
            f"(`{item.__name__}()`) or a function"
        )
    if not callable(item):
        raise UsageError(
            f"{option} {entry!r}: expected a tool (a smolagents Tool or a function) or a list "
            f"of them, got {type(item).__name__} {reprlib.repr(item)}"
        )


def _check_agent(option: str, entry: str, item: Any) -> None:
    if isinstance(item, type):
        raise UsageError(
            f"{option} {entry!r}: `{item.__name__}` is a class; pass an agent instance"
        )
    if not callable(getattr(item, "run", None)) and not callable(getattr(item, "arun", None)):
        raise UsageError(
            f"{option} {entry!r}: expected an agent (a smolagents agent or an AsyncAgent) or a "
            f"list of them, got {type(item).__name__} {reprlib.repr(item)}"
        )


def _check_approval_names(names: list[str], ask: bool, targets: list[Any]) -> None:
    """`--needs-approval` must name a tool or managed agent; `--approve` needs one."""
    if ask and not names:
        raise UsageError("--approve: name the calls to ask about with --needs-approval NAME")
    known = [str(getattr(t, "name", None) or getattr(t, "__name__", "")) for t in targets]
    for name in names:
        if name not in known:
            raise UsageError(
                f"--needs-approval {name!r}: no tool or managed agent of that name "
                f"(known: {', '.join(sorted(known)) or 'none'}).{close_match_hint(name, known)}"
            )


# -- failures --------------------------------------------------------------------------------


def _is_run_error(exc: BaseException) -> bool:
    """Errors of the run itself (model, API, agent), as opposed to bugs."""
    import openai
    from smolagents.utils import AgentError

    return isinstance(exc, AgentloopError | AgentError | openai.APIError)


def _describe(exc: BaseException, base_url: str | None) -> str:
    """One line: what failed, where, and the underlying error."""
    import openai
    from smolagents.utils import AgentGenerationError

    chain = _chain(exc)
    root = chain[-1]
    api_error = next((e for e in chain if isinstance(e, openai.APIError)), None)
    if api_error is None:
        what = "model call failed" if isinstance(exc, AgentGenerationError) else "the run failed"
        return f"{what}: {type(root).__name__}: {_first_line(root)}"
    provider = getattr(api_error, "llm_provider", None)
    where = base_url or (f"the `{provider}` provider" if provider else "the model provider")
    gave_up = f"; gave up after {MODEL_RETRIES} retries"
    # litellm reports a refused connection as HTTP 500; the openai error below says what it was
    connection = next((e for e in chain if isinstance(e, openai.APIConnectionError)), None)
    if connection is not None:
        timed_out = isinstance(connection, openai.APITimeoutError)
        what = "timed out waiting for" if timed_out else "could not connect to"
        cause = f"{type(root).__name__}: {_first_line(root)}"
        return f"model call failed: {what} {where} ({cause}){gave_up}"
    status = getattr(api_error, "status_code", None) or 0
    hint = gave_up if status in _RETRIED or status >= 500 else _HINTS.get(status, "")
    return f"model call failed: HTTP {status} from {where} ({_first_line(api_error)}){hint}"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
