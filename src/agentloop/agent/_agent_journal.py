"""What an agent with a journal keeps for all its runs, built once per agent.

The journal itself, the targets that may run again after a crash (`idempotent=`), the hooks
that find out whether an interrupted task took effect (`reconcile=`), the lease
length, one group-commit `JournalWriter` per event loop the agent runs on, and the agent's
configuration fingerprint (computed again only when its targets change). Each `arun` gets a
`DurableRun` from it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import anyio.to_thread

from .._text import close_match_hint
from ..core._effects import ReconcileHook
from ..core._targets import Target
from ..errors import InvalidArgumentsError
from ..journal._types import BUILTIN_TYPES, JournalTypes
from ..journal._types import registry as journal_registry
from ..journal._writer import JournalWriter
from ..journal.base import Journal, RunSummary
from ._durable import DurableRun, JournalSpec, agent_fingerprint, call_fingerprint, open_journal

__all__ = ["AgentJournal", "agent_journal"]


class AgentJournal:
    """The durable-runs state of one agent (see the module docstring)."""

    def __init__(
        self,
        journal: Journal,
        *,
        idempotent: frozenset[str],
        lease_seconds: float,
        reconcile: Mapping[str, ReconcileHook] | None = None,
        types: JournalTypes = BUILTIN_TYPES,
    ) -> None:
        """`idempotent`, `lease_seconds`, `reconcile` and `types` are already checked (before
        the journal opened)."""
        self.journal = journal
        self.types = types
        """The classes its runs' results and answers may be stored as (`journal_types=`)."""
        self.idempotent = idempotent
        self.reconcile: Mapping[str, ReconcileHook] = reconcile or {}
        self.lease_seconds = float(lease_seconds)
        self._writers: dict[asyncio.AbstractEventLoop, JournalWriter] = {}
        """The writer on each loop the agent runs on (a writer holds its loop)."""
        self._fingerprint: tuple[tuple[int, ...], str, Any] | None = None
        self.shutting_down = threading.Event()
        """Set by the agent's shutdown (from any thread): the runs in flight hand their runs
        back (released leases) instead of recording them failed or cancelled."""

    def run(
        self,
        run_id: str,
        task: str,
        *,
        fresh: bool,
        force: bool,
        model: Any,
        targets: Sequence[Target],
        instructions: str | None,
        call: str = "",
    ) -> DurableRun:
        """One attempt at run `run_id` (`fresh`: a generated id, new by construction; `call`:
        the call's output type and images, see `call_fingerprint`)."""
        return DurableRun(
            self.journal,
            run_id,
            task,
            fingerprint=call_fingerprint(self.fingerprint(model, targets, instructions), call),
            writer=self.writer(),
            idempotent=self.idempotent,
            reconcile=self.reconcile,
            force=force,
            fresh=fresh,
            types=self.types,
            shutting_down=self.shutting_down,
        )

    def writer(self) -> JournalWriter:
        """The group-commit writer on the running loop."""
        loop = asyncio.get_running_loop()
        writer = self._writers.get(loop)
        if writer is None:
            for closed in [old for old in self._writers if old.is_closed()]:
                del self._writers[closed]  # `run()`'s portal loops come and go
            writer = JournalWriter(self.journal, lease_seconds=self.lease_seconds)
            self._writers[loop] = writer
        return writer

    @property
    def loops(self) -> int:
        """How many loops have a writer (one, unless runs are live on several loops)."""
        return len(self._writers)

    def fingerprint(self, model: Any, targets: Sequence[Target], instructions: str | None) -> str:
        """The configuration fingerprint, computed again only when the targets change."""
        key = tuple(id(t) for t in targets)
        cached = self._fingerprint
        if cached is None or cached[0] != key:
            value = agent_fingerprint(model, targets, instructions)
            cached = self._fingerprint = (key, value, targets)  # targets kept: ids stay theirs
        return cached[1]

    async def runs(self, limit: int) -> list[RunSummary]:
        """The journal's runs (read in a worker thread), each summary's `answer` built with
        the agent's `journal_types`."""

        def read() -> list[RunSummary]:
            runs = self.journal.runs(limit)
            return [dataclasses.replace(summary, journal_types=self.types) for summary in runs]

        return await anyio.to_thread.run_sync(read)

    async def aclose(self) -> None:
        """Wait until what the runs on this loop recorded is written."""
        writer = self._writers.get(asyncio.get_running_loop())
        if writer is not None:
            await writer.aclose()


def agent_journal(
    spec: JournalSpec,
    *,
    idempotent: Iterable[str],
    reconcile: Mapping[str, ReconcileHook] | None,
    lease_seconds: float,
    journal_types: Iterable[type],
    known: Sequence[str],
) -> AgentJournal | None:
    """An agent's durable-runs state from `create_async_agent`'s journal options (`None`
    without a journal), every option checked before a journal file is made."""
    chosen = checked_idempotent(idempotent, known)
    hooks = checked_reconcile(reconcile, known, journal=spec)
    if not lease_seconds > 0:
        raise InvalidArgumentsError(
            f"`lease_seconds` must be positive, received {lease_seconds!r}."
        )
    types = journal_registry(journal_types)
    opened = open_journal(spec)
    if opened is None:
        return None
    return AgentJournal(
        opened, idempotent=chosen, lease_seconds=lease_seconds, reconcile=hooks, types=types
    )


def checked_idempotent(names: Iterable[str], known: Sequence[str]) -> frozenset[str]:
    """`idempotent=` as a set of registered target names, or a clear error."""
    if isinstance(names, str):
        raise InvalidArgumentsError(
            f"`idempotent` must be a set of target names, received the string {names!r}; "
            f"write {{{names!r}}} for one name."
        )
    chosen = frozenset(names)
    for name in chosen:
        if name not in known:
            raise InvalidArgumentsError(
                f"`idempotent` names `{name}`, which is not a registered tool or managed "
                f"agent.{close_match_hint(name, list(known))} Registered: {', '.join(known)}."
            )
    return chosen


def checked_reconcile(
    hooks: Mapping[str, ReconcileHook] | None, known: Sequence[str], *, journal: object
) -> dict[str, ReconcileHook]:
    """`reconcile=` as `{target name: callable}` for registered targets, or a clear error."""
    if not hooks:
        return {}
    if not isinstance(hooks, Mapping):
        raise InvalidArgumentsError(
            "`reconcile` must map target names to hooks, received "
            f"{type(hooks).__name__}; write {{'charge': check_charge}}."
        )
    if journal is None:
        raise InvalidArgumentsError(
            "`reconcile=` needs a journal: a hook is asked when a journaled run resumes with a "
            "task left in flight. Add `journal='runs.sqlite'` (or a postgresql:// URL)."
        )
    for name, hook in hooks.items():
        if name not in known:
            raise InvalidArgumentsError(
                f"`reconcile` names `{name}`, which is not a registered tool or managed "
                f"agent.{close_match_hint(str(name), list(known))} Registered: {', '.join(known)}."
            )
        if not callable(hook):
            raise InvalidArgumentsError(
                f"`reconcile[{name!r}]` must be a callable `hook(task, arguments)` returning a "
                f"`Reconciliation`, received {type(hook).__name__}."
            )
    return dict(hooks)
