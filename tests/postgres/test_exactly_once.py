"""The exactly-once payment test (`tests/durability/test_exactly_once.py`) on a PostgreSQL
journal: the run is SIGKILLed before the request, after the service committed the charge, or
after its reply, and resumed in a new process; one charge per order every time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.durability.test_exactly_once import (
    KILL_POINTS,
    TIMEOUT,
    PaymentService,
    charge_exactly_once,
)


@pytest.mark.timeout(TIMEOUT * 4)
@pytest.mark.parametrize("point", KILL_POINTS)
def test_one_charge_per_order_on_postgres(postgres_dsn: str, point: str, tmp_path: Path) -> None:
    with PaymentService() as service:
        charge_exactly_once(postgres_dsn, service, point, f"pg-{os.getpid()}-{tmp_path.name}")
