"""A run id is an idempotency key, on every store: the same id with another task or another
agent (fingerprint) is refused whatever the run's status, a completed one included; `force=True`
waives the comparison, and a completed run stays final (its recorded answer, no lease)."""

from __future__ import annotations

import pytest

from agentloop import JournalMismatchError
from agentloop.journal import Journal, LeaseHolder, RunStatus
from agentloop.journal._codec import encode

LEASE = 30.0


def claim(journal: Journal, run_id: str, **kw: object):  # type: ignore[no-untyped-def]
    options: dict[str, object] = {
        "task": "Refund order 41",
        "fingerprint": "fp-1",
        "lease_seconds": LEASE,
        "force": False,
        "holder": LeaseHolder(),
    }
    options.update(kw)
    return journal.claim(run_id, **options)  # type: ignore[arg-type]


def completed(journal: Journal, run_id: str) -> None:
    holder = LeaseHolder()
    claim(journal, run_id, holder=holder)
    journal.finish(run_id, holder, RunStatus.COMPLETED, answer=encode("refunded 41", "answer"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "Charge order 42"}, "another task"),
        ({"fingerprint": "fp-2"}, "configured differently"),
    ],
    ids=["task", "fingerprint"],
)
def test_a_completed_run_id_with_other_work_is_refused(
    journal: Journal, change: dict[str, str], message: str
) -> None:
    completed(journal, "job-7")
    with pytest.raises(JournalMismatchError, match=message) as refused:
        claim(journal, "job-7", **change)
    assert "job-7" in str(refused.value)
    run = journal.run("job-7")
    assert run is not None
    assert (run.status, run.holder, run.attempts, run.task) == (
        RunStatus.COMPLETED,
        None,
        1,
        "Refund order 41",
    )


def test_the_same_work_gets_the_completed_answer(journal: Journal) -> None:
    completed(journal, "job-7")
    got = claim(journal, "job-7")
    assert got.previous is not None and got.previous.status is RunStatus.COMPLETED
    assert got.previous.answer == "refunded 41"


def test_force_on_a_completed_run_returns_its_answer_and_reopens_nothing(
    journal: Journal,
) -> None:
    completed(journal, "job-7")
    got = claim(journal, "job-7", task="Charge order 42", fingerprint="fp-2", force=True)
    assert got.previous is not None and got.previous.status is RunStatus.COMPLETED
    assert got.previous.answer == "refunded 41" and list(got.entries) == []
    run = journal.run("job-7")
    assert run is not None
    assert (run.status, run.holder, run.attempts, run.fingerprint) == (
        RunStatus.COMPLETED,
        None,
        1,
        "fp-1",
    )
