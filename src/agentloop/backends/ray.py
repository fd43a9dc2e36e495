"""Run tasks on a Ray cluster: the same tools, limits, scopes and traces, more machines.

Install with `pip install "agentloop-smol[ray]"`. Sync tools and smolagents managed agents run
as Ray tasks (a fresh agent copy per task, as locally); async tools run in one async Ray actor,
awaited there without a thread per call. Results come back by awaiting Ray's object refs on the
event loop: no polling and no blocking `ray.get` on the loop. Cancellation and timeouts reach
Ray (`ray.cancel`), and a task's slots are held until Ray reports the work ended.

The task's OpenTelemetry context travels as W3C trace context and is attached on the worker, so
spans made there join the run's trace when the workers have a tracer provider (see
docs/distributed.md). Targets that only make sense in this process (an `AsyncAgent` as a managed
agent) run locally, on the loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import ray
from opentelemetry import context as otel_context
from opentelemetry import propagate
from ray import cloudpickle

from ..core._targets import Target
from ..core._threads import Keeper
from ..errors import InvalidArgumentsError
from .base import TargetFailed, describe
from .local import LocalBackend

__all__ = ["RayBackend"]

Outcome = tuple[bool, Any]


def _attached(carrier: dict[str, str]) -> object:
    return otel_context.attach(propagate.extract(carrier))


@ray.remote
def _run_sync(
    call: Callable[[dict[str, Any]], Any], arguments: dict[str, Any], carrier: dict[str, str]
) -> Any:
    token = _attached(carrier)
    try:
        return call(arguments)
    finally:
        otel_context.detach(token)  # type: ignore[arg-type]


@ray.remote(num_cpus=0)
class _AsyncRunner:
    """One async actor runs every async target: many calls at once, no thread per call."""

    async def run(
        self,
        call: Callable[[dict[str, Any]], Any],
        arguments: dict[str, Any],
        carrier: dict[str, str],
    ) -> Any:
        token = _attached(carrier)
        try:
            value = call(arguments)
            return (await value) if inspect.isawaitable(value) else value
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]


class RayBackend:
    """A backend that sends tasks to Ray.

    Args:
        address: the cluster to join (`"auto"`, `"ray://host:10001"`); `None` starts a local
            instance if Ray is not initialised yet.
        init_kwargs: extra `ray.init` arguments (e.g. `num_cpus`, `runtime_env`).
        task_options: `.options(...)` for each sync task (e.g. `{"num_cpus": 1}`).
        shutdown_on_close: shut Ray down at `aclose()` if this backend started it.
        force_cancel: cancel sync tasks with `ray.cancel(force=True)`, which kills the worker
            process. Without it Ray interrupts Python code but not a blocking C call such as
            `time.sleep`, which then runs to its end (its slots stay taken until it does).
    """

    name = "ray"
    runs_async_inline = False

    def __init__(
        self,
        *,
        address: str | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
        task_options: Mapping[str, Any] | None = None,
        shutdown_on_close: bool = True,
        force_cancel: bool = False,
    ) -> None:
        self._address = address
        self._init_kwargs = dict(init_kwargs or {})
        self._task_options = dict(task_options or {})
        self._shutdown_on_close = shutdown_on_close
        self._force_cancel = force_cancel
        self._local = LocalBackend()
        self._keeper = Keeper()
        self._started = False
        self._started_ray = False
        self._start_lock: asyncio.Lock | None = None
        self._actor: Any = None
        self._portable_checked: set[str] = set()
        self._code_refs: dict[str, Any] = {}

    # -- submit-time checks -------------------------------------------------------------------

    def check(self, target: Target, arguments: dict[str, Any]) -> None:
        """Refuse at submit what Ray could not ship (a lock, an open file, a client...)."""
        if target.portable is None:
            return
        self._check_portable(target)
        try:
            cloudpickle.dumps(arguments)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise InvalidArgumentsError(
                f"arguments for `{target.name}` cannot be sent to Ray "
                f"({type(exc).__name__}: {exc}); pass picklable values."
            ) from None

    def _check_portable(self, target: Target) -> None:
        """Pickle the target's code once, so a target Ray cannot ship fails at submit."""
        if target.name in self._portable_checked:
            return
        try:
            cloudpickle.dumps(target.portable)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise InvalidArgumentsError(
                f"`{target.name}` cannot be sent to Ray ({type(exc).__name__}: {exc}); "
                "its code and what it holds must be picklable (see docs/distributed.md)."
            ) from None
        self._portable_checked.add(target.name)

    def _code_ref(self, target: Target) -> Any:
        """The target's code in Ray's object store, put there once and shared by its tasks."""
        ref = self._code_refs.get(target.name)
        if ref is None:
            ref = self._code_refs[target.name] = ray.put(target.portable)
        return ref

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def live(self) -> int:
        return self._keeper.live + self._local.live

    async def settle(self, grace: float, ignore_thread: int | None = None) -> int:
        return await self._keeper.settle(grace) + await self._local.settle(grace, ignore_thread)

    async def _start(self) -> None:
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            if not ray.is_initialized():
                init = functools.partial(
                    ray.init, address=self._address, log_to_driver=False, **self._init_kwargs
                )
                await asyncio.to_thread(init)  # a few seconds; never on the loop
                self._started_ray = True
            self._started = True

    def _async_runner(self) -> Any:
        if self._actor is None:
            self._actor = _AsyncRunner.options(max_concurrency=10_000).remote()  # type: ignore[attr-defined]
        return self._actor

    async def aclose(self) -> None:
        if self._actor is not None:
            ray.kill(self._actor)
            self._actor = None
        if self._started_ray and self._shutdown_on_close:
            await asyncio.to_thread(ray.shutdown)
        self._started = self._started_ray = False
        self._code_refs.clear()
        await self._local.aclose()

    # -- running ------------------------------------------------------------------------------

    async def call(
        self, target: Target, arguments: dict[str, Any], release: Callable[[], None]
    ) -> Any:
        if target.portable is None:  # e.g. an AsyncAgent: it lives on this loop
            return await self._local.call(target, arguments, release)
        try:
            await self._start()
            call = self._code_ref(target)
        except BaseException:
            release()
            raise
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the task's span, as W3C trace context
        if target.is_async:
            ref = self._async_runner().run.remote(call, arguments, carrier)
        else:
            remote = _run_sync.options(**self._task_options) if self._task_options else _run_sync
            ref = remote.remote(call, arguments, carrier)
        try:
            ok, value = await self._keeper.run(_outcome(ref), release)
        except asyncio.CancelledError:
            # Reaches the worker; the keeper holds the slots until the work really ends.
            ray.cancel(ref, force=self._force_cancel and not target.is_async)
            raise
        if not ok:
            raise TargetFailed(value, _ray_description(value))
        return value


async def _outcome(ref: Any) -> Outcome:
    """Await a Ray object ref on the loop; failures become values so nothing goes unretrieved."""
    try:
        return True, await ref
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        return False, exc


def _ray_description(exc: BaseException) -> str:
    """The target's own `Type: message` when Ray wrapped it, else Ray's error."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return describe(cause)
    return describe(exc)
