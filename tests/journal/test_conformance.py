"""What every journal store does, tested the same way on each (see conftest.py): runs, entries,
leases, takeovers, mismatches, answers, and the atomicity replicas rely on."""

from __future__ import annotations

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentloop import JournalError, JournalMismatchError, RunLeasedError
from agentloop.journal import (
    EntryKind,
    Journal,
    JournalEntry,
    LeaseHolder,
    NewRun,
    RunEnd,
    RunStatus,
    RunWrite,
)
from agentloop.journal._codec import decode, encode

from .conftest import Store

LEASE = 30.0
EXPIRED = -1.0  # a lease that ended a second before it was taken


def claim(journal: Journal, run_id: str, holder: LeaseHolder, **kw: object):  # type: ignore[no-untyped-def]
    options: dict[str, object] = {
        "task": "the task",
        "fingerprint": "fp-1",
        "lease_seconds": LEASE,
        "force": False,
    }
    options.update(kw)
    return journal.claim(run_id, holder=holder, **options)  # type: ignore[arg-type]


def entry(seq: int, kind: EntryKind = EntryKind.MODEL_REPLY, **data: object) -> JournalEntry:
    return JournalEntry(seq=seq, kind=kind, data=data or {"content": f"step {seq}"})


def dead_pid() -> int:
    """The pid of a child process of ours that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_new_run_is_created_running_and_leased(journal: Journal) -> None:
    holder = LeaseHolder()
    got = claim(journal, "r1", holder)
    assert got.previous is None and list(got.entries) == []
    run = journal.run("r1")
    assert run is not None
    assert (run.run_id, run.status, run.task, run.fingerprint) == (
        "r1",
        RunStatus.RUNNING,
        "the task",
        "fp-1",
    )
    assert (run.attempts, run.steps, run.tasks, run.answer, run.error) == (1, 0, 0, None, None)
    assert run.holder == holder
    assert run.lease_expires is not None
    assert run.lease_expires == pytest.approx(run.started_at + LEASE, abs=1)


def test_entries_come_back_in_order_and_are_counted(journal: Journal) -> None:
    holder = LeaseHolder()
    claim(journal, "r1", holder)
    journal.append(
        "r1",
        holder,
        [
            entry(0, content="héllo ✓ \u0000 end"),
            entry(1, EntryKind.SUBMITTED, task_id="t1", target="search"),
            entry(2, EntryKind.SUBMITTED, task_id="t2", target="search"),
        ],
        LEASE,
    )
    journal.append(
        "r1",
        holder,
        [
            entry(3, EntryKind.OUTCOME, task_id="t1", status="completed", result={"json": [1]}),
            entry(4, EntryKind.WAITED, completed=["t1"], failed=[]),
            entry(5, content="second step"),
        ],
        LEASE,
    )
    got = journal.entries("r1")
    assert [e.seq for e in got] == [0, 1, 2, 3, 4, 5]
    assert [e.kind for e in got] == [
        EntryKind.MODEL_REPLY,
        EntryKind.SUBMITTED,
        EntryKind.SUBMITTED,
        EntryKind.OUTCOME,
        EntryKind.WAITED,
        EntryKind.MODEL_REPLY,
    ]
    assert got[0].data == {"content": "héllo ✓ \u0000 end"}
    assert got[3].data["result"] == {"json": [1]}
    run = journal.run("r1")
    assert run is not None and (run.steps, run.tasks) == (2, 2)


def test_a_heartbeat_renews_the_lease_without_entries(journal: Journal) -> None:
    holder = LeaseHolder()
    claim(journal, "r1", holder)
    before = journal.run("r1")
    journal.append("r1", holder, [], 2 * LEASE)
    after = journal.run("r1")
    assert before is not None and after is not None
    assert before.lease_expires is not None and after.lease_expires is not None
    assert after.lease_expires > before.lease_expires + LEASE / 2
    assert journal.entries("r1") == []


def test_a_batch_is_written_whole_or_not_at_all(journal: Journal) -> None:
    holder = LeaseHolder()
    claim(journal, "r1", holder)
    journal.append("r1", holder, [entry(0)], LEASE)
    with pytest.raises(JournalError):
        journal.append("r1", holder, [entry(1), entry(0)], LEASE)  # seq 0 is taken
    assert [e.seq for e in journal.entries("r1")] == [0]
    run = journal.run("r1")
    assert run is not None and run.steps == 1
    journal.append("r1", holder, [entry(1)], LEASE)  # the journal is still usable
    assert [e.seq for e in journal.entries("r1")] == [0, 1]


def test_a_completed_run_returns_its_answer_and_takes_no_lease(journal: Journal) -> None:
    first = LeaseHolder()
    claim(journal, "r1", first)
    journal.append("r1", first, [entry(0)], LEASE)
    journal.finish("r1", first, RunStatus.COMPLETED, answer=encode({"total": 42}, "answer"))
    got = claim(journal, "r1", LeaseHolder())
    assert got.previous is not None
    assert got.previous.status is RunStatus.COMPLETED
    assert got.previous.answer == {"total": 42}
    assert list(got.entries) == []
    run = journal.run("r1")
    assert run is not None
    assert (run.holder, run.lease_expires, run.attempts) == (None, None, 1)


def test_a_live_lease_of_another_holder_refuses_the_claim(journal: Journal) -> None:
    first = LeaseHolder()
    claim(journal, "r1", first)
    with pytest.raises(RunLeasedError, match=f"pid {first.pid}"):
        claim(journal, "r1", LeaseHolder())
    run = journal.run("r1")
    assert run is not None and run.holder == first and run.attempts == 1


def test_an_expired_lease_is_taken_over_with_the_entries(journal: Journal) -> None:
    first, second = LeaseHolder(), LeaseHolder()
    claim(journal, "r1", first, lease_seconds=EXPIRED)
    journal.append("r1", first, [entry(0), entry(1, EntryKind.SUBMITTED, task_id="a")], EXPIRED)
    got = claim(journal, "r1", second)
    assert got.previous is not None and got.previous.holder == first
    assert [e.seq for e in got.entries] == [0, 1]
    run = journal.run("r1")
    assert run is not None
    assert (run.holder, run.attempts, run.status) == (second, 2, RunStatus.RUNNING)


def test_the_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(
    journal: Journal,
) -> None:
    gone = LeaseHolder(pid=dead_pid())
    claim(journal, "r1", gone)  # a live lease: 30 s left
    second = LeaseHolder()
    got = claim(journal, "r1", second)
    assert got.previous is not None and got.previous.holder == gone
    run = journal.run("r1")
    assert run is not None and run.holder == second


def test_a_lease_held_on_another_host_is_not_taken_over(journal: Journal) -> None:
    elsewhere = LeaseHolder(host="another-host.invalid", pid=dead_pid())
    claim(journal, "r1", elsewhere)
    with pytest.raises(RunLeasedError, match=r"another-host.invalid"):
        claim(journal, "r1", LeaseHolder())


def test_another_task_or_configuration_is_refused_unless_forced(journal: Journal) -> None:
    first = LeaseHolder()
    claim(journal, "r1", first, lease_seconds=EXPIRED)
    with pytest.raises(JournalMismatchError, match="another task"):
        claim(journal, "r1", LeaseHolder(), task="other task")
    with pytest.raises(JournalMismatchError, match="configured differently"):
        claim(journal, "r1", LeaseHolder(), fingerprint="fp-2")
    run = journal.run("r1")
    assert run is not None and (run.holder, run.attempts, run.fingerprint) == (first, 1, "fp-1")
    second = LeaseHolder()
    got = claim(journal, "r1", second, task="other task", fingerprint="fp-2", force=True)
    assert got.previous is not None
    run = journal.run("r1")
    assert run is not None
    assert (run.holder, run.attempts, run.fingerprint, run.task) == (
        second,
        2,
        "fp-2",
        "the task",  # the recorded task stays the one the run was started with
    )


def test_a_lost_lease_stops_every_write_of_the_old_holder(journal: Journal) -> None:
    first, second = LeaseHolder(), LeaseHolder()
    claim(journal, "r1", first, lease_seconds=EXPIRED)
    journal.append("r1", first, [entry(0)], EXPIRED)
    claim(journal, "r1", second)
    with pytest.raises(RunLeasedError, match="no longer leased"):
        journal.append("r1", first, [entry(1)], LEASE)
    with pytest.raises(RunLeasedError):
        journal.append("r1", first, [], LEASE)
    with pytest.raises(RunLeasedError):
        journal.finish("r1", first, RunStatus.COMPLETED, answer=encode(1, "answer"))
    assert [e.seq for e in journal.entries("r1")] == [0]
    run = journal.run("r1")
    assert run is not None and (run.status, run.holder) == (RunStatus.RUNNING, second)
    journal.append("r1", second, [entry(1)], LEASE)
    assert [e.seq for e in journal.entries("r1")] == [0, 1]


def test_an_unfinished_run_can_be_written_by_its_holder_after_its_lease_ended(
    journal: Journal,
) -> None:
    holder = LeaseHolder()  # nobody took it over: the lease is renewed, not lost
    claim(journal, "r1", holder, lease_seconds=EXPIRED)
    journal.append("r1", holder, [entry(0)], LEASE)
    with pytest.raises(RunLeasedError):
        claim(journal, "r1", LeaseHolder())


def test_runs_are_listed_newest_first_and_limited(journal: Journal) -> None:
    holders = {name: LeaseHolder() for name in ("a", "b", "c")}
    for name, holder in holders.items():
        claim(journal, name, holder)
    journal.append("a", holders["a"], [entry(0)], LEASE)
    assert [r.run_id for r in journal.runs()] == ["a", "c", "b"]
    assert [r.run_id for r in journal.runs(limit=2)] == ["a", "c"]
    assert journal.runs(limit=0) == []


def test_an_unknown_run_is_none_and_has_no_entries(journal: Journal) -> None:
    assert journal.run("nope") is None
    assert journal.entries("nope") == []
    assert journal.runs() == []


def test_finish_records_json_and_typed_answers_and_errors(journal: Journal) -> None:
    answers = {"json": {"rows": [1, 2.5, "x", None, True]}, "typed": (1, {2, 3}, b"\x00")}
    for run_id, answer in answers.items():
        holder = LeaseHolder()
        claim(journal, run_id, holder)
        stored = encode(answer, "the answer")
        assert list(stored) == [run_id]
        journal.finish(run_id, holder, RunStatus.COMPLETED, answer=stored)
        run = journal.run(run_id)
        assert run is not None and run.status is RunStatus.COMPLETED
        assert run.answer == answer and type(run.answer) is type(answer)
        assert decode(stored, "the answer") == answer
    holder = LeaseHolder()
    claim(journal, "failed", holder)
    journal.finish("failed", holder, RunStatus.FAILED, error="BudgetExceededError: 3 calls")
    run = journal.run("failed")
    assert run is not None
    assert (run.status, run.error, run.answer, run.holder) == (
        RunStatus.FAILED,
        "BudgetExceededError: 3 calls",
        None,
        None,
    )


@pytest.mark.parametrize("status", [RunStatus.FAILED, RunStatus.CANCELLED])
def test_a_failed_or_cancelled_run_resumes(journal: Journal, status: RunStatus) -> None:
    first = LeaseHolder()
    claim(journal, "r1", first)
    journal.append("r1", first, [entry(0)], LEASE)
    journal.finish("r1", first, status, error="it stopped")
    second = LeaseHolder()
    got = claim(journal, "r1", second)  # its lease was released: no waiting
    assert got.previous is not None and got.previous.status is status
    assert got.previous.error == "it stopped"
    assert [e.seq for e in got.entries] == [0]
    run = journal.run("r1")
    assert run is not None
    assert (run.status, run.error, run.holder, run.attempts) == (
        RunStatus.RUNNING,
        None,
        second,
        2,
    )


def test_a_store_opened_again_sees_the_same_runs(journal_store: Store) -> None:
    first = journal_store.open()
    holder = LeaseHolder()
    claim(first, "r1", holder)
    first.append("r1", holder, [entry(0)], LEASE)
    first.close()
    again = journal_store.open()
    assert [e.seq for e in again.entries("r1")] == [0]
    with pytest.raises(RunLeasedError):
        claim(again, "r1", LeaseHolder())


def test_exactly_one_of_many_replicas_claims_a_new_run(journal_store: Store) -> None:
    replicas = [journal_store.open() for _ in range(6)]
    start = threading.Barrier(len(replicas))

    def race(journal: Journal) -> str:
        start.wait(timeout=10)
        try:
            claim(journal, "contested", LeaseHolder())
        except RunLeasedError:
            return "leased"
        return "won"

    with ThreadPoolExecutor(len(replicas)) as pool:
        outcomes = list(pool.map(race, replicas))
    assert sorted(outcomes) == ["leased"] * 5 + ["won"]
    run = replicas[0].run("contested")
    assert run is not None and run.attempts == 1


def test_exactly_one_of_many_replicas_takes_over_an_expired_run(journal_store: Store) -> None:
    replicas = [journal_store.open() for _ in range(6)]
    claim(replicas[0], "stale", LeaseHolder(), lease_seconds=EXPIRED)
    start = threading.Barrier(len(replicas))

    def race(journal: Journal) -> str:
        start.wait(timeout=10)
        try:
            claim(journal, "stale", LeaseHolder())
        except RunLeasedError:
            return "leased"
        return "won"

    with ThreadPoolExecutor(len(replicas)) as pool:
        outcomes = list(pool.map(race, replicas))
    assert sorted(outcomes) == ["leased"] * 5 + ["won"]
    run = replicas[0].run("stale")
    assert run is not None and run.attempts == 2


def test_one_journal_is_safe_to_share_between_threads(journal: Journal) -> None:
    runs, per_run = 8, 25

    def work(n: int) -> None:
        holder = LeaseHolder()
        claim(journal, f"r{n}", holder)
        for seq in range(per_run):
            journal.append(f"r{n}", holder, [entry(seq)], LEASE)
            journal.run(f"r{n}")
        journal.finish(f"r{n}", holder, RunStatus.COMPLETED, answer=encode(n, "answer"))

    with ThreadPoolExecutor(runs) as pool:
        list(pool.map(work, range(runs)))
    for n in range(runs):
        assert [e.seq for e in journal.entries(f"r{n}")] == list(range(per_run))
        run = journal.run(f"r{n}")
        assert run is not None and (run.status, run.steps, run.answer) == (
            RunStatus.COMPLETED,
            per_run,
            n,
        )


def test_many_processes_may_create_a_new_store_at_once(journal_store: Store) -> None:
    # a race lost now and then (SQLite's switch to WAL took no busy wait: ~1 in 200 rounds
    # failed before it was retried), so race many rounds
    for round_ in range(40 if journal_store.kind == "sqlite" else 3):
        start = threading.Barrier(6)

        def open_it(at: str, start: threading.Barrier = start) -> Journal:
            start.wait(timeout=10)
            return journal_store.open(at=at)

        with ThreadPoolExecutor(6) as pool:
            journals = list(pool.map(open_it, [f"new{round_}"] * 6))
        claim(journals[0], "r1", LeaseHolder())
        assert all(j.run("r1") is not None for j in journals)


def test_a_closed_journal_says_so(journal: Journal) -> None:
    journal.close()
    journal.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        journal.runs()
    with pytest.raises(JournalError, match="closed"):
        claim(journal, "r1", LeaseHolder())


# -- group commits (`Journal.write`) --------------------------------------------------------------


def test_a_group_write_creates_records_and_ends_runs(journal: Journal) -> None:
    first, second = LeaseHolder(), LeaseHolder()
    errors = journal.write(
        [
            RunWrite(
                run_id="a",
                holder=first,
                new=NewRun(task="task a", fingerprint="fp-a"),
                entries=[entry(0), entry(1, EntryKind.SUBMITTED, task_id="t", target="x")],
            ),
            RunWrite(run_id="b", holder=second, new=NewRun(task="task b", fingerprint="fp-b")),
        ],
        LEASE,
    )
    assert errors == {}
    a, b = journal.run("a"), journal.run("b")
    assert a is not None and b is not None
    assert (a.task, a.fingerprint, a.status, a.holder, a.steps, a.tasks, a.attempts) == (
        "task a",
        "fp-a",
        RunStatus.RUNNING,
        first,
        1,
        1,
        1,
    )
    assert (b.task, b.holder, b.steps) == ("task b", second, 0)
    assert b.lease_expires is not None and b.lease_expires > b.started_at + LEASE / 2
    errors = journal.write(
        [
            RunWrite(
                run_id="a",
                holder=first,
                entries=[entry(2)],
                end=RunEnd(status=RunStatus.COMPLETED, answer=encode([1, 2], "answer")),
            ),
            RunWrite(run_id="b", holder=second),  # a heartbeat
        ],
        LEASE,
    )
    assert errors == {}
    a = journal.run("a")
    assert a is not None
    assert (a.status, a.answer, a.holder, a.lease_expires, a.steps) == (
        RunStatus.COMPLETED,
        [1, 2],
        None,
        None,
        2,
    )
    assert [e.seq for e in journal.entries("a")] == [0, 1, 2]
    assert journal.entries("b") == []


def test_a_group_write_reports_the_runs_it_could_not_write(journal: Journal) -> None:
    owner, stale, good = LeaseHolder(), LeaseHolder(), LeaseHolder()
    claim(journal, "lost", stale, lease_seconds=EXPIRED)
    claim(journal, "lost", owner)  # taken over: `stale` lost it
    claim(journal, "taken", owner)
    claim(journal, "fine", good)
    errors = journal.write(
        [
            RunWrite(run_id="lost", holder=stale, entries=[entry(0)]),
            RunWrite(
                run_id="taken",
                holder=stale,
                new=NewRun(task="t", fingerprint="f"),
                entries=[entry(0)],
            ),
            RunWrite(run_id="fine", holder=good, entries=[entry(0), entry(1)]),
        ],
        LEASE,
    )
    assert sorted(errors) == ["lost", "taken"]
    assert all(isinstance(e, RunLeasedError) for e in errors.values())
    assert journal.entries("lost") == [] and journal.entries("taken") == []
    assert [e.seq for e in journal.entries("fine")] == [0, 1]
    taken = journal.run("taken")
    assert taken is not None and taken.holder == owner and taken.task == "the task"


def test_a_group_write_isolates_a_run_whose_data_is_refused(journal: Journal) -> None:
    good, bad = LeaseHolder(), LeaseHolder()
    claim(journal, "good", good)
    claim(journal, "bad", bad)
    journal.append("bad", bad, [entry(0)], LEASE)
    errors = journal.write(
        [
            RunWrite(run_id="good", holder=good, entries=[entry(0)]),
            RunWrite(run_id="bad", holder=bad, entries=[entry(0)]),  # seq 0 is recorded
            RunWrite(run_id="good", holder=good, entries=[entry(1)]),
        ],
        LEASE,
    )
    assert list(errors) == ["bad"]
    assert [e.seq for e in journal.entries("good")] == [0, 1]
    assert [e.seq for e in journal.entries("bad")] == [0]
    errors = journal.write(  # the refused run's new entry before the duplicate: not written
        [RunWrite(run_id="bad", holder=bad, entries=[entry(5), entry(0)])], LEASE
    )
    assert list(errors) == ["bad"]
    assert [e.seq for e in journal.entries("bad")] == [0]
    run = journal.run("bad")
    assert run is not None and run.steps == 1


def test_an_empty_group_write_does_nothing(journal: Journal) -> None:
    assert journal.write([], LEASE) == {}
    assert journal.runs() == []


# -- read-only ------------------------------------------------------------------------------------


def test_a_read_only_journal_reads_and_refuses_every_write(journal_store: Store) -> None:
    writer = journal_store.open()
    holder = LeaseHolder()
    claim(writer, "r1", holder)
    writer.append("r1", holder, [entry(0)], LEASE)
    reader = journal_store.open(read_only=True)
    assert [r.run_id for r in reader.runs()] == ["r1"]
    assert [e.seq for e in reader.entries("r1")] == [0]
    with pytest.raises(JournalError, match="read-only"):
        claim(reader, "r2", LeaseHolder())
    with pytest.raises(JournalError, match="read-only"):
        reader.append("r1", holder, [entry(1)], LEASE)
    with pytest.raises(JournalError, match="read-only"):
        reader.write([RunWrite(run_id="r1", holder=holder, entries=[entry(1)])], LEASE)
    assert [e.seq for e in writer.entries("r1")] == [0]


def test_a_read_only_journal_is_never_created(journal_store: Store) -> None:
    with pytest.raises(JournalError, match=r"does not exist|no agentloop journal"):
        journal_store.open(at="missing", read_only=True)


def test_a_parked_run_is_not_recoverable_until_handed_back(journal: Journal) -> None:
    """A parked run waits for a person: no store lists it for recovery (nor the base class's
    default), and a claim (a decision, or a resume) takes it as any unfinished run."""
    first = LeaseHolder()
    claim(journal, "parked", first)
    journal.append("parked", first, [entry(1), entry(2, EntryKind.PARKED, approvals=[])], LEASE)
    journal.finish("parked", first, RunStatus.PARKED)
    run = journal.run("parked")
    assert run is not None and (run.status, run.holder) == (RunStatus.PARKED, None)
    assert journal.recoverable() == []
    assert Journal.recoverable(journal) == []
    decider = LeaseHolder()
    got = claim(journal, "parked", decider)
    assert got.previous is not None and got.previous.status is RunStatus.PARKED
    assert [e.kind for e in got.entries] == [EntryKind.MODEL_REPLY, EntryKind.PARKED]
    journal.finish("parked", decider, RunStatus.RUNNING)  # decided: handed back
    assert [s.run_id for s in journal.recoverable()] == ["parked"]
