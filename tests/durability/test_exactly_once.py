"""Exactly one charge per order, whichever moment a SIGKILL hits the run that charges it.

A real second process: a payment service on 127.0.0.1 (stdlib `http.server`, in a thread of
this test process) records charges by idempotency key and answers `GET /charges/{key}`. The
agent (`payment_worker.py`, journal on SQLite, or PostgreSQL in `nox -s postgres`) runs in a
subprocess and dies at one of three points:

- (a) before the request: the service never saw it; the reconcile hook finds nothing, and the
  resumed run charges again with the same key (attempt 2);
- (b) after the service committed the charge, before it replied (the service tells the test,
  which kills the agent, and the service then answers nothing);
- (c) after the reply, before its outcome reached the journal (the tool kills its own process).

A new process resumes the run each time. In every case the service holds exactly one charge for
the order, the run answers with its receipt, and no task is reported "outcome unknown": the hook
could tell each time. Synchronisation is by pipes and events, never by the clock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from . import _spawn

TIMEOUT = 60
KILL_POINTS = ("before", "committed", "replied")
WORKER = "tests.durability.payment_worker"


class PaymentService:
    """Charges by idempotency key, in memory: a repeated key gets the first charge back."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.charges: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        """Every POST received: key, attempt, order."""
        self.hold_next = False
        """Commit the next new charge, then tell the test and answer nothing."""
        self.committed = threading.Event()
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )  # shutdown() waits up to one poll interval (0.5 s by default)

    def __enter__(self) -> PaymentService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def charges_for(self, order: str) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.charges.values() if c["order"] == order]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                key = self.path.removeprefix("/charges/")
                with service.lock:
                    charge = service.charges.get(key)
                if charge is None:
                    self._answer(404, {"error": f"no charge with key {key}"})
                else:
                    self._answer(200, charge)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                with service.lock:
                    service.requests.append(
                        {"key": key, "attempt": int(self.headers["X-Attempt"]), **body}
                    )
                    charge = service.charges.get(key)
                    hold = charge is None and service.hold_next
                    if charge is None:
                        charge = {"charge_id": f"ch_{len(service.charges) + 1}", "key": key, **body}
                        service.charges[key] = charge
                        service.hold_next = False
                if hold:  # committed: the agent process dies before it reads any reply
                    service.committed.set()
                    service.release.wait(TIMEOUT)
                    self.close_connection = True
                    return
                self._answer(200, charge)

        return Handler


@pytest.fixture
def service() -> Iterator[PaymentService]:
    with PaymentService() as running:
        yield running


def worker(journal: str, run_id: str, url: str, order: str, mode: str) -> subprocess.Popen[str]:
    return _spawn.worker("payment_worker", journal, run_id, url, order, mode)


def kill(process: subprocess.Popen[str], service: PaymentService, point: str) -> None:
    """Let the worker reach `point`, and make sure it died there by SIGKILL."""
    assert process.stdout is not None
    if point == "before":
        line = process.stdout.readline()
        if line.strip() != "CHARGING":
            process.kill()
            pytest.fail(f"the worker did not reach the charge: {line!r}\n{process.stderr}")
        process.send_signal(signal.SIGKILL)
    elif point == "committed":
        if not service.committed.wait(TIMEOUT):
            process.kill()
            pytest.fail(f"the service never committed a charge\n{process.communicate()[1]}")
        process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=TIMEOUT)  # "replied": it kills itself
    assert process.returncode == -signal.SIGKILL, stderr
    service.release.set()  # (b): the held request now ends, answering nothing


def summary(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, stderr
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def journals() -> list[str]:
    found = ["sqlite"]
    if os.environ.get("AGENTLOOP_POSTGRES_DSN"):
        found.append("postgres")
    return found


@pytest.fixture(params=journals())
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.sqlite")
    return os.environ["AGENTLOOP_POSTGRES_DSN"]


def charge_exactly_once(journal: str, service: PaymentService, point: str, tag: str) -> None:
    """Kill the charging run at `point`, resume it in a new process, and check the books."""
    order = f"order-{point}-{tag}"
    run_id = f"pay-{order}"
    service.hold_next = point == "committed"
    kill(worker(journal, run_id, service.url, order, point), service, point)
    died_with = len(service.requests)
    assert died_with == (0 if point == "before" else 1)

    result = summary(worker(journal, run_id, service.url, order, "finish"))

    charges = service.charges_for(order)
    assert len(charges) == 1, service.requests  # exactly one charge for the order
    assert result["unknown_tasks"] == 0, result  # the hook could tell: never "outcome unknown"
    assert result["resumed"] is True
    assert result["answer"] == {"order": order, "receipt": charges[0]}
    keys = {request["key"] for request in service.requests}
    assert keys == {charges[0]["key"]}  # every attempt sent the same key
    if point == "before":  # nothing had happened: charged now, as attempt 2
        assert result["rerun_tasks"] == 1 and result["reconciled_tasks"] == 0
        assert [r["attempt"] for r in service.requests] == [2]
    else:  # the charge had happened: the hook's receipt is the result, no second request
        assert result["reconciled_tasks"] == 1 and result["rerun_tasks"] == 0
        assert [r["attempt"] for r in service.requests] == [1]

    again = summary(worker(journal, run_id, service.url, order, "finish"))
    assert again["answer"] == result["answer"]  # a finished run returns its recorded answer
    assert len(service.requests) == max(died_with, 1)  # ... and charges nothing


@pytest.mark.timeout(TIMEOUT * 4)
@pytest.mark.parametrize("point", KILL_POINTS)
def test_one_charge_per_order_whenever_the_run_is_killed(
    journal: str, service: PaymentService, point: str, tmp_path: Path
) -> None:
    charge_exactly_once(journal, service, point, f"{os.getpid()}-{tmp_path.name}")
