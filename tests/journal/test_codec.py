"""The journal's value codec: tagged JSON of known types, never a pickle.

Round trips of every known type (nested, and the edge cases: non-str keys, keys that look like
tags, non-finite floats, huge ints, time zones); values of hostile classes refused without
calling any of their methods; registered dataclasses, pydantic models and enums built again by
their own class; the walk bounded in depth, size and time; values an older agentloop pickled
refused, never unpickled.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import json
import math
import pickle
import uuid
import zoneinfo
from typing import Any

import pydantic
import pytest

from agentloop import InvalidArgumentsError, JournalError, TaskFailure, TaskStatus, WaitOutcome
from agentloop.journal import _codec
from agentloop.journal._codec import StoredObject, UnjournalableError, decode, encode, preview
from agentloop.journal._types import registry

pytestmark = pytest.mark.timeout(30)


@dataclasses.dataclass(frozen=True)
class Invoice:
    number: str
    total: decimal.Decimal
    lines: tuple[str, ...] = ()
    computed: int = dataclasses.field(default=0, init=False)


class Color(enum.Enum):
    RED = "red"
    BLUE = (0, 0, 255)


class Customer(pydantic.BaseModel):
    name: str
    since: datetime.date
    tags: set[str] = set()
    email: str = pydantic.Field(alias="$email", default="")


class SpecialInvoice(Invoice):
    pass


TYPES = registry([Invoice, Color, Customer])


def stored(value: Any) -> Any:
    """`value` as a journal stores it and reads it back: through JSON text, like a store."""
    text = json.dumps(encode(value, "the value", TYPES), allow_nan=False)
    return decode(json.loads(text), "the value", TYPES)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


PARIS = zoneinfo.ZoneInfo("Europe/Paris")

ROUND_TRIPS = {
    "none": None,
    "bools": [True, False],
    "ints": [0, -1, 2**63, -(2**100)],
    "huge int": 7**20_000,
    "floats": [0.5, -0.0, 1e308],
    "non-finite": [math.inf, -math.inf, math.nan],
    "str": "naïve 🐍 \x00",
    "nested": {"a": [1, {"b": (2, [3, {"c": None}])}]},
    "tuple": (1, "x", (2,)),
    "empty": [(), [], {}, set(), frozenset(), b""],
    "sets": [{1, 2}, frozenset({"a"}), {(1, 2)}],
    "bytes": [b"\x00\xff", bytearray(b"xy")],
    "int keys": {1: "a", (2, 3): "b", None: "c", frozenset({1}): "d"},
    "tag-like keys": {"$tuple": [1], "$": 2, "plain": 3},
    "tag-like lone key": {"$set": [1, 2]},
    "datetimes": [
        datetime.datetime(2024, 2, 29, 12, 30, 1, 5),
        datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=-3))),
        datetime.datetime(2024, 10, 27, 2, 30, tzinfo=PARIS, fold=1),
    ],
    "dates and times": [
        datetime.date(1999, 12, 31),
        datetime.time(23, 59, 59, 999),
        datetime.time(1, 2, tzinfo=datetime.UTC),
        datetime.timedelta(days=-2, seconds=5, microseconds=7),
    ],
    "decimals and uuids": [decimal.Decimal("1.10"), decimal.Decimal("-Infinity"), uuid.uuid4()],
    "agentloop values": {
        "f": TaskFailure(task_id="t1", status=TaskStatus.TIMED_OUT, error="slow"),
        "w": WaitOutcome(
            completed=("t2",),
            failed=("t1",),
            pending=(),
            timed_out=False,
            waited_seconds=1.5,
            errors={"t1": "slow"},
        ),
        "s": TaskStatus.COMPLETED,
    },
    "registered": [
        Invoice("A-1", decimal.Decimal("9.99"), ("pen",)),
        Color.RED,
        Color.BLUE,
        Customer.model_validate({"name": "Ada", "since": "2020-01-02", "$email": "a@x"}),
    ],
}


@pytest.mark.parametrize("value", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_known_values_come_back_as_themselves(value: Any) -> None:
    assert same(stored(value), value)


def test_plain_json_is_stored_as_itself_and_the_rest_tagged() -> None:
    assert encode({"a": [1, "x", None, 2.5]}, "v") == {"json": {"a": [1, "x", None, 2.5]}}
    assert encode((1,), "v") == {"typed": {"$tuple": [1]}}
    assert encode({"$x": 1}, "v") == {"typed": {"$dict": [["$x", 1]]}}
    assert encode(Color.RED, "v", TYPES) == {
        "typed": {"$enum": ["tests.journal.test_codec.Color", "red"]}
    }


def test_a_value_nested_to_the_limit_comes_back_and_one_level_more_is_refused() -> None:
    deep: Any = 1
    for _ in range(_codec.MAX_DEPTH):
        deep = [deep]
    assert stored(deep) == deep
    with pytest.raises(UnjournalableError, match="nested more than 100 levels"):
        encode([deep], "the answer")


def test_subclasses_of_str_int_float_are_stored_as_the_plain_value_without_their_methods() -> None:
    called: list[str] = []

    class Text(str):
        def __str__(self) -> str:
            called.append("str")
            return "lie"

        def __repr__(self) -> str:
            called.append("repr")
            return "lie"

    class Number(float):
        def __float__(self) -> float:
            called.append("float")
            return 0.0

    class Count(int):
        def __int__(self) -> int:
            called.append("int")
            return 0

        def __index__(self) -> int:
            called.append("index")
            return 0

    back = stored({"t": Text("real"), "n": Number(2.5), "c": Count(7)})
    assert same(back, {"t": "real", "n": 2.5, "c": 7})
    assert called == []


def test_smolagents_agent_text_reads_back_as_a_str() -> None:
    from smolagents.agent_types import AgentText

    assert same(stored(AgentText("the answer")), "the answer")


class Hostile:
    """Every method a careless encoder might call records that it ran."""

    calls: list[str] = []

    def __reduce__(self) -> Any:
        Hostile.calls.append("reduce")
        return (print, ("reduced",))

    def __reduce_ex__(self, protocol: Any) -> Any:
        Hostile.calls.append("reduce_ex")
        return (print, ("reduced",))

    def __eq__(self, other: object) -> bool:
        Hostile.calls.append("eq")
        return True

    def __hash__(self) -> int:
        Hostile.calls.append("hash")
        return 1

    def __repr__(self) -> str:
        Hostile.calls.append("repr")
        return "Hostile()"

    def __iter__(self) -> Any:
        Hostile.calls.append("iter")
        return iter([])

    def __getattr__(self, name: str) -> Any:
        Hostile.calls.append(f"getattr {name}")
        raise AttributeError(name)


@pytest.mark.parametrize(
    "make",
    [
        lambda h: h,
        lambda h: [1, {"k": (2, h)}],
        lambda h: {h: 1},
        lambda h: {h},
        lambda h: Invoice("x", decimal.Decimal(1), (h,)),
    ],
    ids=["itself", "nested", "a key", "in a set", "in a registered dataclass"],
)
def test_an_unknown_class_is_refused_naming_it_without_calling_its_methods(make: Any) -> None:
    value = make(object.__new__(Hostile))
    Hostile.calls.clear()  # building a set or a dict hashed it: only the encoding counts
    with pytest.raises(UnjournalableError, match="Hostile") as caught:
        encode(value, "the result of task `t1`", TYPES)
    assert Hostile.calls == []
    assert "journal_types=[tests.journal.test_codec" in str(caught.value)


def test_a_subclass_of_a_registered_type_is_refused() -> None:
    with pytest.raises(UnjournalableError, match="SpecialInvoice"):
        encode(SpecialInvoice("x", decimal.Decimal(1)), "the answer", TYPES)


@pytest.mark.parametrize(
    "value",
    [lambda: None, object(), [1, 2].__iter__(), datetime.UTC, Color.RED],
    ids=["function", "object", "iterator", "bare tzinfo", "unregistered enum"],
)
def test_other_values_are_refused_with_the_fix(value: Any) -> None:
    with pytest.raises(UnjournalableError, match=r"cannot be journaled.*plain data"):
        encode(value, "the answer")


def test_a_datetime_with_a_time_zone_of_its_own_class_is_refused() -> None:
    class Zone(datetime.tzinfo):
        def utcoffset(self, dt: Any) -> datetime.timedelta:
            raise AssertionError("the zone's code ran")

    with pytest.raises(UnjournalableError, match="time zone"):
        encode(datetime.datetime(2024, 1, 1, tzinfo=Zone()), "the answer")


def test_an_ordered_dict_or_other_builtin_subclass_is_refused() -> None:
    import collections

    with pytest.raises(UnjournalableError, match="OrderedDict"):
        encode(collections.OrderedDict(a=1), "the answer")


def test_a_self_containing_or_exploding_value_is_refused_quickly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(UnjournalableError, match="contains itself"):
        encode(loop, "the answer")
    monkeypatch.setattr(_codec, "MAX_VALUES", 10_000)
    doubling: Any = [1]
    for _ in range(60):  # 2**60 leaves through shared references
        doubling = [doubling, doubling]
    with pytest.raises(UnjournalableError, match="larger than the journal holds"):
        encode(doubling, "the answer")
    monkeypatch.setattr(_codec, "MAX_SIZE", 1000)
    with pytest.raises(UnjournalableError, match="larger than"):
        encode("x" * 2000, "the answer")
    with pytest.raises(UnjournalableError, match="larger than"):
        encode(b"x" * 1000, "the answer")


def test_encoding_stops_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_codec, "ENCODE_SECONDS", -1.0)  # past before it starts
    with pytest.raises(UnjournalableError, match="took longer than"):
        encode([[i] for i in range(10 * _codec._CHECK_CLOCK)], "the answer")


def test_an_error_says_where_in_the_value_the_refused_part_is() -> None:
    with pytest.raises(UnjournalableError, match=r"at `\['rows'\]\[1\]\[0\]`"):
        encode({"rows": [1, (object(),)]}, "the answer")


def test_a_pickled_value_of_agentloop_0_1_is_refused_and_never_unpickled() -> None:
    ran: list[str] = []

    class Boom:
        def __reduce__(self) -> Any:
            return (ran.append, ("unpickled",))

    legacy = {"pickle": base64.b64encode(pickle.dumps((1, 2))).decode()}
    with pytest.raises(JournalError, match=r"pickled by an older agentloop .* new run id"):
        decode(legacy, "the answer of run `r`")
    assert ran == []


@pytest.mark.parametrize(
    ("stored_form", "message"),
    [
        ({"typed": {"$nope": 1}}, "tag this agentloop does not know"),
        ({"typed": {"$object": ["mod.Unknown", {}]}}, "has not registered"),
        ({"typed": {"$tuple": 5}}, "malformed"),
        ({"typed": {"$datetime": ["yesterday", None, 0]}}, "malformed"),
        (
            {"typed": {"$object": ["tests.journal.test_codec.Invoice", {"nope": 1}]}},
            "no longer fits",
        ),
        ({"typed": {"$enum": ["tests.journal.test_codec.Color", "green"]}}, "no longer fits"),
        (
            {"typed": {"$object": ["tests.journal.test_codec.Color", {}]}},
            "stored form of a `enum` type",
        ),
        ({"else": 1}, "no form this agentloop reads"),
    ],
)
def test_a_stored_form_that_cannot_be_read_is_a_clear_journal_error(
    stored_form: Any, message: str
) -> None:
    with pytest.raises(JournalError, match=message):
        decode(stored_form, "the answer", TYPES)


def test_an_unregistered_type_decodes_nowhere_but_previews_by_name() -> None:
    value = encode({"inv": Invoice("A-1", decimal.Decimal("2"))}, "v", TYPES)
    with pytest.raises(JournalError, match=r"journal_types=\[tests.journal.test_codec.Invoice\]"):
        decode(value, "the answer")
    shown = preview(value)["inv"]
    assert isinstance(shown, StoredObject)
    assert (
        repr(shown)
        == "tests.journal.test_codec.Invoice(number='A-1', total=Decimal('2'), lines=())"
    )


def test_journal_types_accepts_dataclasses_models_and_enums_only() -> None:
    for wrong, message in [
        (Invoice, "list of classes"),
        ("Invoice", "list of classes"),
        (5, "list of classes"),
        ([int], "dataclasses, pydantic models and enums.*`builtins.int`"),
        ([Invoice("x", decimal.Decimal(1))], "received a Invoice"),
    ]:
        with pytest.raises(InvalidArgumentsError, match=message):
            registry(wrong)


def test_two_classes_with_one_name_are_refused() -> None:
    def make() -> type:
        @dataclasses.dataclass
        class Local:
            x: int

        return Local

    with pytest.raises(InvalidArgumentsError, match="two classes named"):
        registry([make(), make()])


async def test_a_short_str_subclass_is_stored_on_the_loop_without_running_its_methods() -> None:
    """A final answer is smolagents' `AgentText` (a str subclass): stored inline, as the plain
    string, by str's own methods; a subclass that model code wrote cannot run its own."""
    ran: list[str] = []

    class Sly(str):
        def __len__(self) -> int:
            ran.append("__len__")
            return 0

        def __str__(self) -> str:
            ran.append("__str__")
            return "something else"

    stored = await _codec.encoded(Sly("the answer"), "the answer")
    assert stored == {"json": "the answer"} and type(stored["json"]) is str
    assert ran == []
