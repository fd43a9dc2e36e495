"""The tasks of one scope: reserved, live and finished records, and lookups that explain misses.

Reservations come from any thread (a controller submitting), everything else happens on the
loop. Reserving (check an id is free, then take it, and count the quota) happens under one
plain lock held only for dictionary operations: copying, validating and rendering happen
outside it, so a hostile submission cannot stall the loop. The loop's own writes (a record
becomes visible, a finished one is evicted) need no lock, which keeps them off the per-task hot
path: each is a single dictionary operation (atomic under the GIL), and a started record is put
in `records` before it leaves `reserved`, so a reserving thread always sees its id taken.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterable

from .._text import close_match_hint, truncate
from ..core._validation import checked_limit, checked_status, checked_task_id
from ..errors import DuplicateTaskIdError, UnknownTaskError
from ..tasks import TaskInfo, TaskStatus
from ._record import TaskRecord

__all__ = ["TaskTable"]


class TaskTable:
    """Records of one scope; finished ones beyond `max_history` are evicted, oldest first."""

    def __init__(self, max_history: int) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, TaskRecord] = {}
        self.reserved: dict[str, TaskRecord] = {}
        """Submitted (maybe from a thread), not yet started on the loop."""
        self._max_history = max_history
        self._finished: deque[str] = deque()
        self._evicted = 0
        self._ids = itertools.count(1)

    # -- under `lock` (callers hold it) --------------------------------------------------------

    def new_id(self, task_id: str | None, target_name: str) -> str:
        """A free id: the caller's (checked for clashes) or a generated one."""
        if task_id is None:
            while (candidate := f"{target_name}_{next(self._ids)}") in self.records or (
                candidate in self.reserved
            ):
                pass
            return candidate
        taken = self.records.get(task_id) or self.reserved.get(task_id)
        if taken is not None:
            raise DuplicateTaskIdError(
                f"task id `{task_id}` is already used in this run "
                f"(by a `{taken.target.name}` task); choose another or omit it."
            )
        return task_id

    def peek(self, task_id: str) -> TaskRecord | None:
        return self.reserved.get(task_id) or self.records.get(task_id)

    # -- on the loop ----------------------------------------------------------------------------

    def start(self, record: TaskRecord) -> None:
        """A reserved record becomes visible (in `records` first: see the module docstring)."""
        self.records[record.task_id] = record
        self.reserved.pop(record.task_id, None)

    def settled(self, record: TaskRecord) -> None:
        """A record reached a final state and its task ended (or was abandoned); once."""
        if record.settled:
            return
        record.settled = True
        record.task = None
        self._finished.append(record.task_id)
        while len(self._finished) > self._max_history:
            self.records.pop(self._finished.popleft(), None)
            self._evicted += 1

    def unsettled(self) -> list[TaskRecord]:
        return [r for r in self.records.values() if not r.settled]

    # -- lookups --------------------------------------------------------------------------------

    def find(self, task_id: object) -> TaskRecord:
        record = self.records.get(checked_task_id(task_id))  # bounded before any lookup
        if record is None:
            raise self.unknown(task_id)  # type: ignore[arg-type]
        return record

    def find_all(self, task_ids: Iterable[str]) -> list[TaskRecord]:
        records = [self.find(task_id) for task_id in task_ids]
        return list({record.task_id: record for record in records}.values())

    def unknown(self, task_id: str) -> UnknownTaskError:
        known = list(self.records)  # one C-level copy: atomic under the GIL
        hint = close_match_hint(task_id, known)
        recent = ", ".join(f"`{k}`" for k in known[-5:]) or "none yet"
        evicted = (
            f" {self._evicted} older finished tasks were evicted from history."
            if self._evicted
            else ""
        )
        return UnknownTaskError(
            f"no task `{truncate(task_id, 80)}` in this run.{hint} "
            f"Recent task ids: {recent}.{evicted}"
        )

    def list(self, status: TaskStatus | str | None, limit: int | None) -> list[TaskInfo]:
        """Snapshots in submission order, the last `limit` of them."""
        wanted = checked_status(status)
        limit = checked_limit(limit)
        records = [r for r in self.records.values() if wanted is None or r.status is wanted]
        if limit is not None:
            records = records[-limit:] if limit else []
        return [r.snapshot() for r in records]
