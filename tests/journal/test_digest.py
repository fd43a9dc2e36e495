"""The arguments digest of a `submitted` entry: equal arguments digest alike (in any process),
other arguments differently, and computing it runs no code of the values and is bounded."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from agentloop import result_of
from agentloop.journal._digest import MAX_VALUES, arguments_digest


class Hostile:
    """Model code's object: every dunder the walk could reach raises."""

    def _refuse(self, *args: Any) -> Any:
        raise AssertionError("the digest ran code of a value")

    __eq__ = __hash__ = __repr__ = __str__ = __reduce__ = __reduce_ex__ = _refuse  # type: ignore[assignment]
    __iter__ = __len__ = __getattr__ = __format__ = __lt__ = _refuse  # type: ignore[assignment]


class Key(str):
    """A key that may not be compared (it is hashed: it is a dict key)."""

    def __lt__(self, other: object) -> bool:
        raise AssertionError("the digest compared a str subclass")

    __gt__ = __le__ = __ge__ = __lt__  # type: ignore[assignment]


class Meta(type):
    def __getattribute__(cls, name: str) -> Any:
        raise AssertionError("the digest read an attribute through a metaclass")


class Odd(metaclass=Meta):
    pass


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"env": "staging"}, {"env": "prod"}),
        ({"amount": 1}, {"amount": True}),
        ({"amount": 1}, {"amount": 1.0}),
        ({"a": [1, 2]}, {"a": (1, 2)}),
        ({"a": "x"}, {"a": b"x"}),
        ({"a": ["x", "y"]}, {"a": ["xy"]}),
        ({"a": {"b": 1}}, {"a": {"b": 2}}),
        ({"a": None}, {}),
        ({"a": 2**5000}, {"a": 2**5000 + 1}),
        ({"rows": [{"n": i} for i in range(50)]}, {"rows": [{"n": i} for i in range(49)]}),
        ({"data": result_of("t1")}, {"data": result_of("t2")}),
        ({"data": result_of("t1", "x")}, {"data": result_of("t1", "y")}),
    ],
)
def test_other_arguments_digest_differently(one: dict[str, Any], other: dict[str, Any]) -> None:
    assert arguments_digest(one) != arguments_digest(other)
    assert arguments_digest(one) == arguments_digest(dict(one))


def test_key_order_does_not_matter() -> None:
    assert arguments_digest({"a": 1, "b": {"x": 1, "y": 2}}) == arguments_digest(
        {"b": {"y": 2, "x": 1}, "a": 1}
    )


def test_the_digest_is_the_same_in_another_process() -> None:
    code = (
        "from agentloop.journal._digest import arguments_digest as d;"
        "print(d({'tags': {t: 1 for t in {'a', 'b', 'c', 'd'}}, 'n': [1.5, None, b'x']}))"
    )
    here = arguments_digest({"tags": {"a": 1, "b": 1, "c": 1, "d": 1}, "n": [1.5, None, b"x"]})
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == here


def test_no_code_of_a_value_runs_and_other_types_count_by_name() -> None:
    hostile = {"a": Hostile(), "b": [Hostile(), {"c": Hostile()}], Key("k"): 1, "odd": Odd()}
    first = arguments_digest({"x": Hostile()})
    assert first == arguments_digest({"x": Hostile()})  # other contents, same digest: by name
    assert first != arguments_digest({"x": object()})
    arguments_digest(hostile)
    arguments_digest({"k": Key("v")})  # a str subclass is another type: by name


def test_the_walk_is_bounded() -> None:
    shared: list[Any] = [1]
    for _ in range(60):  # 2**60 values if walked naively (copy.deepcopy keeps the sharing)
        shared = [shared, shared]
    loop: list[Any] = []
    loop.append(loop)
    started = time.monotonic()
    arguments_digest({"shared": shared})
    arguments_digest({"loop": loop})
    arguments_digest({"text": "x" * 50_000_000, "more": b"y" * 50_000_000})
    assert time.monotonic() - started < 10
    long = list(range(MAX_VALUES * 2))
    changed = [*long[:-1], -1]
    # the documented weakness: past the bound, a difference is not seen
    assert arguments_digest({"a": long}) == arguments_digest({"a": changed})
