"""Signal types: Bool, UInt/Int, enums, fixed point, arrays, cast(), wrap/saturate/resize."""

import enum
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sme import (
    Array,
    Bool,
    DeclarationError,
    Fixed,
    Int,
    SFix,
    UFix,
    UInt,
    cast,
    resize,
    saturate,
    wrap,
)
from sme.overflow import store
from sme.types import ArrayType, EnumType, TypeMisfit


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"
    BLUE = "b"


# -- Bool -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), (1, True), (0, False)]
)
def test_bool_accepts_bools_and_0_1(value: object, expected: bool) -> None:
    got = Bool.coerce(value)
    assert got is expected


@pytest.mark.parametrize("value", [2, -1, "1", None, 1.0])
def test_bool_rejects_anything_else(value: object) -> None:
    with pytest.raises(TypeMisfit, match="is not a Bool"):
        Bool.coerce(value)


def test_bool_text_and_width() -> None:
    assert Bool.width == 1
    assert (Bool.to_text(True), Bool.to_text(False)) == ("1", "0")
    assert Bool.from_text("1") is True
    assert Bool.from_text("0") is False
    with pytest.raises(ValueError, match=r"'2' is not a Bool \(expected 0 or 1\)"):
        Bool.from_text("2")
    assert Bool.zero() is False
    assert Bool.describe_range() == "False/True (or 0/1)"


# -- UInt / Int ---------------------------------------------------------------------------
@pytest.mark.parametrize("width", range(1, 65))
def test_integer_ranges_for_every_width(width: int) -> None:
    u, s = UInt[width], Int[width]
    assert (u.width, s.width) == (width, width)
    assert (u.lo, u.hi) == (0, 2**width - 1)
    assert (s.lo, s.hi) == (-(2 ** (width - 1)), 2 ** (width - 1) - 1)
    for t in (u, s):
        assert t.coerce(t.lo) == t.lo
        assert t.coerce(t.hi) == t.hi
        with pytest.raises(TypeMisfit, match="out of range"):
            t.coerce(t.hi + 1)
        with pytest.raises(TypeMisfit, match="out of range"):
            t.coerce(t.lo - 1)
    assert repr(u) == f"UInt[{width}]"
    assert repr(s) == f"Int[{width}]"
    assert u.describe_range() == f"0..{2**width - 1}"


@pytest.mark.parametrize("width", [0, 129, -1, True, "8", 8.0])
def test_integer_width_must_be_1_to_128(width: object) -> None:
    with pytest.raises(DeclarationError, match=r"UInt\[.*\]: width must be an int in 1\.\.128"):
        UInt[width]  # type: ignore[index]
    with pytest.raises(DeclarationError, match=r"Int\[.*\]: width must be an int in 1\.\.128"):
        Int[width]  # type: ignore[index]


def test_a_bad_type_names_the_line_that_wrote_it() -> None:
    """A C# ``UInt256`` ported as ``key: UInt[256]`` on a bus stopped ``smeflow sim`` with
    only "UInt[256]: width must be an int in 1..128": which file, which line?"""
    here = __file__.rsplit("/", 1)[-1]
    for make, message in [(lambda: UInt[256], r"UInt\[256\]: width must be an int in 1\.\.128"),
                          (lambda: Array[UInt[8], 0], r"Array\[UInt\[8\], 0\]: length must"),
                          (lambda: SFix[80, 49], r"SFix\[80, 49\]: total width must be")]:
        with pytest.raises(DeclarationError, match=rf"{here}:\d+: {message}") as info:
            make()
        line = int(str(info.value).split(f"{here}:")[1].split(":")[0])
        assert "lambda" in Path(__file__).read_text().splitlines()[line - 1]


def test_integer_types_are_cached() -> None:
    assert UInt[8] is UInt[8]
    assert Int[8] is not UInt[8]


def test_integer_rejects_bool_with_a_hint() -> None:
    with pytest.raises(TypeMisfit, match=r"True is a bool, not an integer; use int\(\.\.\.\)"):
        UInt[8].coerce(True)


@pytest.mark.parametrize("value", [1.0, "3", None, Fixed(1, 1)])
def test_integer_rejects_non_integers(value: object) -> None:
    with pytest.raises(TypeMisfit):
        UInt[8].coerce(value)


def test_integer_accepts_numpy_integers_and_exact_fixed() -> None:
    got = UInt[8].coerce(np.int64(200))
    assert got == 200
    assert type(got) is int
    assert Int[8].coerce(Fixed(-12, 2)) == -3
    assert Int[8].coerce(Fixed(-13, 2), rounding="floor") == -4


@given(st.integers(1, 64), st.booleans(), st.integers(-(2**80), 2**80))
def test_wrap_is_twos_complement(width: int, signed: bool, v: int) -> None:
    t = Int[width] if signed else UInt[width]
    got = store(t, wrap(v))
    m = 2**width
    expected = ((v + m // 2) % m) - m // 2 if signed else v % m
    assert got == expected
    assert t.lo <= got <= t.hi


@given(st.integers(1, 64), st.booleans(), st.integers(-(2**80), 2**80))
def test_saturate_clamps(width: int, signed: bool, v: int) -> None:
    t = Int[width] if signed else UInt[width]
    assert store(t, saturate(v)) == min(max(v, t.lo), t.hi)


def test_store_without_marker_is_checked() -> None:
    assert store(UInt[4], 15) == 15
    with pytest.raises(TypeMisfit, match="16 is out of range"):
        store(UInt[4], 16)


# -- enums --------------------------------------------------------------------------------
def test_enum_type() -> None:
    t = cast(Color)
    assert isinstance(t, EnumType)
    assert cast(Color) is t
    assert t.width == 2
    assert [t.to_raw(m) for m in Color] == [0, 1, 2]
    assert t.zero() is Color.RED
    assert t.coerce(Color.BLUE) is Color.BLUE
    assert t.to_text(Color.GREEN) == "GREEN"
    assert t.from_text("BLUE") is Color.BLUE
    assert t.describe_range() == "Color.RED, Color.GREEN, Color.BLUE"
    assert repr(t) == "Color"


def test_enum_rejects_values_and_other_members() -> None:
    class Other(enum.Enum):
        RED = "r"

    t = cast(Color)
    for bad in ("r", 0, Other.RED):
        with pytest.raises(TypeMisfit, match="is not a member of Color"):
            t.coerce(bad)
    with pytest.raises(ValueError, match="'PINK' is not a member of Color"):
        t.from_text("PINK")


@pytest.mark.parametrize(("n", "width"), [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (9, 4)])
def test_enum_width_is_enough_bits_for_the_members(n: int, width: int) -> None:
    e = enum.Enum("E", [(f"M{i}", i) for i in range(n)])  # type: ignore[misc]
    assert cast(e).width == width
    named = enum.Enum("N", [(f"M{i}", f"m{i}") for i in range(n)])  # type: ignore[misc]
    assert cast(named).width == width  # not ints: encoded by position


@pytest.mark.parametrize(("values", "width"), [((0, 4, 9), 4), ((1, 2), 2), ((7,), 3),
                                               ((0, 255), 8), ((-1, 1), 1)])
def test_enum_width_is_that_of_the_largest_value(values: tuple[int, ...], width: int) -> None:
    e = enum.Enum("E", [(f"M{i}", v) for i, v in enumerate(values)])  # type: ignore[misc]
    t = cast(e)
    assert t.width == width
    assert t.codes == (values if min(values) >= 0 else tuple(range(len(values))))


def test_empty_enum_is_an_error() -> None:
    class Empty(enum.Enum):
        pass

    with pytest.raises(DeclarationError, match=r"enum .*Empty has no members"):
        cast(Empty)


# -- fixed point: Fixed values ------------------------------------------------------------
fixed_values = st.builds(Fixed, st.integers(-(2**70), 2**70), st.integers(0, 40))


@given(fixed_values, fixed_values)
def test_fixed_arithmetic_is_exact(a: Fixed, b: Fixed) -> None:
    fa, fb = a.as_fraction(), b.as_fraction()
    s, d, p = a + b, a - b, a * b
    assert s.as_fraction() == fa + fb
    assert s.frac == max(a.frac, b.frac)
    assert d.as_fraction() == fa - fb
    assert d.frac == max(a.frac, b.frac)
    assert p.as_fraction() == fa * fb
    assert p.frac == a.frac + b.frac
    assert (-a).as_fraction() == -fa
    assert abs(a).as_fraction() == abs(fa)
    assert (a < b, a <= b, a > b, a >= b) == (fa < fb, fa <= fb, fa > fb, fa >= fb)
    assert (a == b) == (fa == fb)


@given(fixed_values, st.integers(-(2**40), 2**40), st.integers(0, 20))
def test_fixed_with_ints_and_shifts(a: Fixed, n: int, k: int) -> None:
    fa = a.as_fraction()
    assert (a + n).as_fraction() == fa + n
    assert (n + a).as_fraction() == n + fa
    assert (a - n).as_fraction() == fa - n
    assert (n - a).as_fraction() == n - fa
    assert (a * n).as_fraction() == fa * n
    assert (n * a).as_fraction() == n * fa
    assert (a << k).as_fraction() == fa * 2**k
    assert (a >> k).as_fraction() == fa / 2**k
    assert (a << -k).as_fraction() == fa / 2**k
    assert (a == n) == (fa == n)


@given(fixed_values, st.integers(0, 40))
def test_fixed_rounding_floor_and_nearest(a: Fixed, frac: int) -> None:
    scaled = a.as_fraction() * 2**frac
    assert a.rounded(frac, "floor") == math.floor(scaled)
    assert a.rounded(frac, "nearest") == math.floor(scaled + Fraction(1, 2))  # half up
    if scaled.denominator == 1:
        assert a.rounded(frac, "exact") == scaled
    else:
        with pytest.raises(TypeMisfit, match="would lose precision"):
            a.rounded(frac, "exact")


@pytest.mark.parametrize(
    ("raw", "frac", "floor", "nearest"),
    [(3, 1, 1, 2), (-3, 1, -2, -1), (5, 2, 1, 1), (-5, 2, -2, -1), (7, 2, 1, 2), (-7, 2, -2, -2)],
)
def test_nearest_is_round_half_up(raw: int, frac: int, floor: int, nearest: int) -> None:
    v = Fixed(raw, frac)
    assert v.rounded(0, "floor") == floor
    assert v.rounded(0, "nearest") == nearest


def test_fixed_equality_hash_and_text() -> None:
    assert Fixed(2, 1) == Fixed(1, 0) == 1
    assert hash(Fixed(2, 1)) == hash(Fixed(1, 0)) == hash(1)
    assert Fixed(1, 1) != 0.5  # no implicit floats
    assert float(Fixed(3, 2)) == 0.75
    assert repr(Fixed(3, 2)) == "Fixed(3/4)"
    assert str(Fixed(3, 2)) == "0.75"
    with pytest.raises(TypeError, match=r"cannot combine a fixed-point value with 0\.5"):
        Fixed(1, 1) + 0.5  # type: ignore[operator]
    with pytest.raises(TypeError, match="cannot combine"):
        Fixed(1, 1) + True


# -- fixed point: UFix / SFix -------------------------------------------------------------
def test_fix_types() -> None:
    u, s = UFix[2, 6], SFix[4, 4]
    assert (u.width, s.width) == (8, 8)
    assert repr(u) == "UFix[2, 6]"
    assert repr(s) == "SFix[4, 4]"
    assert UFix[2, 6] is u
    assert u.describe_range() == "0.0..3.984375 in steps of 2**-6"
    assert s.describe_range() == "-8.0..7.9375 in steps of 2**-4"
    assert u(0.75).raw == 48
    assert s(-0.5).raw == -8
    assert u(3).raw == 192
    assert u.zero() == 0
    assert u.zero().frac == 6
    assert UFix[0, 8].describe_range() == "0.0..0.99609375 in steps of 2**-8"


@pytest.mark.parametrize(
    ("factory", "bits", "message"),
    [
        (UFix, (2, -1), r"UFix\[2, -1\]: need integer bits >= 0 and fractional bits >= 0"),
        (SFix, (0, 4), r"SFix\[0, 4\]: need integer bits >= 1 and fractional bits >= 0"),
        (UFix, (1.5, 2), r"UFix\[1.5, 2\]: need integer bits"),
        (UFix, (True, 2), r"UFix\[True, 2\]: need integer bits"),
        (UFix, (0, 0), r"UFix\[0, 0\]: total width must be 1\.\.128"),
        (SFix, (80, 49), r"SFix\[80, 49\]: total width must be 1\.\.128"),
        (UFix, 8, r"UFix\[\.\.\.\] takes two numbers: UFix\[int_bits, frac_bits\]"),
        (SFix, (1, 2, 3), r"SFix\[\.\.\.\] takes two numbers"),
    ],
)
def test_fix_declaration_errors(factory: object, bits: object, message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        factory[bits]  # type: ignore[index]


def test_fix_coerce_floats() -> None:
    t = UFix[4, 2]
    assert t.coerce(1.25).raw == 5
    with pytest.raises(TypeMisfit, match=r"1\.3 is not a multiple of 2\*\*-2; choose a rounding"):
        t.coerce(1.3)
    assert t.coerce(1.3, rounding="floor").raw == 5
    assert t.coerce(1.4, rounding="nearest").raw == 6
    assert t.coerce(1.375, rounding="nearest").raw == 6  # half up
    assert SFix[4, 2].coerce(-1.375, rounding="nearest").raw == -5  # half up, towards +inf
    for bad in (math.inf, math.nan):
        with pytest.raises(TypeMisfit, match="is not a finite number"):
            t.coerce(bad)


def test_fix_coerce_fixed_needs_a_rounding_to_drop_bits() -> None:
    t = SFix[4, 2]
    v = Fixed(-11, 3)  # -1.375
    with pytest.raises(TypeMisfit, match="has 3 fractional bits and would lose precision at 2"):
        t.coerce(v)
    assert t.coerce(v, "floor").raw == -6
    assert t.coerce(v, "nearest").raw == -5
    assert t.coerce(Fixed(-12, 3)).raw == -6  # exact: no rounding needed
    assert t.coerce(Fixed(3, 0)).raw == 12


def test_fix_overflow() -> None:
    t = UFix[2, 2]  # 0 .. 3.75
    with pytest.raises(TypeMisfit, match=r"4\.0 is out of range"):
        t.coerce(4)
    assert t.coerce(Fixed(17, 2), overflow="wrap").raw == 1
    assert t.coerce(Fixed(17, 2), overflow="saturate").raw == 15
    assert t.coerce(-1, overflow="saturate").raw == 0
    assert store(SFix[2, 2], saturate(Fixed(-100, 2))).raw == -8
    assert store(SFix[2, 2], wrap(Fixed(9, 2))).raw == -7
    assert store(SFix[2, 2], wrap(Fixed(19, 3), rounding="nearest")).raw == -6


@pytest.mark.parametrize("value", [True, "1", None])
def test_fix_rejects_non_numbers(value: object) -> None:
    with pytest.raises(TypeMisfit):
        UFix[4, 4].coerce(value)


@given(st.integers(1, 8), st.integers(0, 8), fixed_values)
def test_fix_saturate_and_wrap_match_fractions(i: int, f: int, v: Fixed) -> None:
    t = SFix[i, f]
    lo, hi = Fraction(-(2 ** (i + f - 1)), 2**f), Fraction(2 ** (i + f - 1) - 1, 2**f)
    floored = Fraction(math.floor(v.as_fraction() * 2**f), 2**f)
    got = store(t, saturate(v, rounding="floor"))
    assert got.frac == f
    assert got.as_fraction() == min(max(floored, lo), hi)
    wrapped = store(t, wrap(v, rounding="floor"))
    m = 2 ** (i + f)
    assert wrapped.raw == ((math.floor(v.as_fraction() * 2**f) + m // 2) % m) - m // 2


# -- arrays -------------------------------------------------------------------------------
def test_array_type() -> None:
    t = Array[UInt[8], 3]
    assert isinstance(t, ArrayType)
    assert Array[UInt[8], 3] is t
    assert t.width == 24
    assert repr(t) == "Array[UInt[8], 3]"
    assert t.coerce([1, 2, 3]) == (1, 2, 3)
    assert t.coerce(x for x in (4, 5, 6)) == (4, 5, 6)
    assert t.zero() == (0, 0, 0)
    assert t.to_text((1, 2, 255)) == "1 2 255"
    assert t.from_text("1 2 255") == (1, 2, 255)
    assert t.describe_range() == "3 elements, each 0..255"
    assert Array[Color, 2].zero() == (Color.RED, Color.RED)
    assert store(t, wrap([256, -1, 3])) == (0, 255, 3)
    assert store(t, saturate([256, -1, 3])) == (255, 0, 3)


def test_array_misfits() -> None:
    t = Array[UInt[8], 3]
    with pytest.raises(TypeMisfit, match="has 2 elements, expected 3"):
        t.coerce([1, 2])
    with pytest.raises(TypeMisfit, match=r"element \[1\]: 256 is out of range"):
        t.coerce([1, 256, 3])
    for bad in (5, "abc", b"abc"):
        with pytest.raises(TypeMisfit, match="is not a sequence"):
            t.coerce(bad)
    with pytest.raises(TypeError, match="an array has no single raw value"):
        t.to_raw((1, 2, 3))


@pytest.mark.parametrize("text", ["1 2", "1 2 3 4", ""])
def test_array_from_text_checks_the_length(text: str) -> None:
    with pytest.raises(ValueError, match="3"):
        Array[UInt[8], 3].from_text(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((UInt[8], 0), r"Array\[UInt\[8\], 0\]: length must be an int >= 1"),
        ((UInt[8], True), r"length must be an int >= 1"),
        ((Array[UInt[8], 2], 2), "Array of Array is not supported; flatten it"),
        ((int, 2), "int cannot be converted to a signal type"),
    ],
)
def test_array_declaration_errors(args: tuple[object, object], message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        Array[args]  # type: ignore[index]


def test_array_needs_two_arguments() -> None:
    with pytest.raises(DeclarationError,
                       match=r"Array\[\.\.\.\] takes an element type and a length"):
        Array[UInt[8]]  # type: ignore[index]


# -- cast() -------------------------------------------------------------------------------
def test_cast_accepts_the_forms_a_user_writes() -> None:
    assert cast(UInt[3]) is UInt[3]
    assert cast(Bool) is Bool
    assert cast(bool) is Bool
    assert isinstance(cast(Color), EnumType)


def test_cast_of_int_explains_why() -> None:
    with pytest.raises(
        DeclarationError, match=r"int cannot be converted to a signal type: it has no width; "
        r"use UInt\[n\] or Int\[n\]"
    ):
        cast(int)


@pytest.mark.parametrize("obj", [3, "UInt[8]", float, None, UInt])
def test_cast_rejects_everything_else_showing_the_object(obj: object) -> None:
    with pytest.raises(DeclarationError, match=rf"^{__import__('re').escape(repr(obj))} cannot be "
                       "converted to a signal type$"):
        cast(obj)


# -- resize / wrap / saturate -------------------------------------------------------------
def test_resize() -> None:
    assert resize(300, UInt[8], overflow="wrap") == 44
    assert resize(300, UInt[8], overflow="saturate") == 255
    assert resize(Fixed(7, 3), UFix[2, 1], rounding="nearest").raw == 2
    assert resize(Fixed(7, 3), UFix[2, 1], rounding="floor").raw == 1
    assert resize(Color.GREEN, Color) is Color.GREEN
    with pytest.raises(ValueError,
                       match=r"^resize: 300 is out of range; UInt\[8\] allows 0\.\.255$"):
        resize(300, UInt[8])
    with pytest.raises(ValueError, match=r"resize: .*would lose precision.*UFix\[2, 1\] allows"):
        resize(Fixed(7, 3), UFix[2, 1])
    with pytest.raises(DeclarationError, match="cannot be converted"):
        resize(1, "UInt[8]")


@pytest.mark.parametrize("helper", [wrap, saturate])
def test_wrap_and_saturate_check_the_rounding(helper: object) -> None:
    with pytest.raises(
        ValueError, match=r"rounding must be one of \('exact', 'floor', 'nearest'\), not 'up'"
    ):
        helper(1, rounding="up")  # type: ignore[operator]
    assert repr(helper(3)) == f"{helper.__name__}(3)"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("element", "values"), [
    (UInt[20], np.array([0, 7, (1 << 20) - 1], dtype=np.uint32)),
    (Int[8], np.array([-128, 0, 127], dtype=np.int16)),
    (UFix[2, 14], np.array([0, 1, 3], dtype=np.int64)),
    (SFix[4, 4], np.array([-8, -1, 7], dtype=np.int8)),
    (Bool, np.array([True, False, True])),
    (UInt[16], np.array([300, 65535, 300], dtype=np.uint16)),  # (a table of the range)
    (SFix[40, 4], np.array([-(1 << 30), 0, -(1 << 30)], dtype=np.int64)),  # (sorted)
])
def test_a_numpy_array_converts_as_its_elements_do(element: Any, values: np.ndarray) -> None:
    got = Array[element, 3].coerce(values)
    want = tuple(element.coerce(v) for v in values.tolist())
    assert got == want
    assert [type(v) for v in got] == [type(v) for v in want]
    if isinstance(want[0], Fixed):
        assert [v.raw for v in got] == [v.raw for v in want]
    if values[0] == values[2]:  # equal words share one (immutable) object
        assert got[0] is got[2]


@pytest.mark.parametrize(("element", "values", "where"), [
    (UInt[4], np.array([0, 16, 3]), 1),
    (UFix[2, 14], np.array([0, 1, 4]), 2),
    (Int[8], np.array([-129, 0, 0]), 0),
    (Bool, np.array([0, 1, 1]), 0),  # integers are not Bools in an array either
    (UInt[4], np.array([True, False, True]), 0),
])
def test_a_numpy_array_that_does_not_fit_names_its_element(element: Any, values: np.ndarray,
                                                          where: int) -> None:
    with pytest.raises(TypeMisfit) as whole:
        Array[element, 3].coerce(values)
    with pytest.raises(TypeMisfit) as one_by_one:  # a list: converted element by element
        Array[element, 3].coerce(list(values))
    assert str(whole.value) == str(one_by_one.value)
    assert str(whole.value).startswith(f"element [{where}]: ")


def test_a_numpy_array_wraps_and_saturates_as_its_elements_do() -> None:
    values = np.array([-1, 5, 17])
    for overflow in ("wrap", "saturate"):
        assert Array[UInt[4], 3].coerce(values, overflow=overflow) == tuple(
            UInt[4].coerce(v, overflow=overflow) for v in values.tolist())
