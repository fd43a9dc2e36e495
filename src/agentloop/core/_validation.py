"""Checks of values that callers and model code pass in, shared by the core and the task tools.

Each check is cheap and bounded before it does any work on its input (a task id is measured
before it is looked up, a string is never scanned past its limit), names the parameter, shows
what was received and says what is valid.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from typing import Any

from .._text import close_match_hint, shown
from ..errors import InvalidArgumentsError
from ..tasks import ReturnWhen, TaskStatus

__all__ = [
    "MAX_RETRIES",
    "MAX_TASK_ID_LENGTH",
    "checked_limit",
    "checked_retries",
    "checked_return_when",
    "checked_seconds",
    "checked_status",
    "checked_task_id",
    "checked_timeout",
    "id_list",
]

MAX_TASK_ID_LENGTH = 128
MAX_RETRIES = 10
MAX_IDS = 10_000
"""Most task ids one call may name (a run holds at most `max_history` anyway)."""


def _as_seconds(value: float) -> float:
    """A checked non-negative number as a float; an int beyond float's range is infinite."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def checked_seconds(value: Any, name: str) -> float:
    """A non-negative number of seconds (NaN refused; past float's range: infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InvalidArgumentsError(
            f"`{name}` must be a non-negative number of seconds, received {shown(value)}."
        )
    return _as_seconds(value)


def checked_timeout(value: Any) -> float:
    """A task's per-attempt timeout: a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidArgumentsError(
            f"`timeout` must be a positive number of seconds or None, received {shown(value)}."
        )
    return _as_seconds(value)


def checked_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise InvalidArgumentsError(
            f"`retries` must be an integer from 0 to {MAX_RETRIES}, received {shown(value)}."
        )
    return value


def checked_return_when(value: Any) -> ReturnWhen:
    if value == "all" and isinstance(value, str):
        return "all"
    if value == "any" and isinstance(value, str):
        return "any"
    raise InvalidArgumentsError(f"`return_when` must be 'all' or 'any', received {shown(value)}.")


def checked_limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentsError(
            f"`limit` must be a non-negative integer or None, received {shown(value)}."
        )
    return value


def checked_status(status: Any) -> TaskStatus | None:
    if status is None or isinstance(status, TaskStatus):
        return status
    valid = ", ".join(f"'{s.value}'" for s in TaskStatus)
    if not isinstance(status, str):  # checked first: the enum lookup would hash any value
        raise InvalidArgumentsError(
            f"a status must be a string, received {type(status).__name__} {shown(status)}."
            f" Valid: {valid}, or None for all."
        )
    with contextlib.suppress(ValueError):
        return TaskStatus(status)
    raise InvalidArgumentsError(
        f"unknown status {shown(status)}.{close_match_hint(status, TaskStatus)}"
        f" Valid: {valid}, or None for all."
    )


def checked_task_id(task_id: Any) -> str:
    """A task id as a caller names it: a string of at most `MAX_TASK_ID_LENGTH` characters.

    Checked before any lookup, so a megabyte-long "id" costs nothing but this comparison."""
    if not isinstance(task_id, str):
        raise InvalidArgumentsError(
            f"a task id must be a string such as the one `submit` returned, "
            f"received {type(task_id).__name__} {shown(task_id)}."
        )
    if len(task_id) > MAX_TASK_ID_LENGTH:
        raise InvalidArgumentsError(
            f"a task id is at most {MAX_TASK_ID_LENGTH} characters; received one of "
            f"{len(task_id)} ({shown(task_id, 40)}). Use the ids `submit_task` returned."
        )
    return task_id


def id_list(task_ids: Any) -> list[str]:
    """Task ids as a list of checked strings: one id, or a list/tuple/set of them, or the dict
    `get_task_results` returned (its keys). Any iterable is read at most `MAX_IDS` items far."""
    if isinstance(task_ids, str):
        return [checked_task_id(task_ids)]
    if isinstance(task_ids, dict):
        task_ids = list(task_ids)
    if not isinstance(task_ids, Iterable):
        raise InvalidArgumentsError(
            f"expected a list of task ids, received {type(task_ids).__name__} {shown(task_ids)}."
        )
    listed: list[str] = []
    try:  # any value may come from model code: iterate it once, then check each item
        for item in task_ids:
            if len(listed) >= MAX_IDS:
                raise InvalidArgumentsError(f"at most {MAX_IDS} task ids may be named at once.")
            listed.append(checked_task_id(item))
    except InvalidArgumentsError:
        raise
    except Exception as exc:
        raise InvalidArgumentsError(
            f"expected a list of task ids, received {type(task_ids).__name__} {shown(task_ids)}."
        ) from exc
    return listed
