"""Bus declarations, bus instances, checked arrays and the signal-value errors."""

import re
import sys

import pytest

from sme import Array, ArrayIndexError, Bool, Bus, DeclarationError, Int, SignalValueError, UInt
from sme.bus import CheckedArray, SignalSpec, convert_for, snake_case
from sme.overflow import saturate, wrap
from sme.types import TypeMisfit

HERE = "test_bus.py"


def next_line() -> int:
    """The line after the caller's: where the object under test is built."""
    return sys._getframe(1).f_lineno + 1


LINE_STATUS = next_line()
class Status(Bus):
    """A bus with every kind of field."""

    ready: Bool = False
    level: UInt[4] = 3
    offset: Int[8]
    taps: Array[UInt[8], 3] = (1, 2, 3)


class MoreStatus(Status):
    extra: Bool = True
    level: UInt[4] = 7


def test_signals_in_declaration_order_with_types_and_initials() -> None:
    specs = Status.signals()
    assert list(specs) == ["ready", "level", "offset", "taps"]
    assert specs["level"] == SignalSpec("level", UInt[4], 3)
    assert specs["ready"].initial is False
    assert specs["taps"].initial == (1, 2, 3)
    assert specs["ready"].has_initial
    assert not specs["offset"].has_initial


def test_signals_live_in_views_not_on_the_class() -> None:
    assert not hasattr(Status, "level")
    assert not hasattr(Status(), "ready")


def test_inherited_signals_and_overridden_initials() -> None:
    specs = MoreStatus.signals()
    assert list(specs) == ["ready", "level", "offset", "taps", "extra"]
    assert specs["level"].initial == 7
    assert specs["taps"].initial == (1, 2, 3)
    assert Status.signals()["level"].initial == 3


def test_bus_names_and_source_location() -> None:
    line = next_line()
    bus = Status()
    assert bus.name == "status"
    assert not bus.explicit_name
    assert bus.src_loc.line == line
    assert bus.src_loc.file.endswith(HERE)
    assert re.fullmatch(rf"bus 'status' \(Status, created at .*{HERE}:{line}\)", bus.describe())
    named = Status(name="flags")
    assert named.name == "flags"
    assert named.explicit_name
    assert repr(named) == "<Status bus 'flags'>"


def test_class_location_is_the_class_statement() -> None:
    assert Status._sme_src_loc.line == LINE_STATUS
    assert Status._sme_src_loc.file.endswith(HERE)


@pytest.mark.parametrize(
    ("name", "snake"),
    [("CounterControl", "counter_control"), ("ADCSamples", "adc_samples"), ("Bus2X", "bus2_x"),
     ("x", "x")],
)
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake


@pytest.mark.parametrize("name", ["_x", "x_", "a__b", "1x", "a-b", ""])
def test_bad_bus_names(name: str) -> None:
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        Status(name=name)
    info.match(rf"{HERE}:{line}: bus name {re.escape(repr(name))} must be an identifier that "
               r"does not start or end with '_' and has no '__' \(it becomes a VHDL name\)$")


def test_bad_signal_name_names_the_class_line() -> None:
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class Bad(Bus):
            bad_: Bool = False
    info.match(rf"{HERE}:{line}: signal name 'bad_' must be an identifier")


def test_signal_type_that_cannot_be_cast() -> None:
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class Bad(Bus):
            count: int = 0
    info.match(rf"{HERE}:{line}: .*Bad\.count: int cannot be converted to a signal type")


def test_initial_value_that_does_not_fit() -> None:
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class Bad(Bus):
            level: UInt[4] = 16
    info.match(rf"{HERE}:{line}: initial value of .*Bad\.level: 16 is out of range; "
               r"UInt\[4\] allows 0\.\.15$")


def test_bus_without_signals() -> None:
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class Empty(Bus):
            pass
    info.match(rf"{HERE}:{line}: bus .*Empty declares no signals")


def test_string_annotations_are_evaluated_in_the_module() -> None:
    class Later(Bus):
        level: "UInt[4]" = 2

    assert Later.signals()["level"].type is UInt[4]
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class Broken(Bus):
            level: "Nope[4]" = 2  # type: ignore[name-defined] # noqa: F821
    info.match(rf"{HERE}:{line}: cannot evaluate the annotation of .*Broken\.level: "
               r"'Nope\[4\]' \(name 'Nope' is not defined\)")


def test_reset_restores_initial_values() -> None:
    bus = Status()
    assert bus._cur == {"ready": False, "level": 3, "taps": [1, 2, 3]}
    bus._cur["level"] = 9
    bus._cur["offset"] = -1
    bus._sme_reset()
    assert bus._cur["level"] == 3
    assert "offset" not in bus._cur
    assert bus._cur["taps"] is not bus._nxt["taps"]  # each side has its own array


# -- convert_for: the signal-value errors -------------------------------------------------
def test_misfit_names_bus_signal_value_range_writer_and_hint() -> None:
    spec = Status.signals()["level"]
    with pytest.raises(SignalValueError) as info:
        convert_for("status", spec, 16, "W 'w' (created at f.py:3)")
    assert str(info.value) == (
        "status.level: cannot store 16 (16 is out of range); UInt[4] allows 0..15; written by "
        "W 'w' (created at f.py:3); if the overflow is deliberate, write wrap(...) or saturate(...)"
    )
    assert (info.value.bus, info.value.signal, info.value.value) == ("status", "level", 16)
    assert info.value.tick is None
    info.value.tick = 12
    assert str(info.value).endswith("saturate(...) (tick 12)")


def test_misfit_of_the_wrong_kind_has_no_overflow_hint() -> None:
    spec = Status.signals()["level"]
    with pytest.raises(SignalValueError, match=r"cannot store True \(True is a bool, not an "
                       r"integer; use int\(\.\.\.\) to convert\); UInt\[4\] allows 0\.\.15; "
                       r"written by me$"):
        convert_for("status", spec, True, "me")


def test_convert_for_honours_wrap_and_saturate() -> None:
    spec = Status.signals()["level"]
    assert convert_for("status", spec, wrap(17), "me") == 1
    assert convert_for("status", spec, saturate(-5), "me") == 0
    with pytest.raises(SignalValueError,
                       match=r"cannot store 'x' \('x' is not an integer\)") as info:
        convert_for("status", spec, wrap("x"), "me")
    assert info.value.value == "x"  # the value shown is the one inside wrap(...)


# -- CheckedArray ---------------------------------------------------------------------------
def make_array() -> CheckedArray:
    t = Array[UInt[4], 3]
    return CheckedArray(t, (1, 2, 3), "bus", "taps")


def test_checked_array_element_writes_are_checked() -> None:
    a = make_array()
    a[0] = 15
    a[2] = wrap(17)
    assert a == [15, 2, 1]
    with pytest.raises(SignalValueError, match=r"^bus\.taps\[1\]: 16 is out of range; "
                       r"Array\[UInt\[4\], 3\] allows 3 elements, each 0\.\.15; written at "
                       rf".*{HERE}:{sys._getframe().f_lineno + 1}$"):
        a[1] = 16
    with pytest.raises(IndexError, match=r"bus\.taps\[3\]: index out of range 0\.\.2"):
        a[3] = 1
    with pytest.raises(ArrayIndexError, match=r"bus\.taps\[-1\]: index out of range 0\.\.2"):
        a[-1] = 1  # (no count from the end, as in the VHDL)
    a[0:2] = [4, 5]
    assert a == [4, 5, 1]
    with pytest.raises(SignalValueError,
                       match="a slice assignment may not change the array's length"):
        a[0:2] = [1]
    with pytest.raises(SignalValueError, match=r"bus\.taps\[slice\(0, 2, None\)\]: 99 is out"):
        a[0:2] = [1, 99]


@pytest.mark.parametrize("op", ["append", "extend", "insert", "pop", "remove", "clear"])
def test_checked_array_length_is_fixed(op: str) -> None:
    a = make_array()
    args = {"append": (1,), "extend": ([1],), "insert": (0, 1), "pop": (), "remove": (1,),
            "clear": ()}[op]
    with pytest.raises(SignalValueError, match=r"bus\.taps is an Array\[UInt\[4\], 3\]: its "
                       "length is fixed"):
        getattr(a, op)(*args)
    with pytest.raises(SignalValueError, match="its length is fixed"):
        del a[0]
    assert a == [1, 2, 3]


def test_type_misfit_is_internal() -> None:
    assert not issubclass(TypeMisfit, SignalValueError)
