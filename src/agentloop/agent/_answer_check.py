"""Checking a typed run's final answer, and handing a bad one back to the model.

smolagents runs a `CodeAgent`'s `final_answer_checks` on every `final_answer(...)` the model's
code makes; a check that raises turns the answer down, and smolagents shows the error to the
model as the step's observation ("Check ... failed with error: ..."), so the model corrects it
on its next step. Every controller agentloop builds has one such check,
`answer_matches_output_type`, which asks the turn's `AnswerCheck` (a context variable the turn
sets, copied into the controller thread with the rest of its context); an untyped turn has
none and the check accepts at once.

A turn's `AnswerCheck` validates in the controller thread (the model's value never reaches the
event loop), keeps the value it accepted and its JSON form, and turns down at most `retries`
answers. The next bad one is let through so the run ends at once (no further model call), and
the turn then fails with `AnswerValidationError`. A run that reaches `max_steps` ends with the
text reply smolagents asks for; that is validated (as JSON) when the turn ends.

A journaled session replays its recorded turns without their output types (a type is code; a
journal holds data): a replayed turn's check turns down the same answers with the messages
recorded when it ran live (`replaying`), so the rebuilt memory is the one the model saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

import anyio.to_thread

from ..errors import AnswerValidationError, InvalidArgumentsError
from ._answer_data import AnswerProblem
from ._answer_type import AnswerType

__all__ = [
    "ANSWER_CHECK",
    "DEFAULT_OUTPUT_RETRIES",
    "AnswerCheck",
    "AnswerTypes",
    "answer_matches_output_type",
]

DEFAULT_OUTPUT_RETRIES = 2
"""Answers of a typed run handed back to the model for correction before the run fails."""

ANSWER_CHECK: ContextVar[AnswerCheck | None] = ContextVar("agentloop_answer_check", default=None)
"""The current turn's check (`None`: an untyped turn)."""


def answer_matches_output_type(final_answer: Any, memory: Any = None, agent: Any = None) -> bool:
    """The final-answer check of every controller (smolagents calls it with the answer, the
    agent's memory and the agent, in the controller thread)."""
    check = ANSWER_CHECK.get()
    return True if check is None else check.check(final_answer)


class AnswerTypes:
    """An agent's output types, each checked and described once: building a type's adapter,
    JSON schema and classes takes 0.7-1.6 ms for a small pydantic model (measured), ten times what
    validating its answer does, and a service asks for the same few types again and again.
    Bounded: past `limit` types (one per call, say, with generated types) it starts over."""

    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._known: dict[Any, AnswerType[Any]] = {}

    def check(self, output_type: Any, output_retries: int) -> AnswerCheck | None:
        """A call's check (`None` when it gave no `output_type`), its arguments checked."""
        if isinstance(output_retries, bool) or not isinstance(output_retries, int):
            raise InvalidArgumentsError(
                f"`output_retries` must be an int >= 0, received {type(output_retries).__name__}."
            )
        if output_retries < 0:
            raise InvalidArgumentsError(
                f"`output_retries` must be >= 0, received {output_retries}."
            )
        if output_type is None:
            return None
        answer_type = self._answer_type(output_type)
        hint = answer_type.hint(output_retries)
        return AnswerCheck(answer_type, retries=output_retries, hint=hint)

    def _answer_type(self, output_type: Any) -> AnswerType[Any]:
        try:
            known = self._known.get(output_type)
        except TypeError:  # an unhashable type form: described each time
            return AnswerType(output_type)
        if known is None:
            known = AnswerType(output_type)
            if len(self._known) >= self._limit:
                self._known.clear()
            self._known[output_type] = known
        return known


class AnswerCheck:
    """One turn's final-answer check (see the module docstring)."""

    def __init__(
        self,
        answer_type: AnswerType[Any] | None,
        *,
        retries: int,
        hint: str,
        recorded: Sequence[str] | None = None,
    ) -> None:
        self.answer_type = answer_type
        self.retries = retries
        self.hint = hint
        """Appended to the turn's task: the schema, and how to answer."""
        self.rejections: list[str] = []
        """What each answer turned down was told, in order (a session's journal keeps it)."""
        self._recorded = list(recorded) if recorded is not None else None
        self._accepted: tuple[Any, Any] | None = None
        self._failure: AnswerValidationError | None = None

    @classmethod
    def replaying(cls, rejections: Sequence[str], hint: str) -> AnswerCheck:
        """A recorded typed turn's check: it turns down the answers it turned down live."""
        return cls(None, retries=len(rejections), hint=hint, recorded=rejections)

    @property
    def identity(self) -> str:
        """What a journal compares when a run or turn resumes: the type and its schema."""
        if self.answer_type is None:
            return "(replayed)"
        return f"{self.answer_type.name}:{self.answer_type.digest}"

    # -- in the controller thread -----------------------------------------------------------

    def check(self, value: Any) -> bool:
        """Accept `value` (keeping the typed value), or raise with what the model must fix."""
        if self._recorded is not None:  # replaying: the recorded decisions, in order
            if len(self.rejections) < len(self._recorded):
                message = self._recorded[len(self.rejections)]
                self.rejections.append(message)
                raise AnswerProblem(message)
            return True
        assert self.answer_type is not None
        try:
            self._accepted = self.answer_type.validate(value)
            return True
        except AnswerProblem as exc:
            problem = str(exc)
        tries = len(self.rejections)
        if tries >= self.retries:  # the last try: let the run end now, and fail the turn
            self._failure = AnswerValidationError(
                f"the run's answer is not a valid `{self.answer_type.name}` after "
                f"{tries} correction{'s' if tries != 1 else ''} "
                f"(`output_retries={self.retries}`): {problem}",
                value,
                problem,
            )
            return True
        message = (
            f"final_answer(...) was turned down (try {tries + 1} of {self.retries + 1}): "
            f"{problem}\nCall final_answer again with a corrected value that matches the "
            "schema in the task."
        )
        self.rejections.append(message)
        raise AnswerProblem(message)

    # -- on the loop, once the controller has ended ----------------------------------------

    async def outcome(self, output: Any) -> Any:
        """The turn's answer: the value the check accepted, or the controller's `output`
        validated now (its text reply at `max_steps`, in a worker thread); raises
        `AnswerValidationError` when there is none."""
        if self._failure is not None:
            raise self._failure
        if self._accepted is not None:
            return self._accepted[0]
        if self.answer_type is None:  # replayed: what the turn returns is not used
            return output
        answer_type = self.answer_type
        try:
            self._accepted = await anyio.to_thread.run_sync(answer_type.validate, output)
        except AnswerProblem as exc:
            raise AnswerValidationError(
                f"the run ended (at `max_steps`) without a valid `{answer_type.name}`: {exc}",
                output,
                str(exc),
            ) from None
        return self._accepted[0]

    def stored(self, answer: Any) -> Any:
        """The JSON form of the answer `outcome` returned: what a journal stores and a
        stream's end event carries."""
        if self._accepted is not None and self._accepted[0] is answer:
            return self._accepted[1]
        if self.answer_type is None:
            return answer
        return self.answer_type.data(answer)

    def restored(self, data: Any) -> Any:
        """A recorded answer (its JSON form) as the output type (in a worker thread)."""
        if self.answer_type is None:
            return data
        try:
            return self.answer_type.restored(data)
        except Exception as exc:
            raise AnswerValidationError(
                f"the run's recorded answer is not a valid `{self.answer_type.name}` "
                f"({type(exc).__name__}); it was recorded with another output type.",
                data,
                str(exc)[:2000],
            ) from None
