"""The lowering front end: each pass on its own, the IR of the examples, and one test per
unsupported construct pinning its message (file:line:col and the construct)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sme.examples import counter, features, pipeline
from sme.lower import LoweringError, LoweringTypeError, UnsupportedConstructError, lower_process
from sme.lower import typerules as tr
from sme.lower.frontend import flatten_returns, parse_function
from sme.lower.ir import (
    Assign,
    BinOp,
    Const,
    Convert,
    Goto,
    If,
    LocalTarget,
    NumT,
    PortRead,
    PortTarget,
    RegRead,
    RegTarget,
    Yield,
)
from sme.lower.states import build_states

from . import _lower_cases as cases


# -- type rules --------------------------------------------------------------------------
def test_numt_widths() -> None:
    assert (NumT(0, 255).width, NumT(0, 255).signed) == (8, False)
    assert (NumT(-128, 127).width, NumT(-128, 127).signed) == (8, True)
    assert NumT(-1, 128).width == 9
    assert NumT.of_width(19, True) == NumT(-(1 << 18), (1 << 18) - 1)


def test_exact_result_ranges() -> None:
    u8, s16 = NumT(0, 255), NumT(-32768, 32767)
    assert tr.add(u8, NumT.const(1)) == NumT(1, 256)
    assert tr.sub(u8, u8) == NumT(-255, 255)
    assert tr.mul(s16, NumT.const(3)) == NumT(-98304, 98301)
    assert tr.floordiv(s16, NumT.const(5)) == NumT(-6554, 6553)
    assert tr.mod(s16, NumT.const(7)) == NumT(0, 6)
    assert tr.mod(NumT(0, 5), NumT.const(7)) == NumT(0, 5)
    assert tr.rshift(s16, NumT.const(3)) == NumT(-4096, 4095)
    assert tr.lshift(u8, NumT.const(2)) == NumT(0, 1020)
    assert tr.invert(u8) == NumT(-256, -1)
    assert tr.add(NumT(0, 3, 2), NumT(0, 1)) == NumT(0, 7, 2)
    assert tr.mul(NumT(0, 3, 2), NumT(0, 3, 1)) == NumT(0, 9, 3)


# -- passes ------------------------------------------------------------------------------
def test_parse_function_locates_source() -> None:
    parsed = parse_function(pipeline.Clamp.on_tick)
    assert parsed.file.endswith("pipeline.py")
    assert parsed.loc(parsed.node.body[0]).short.startswith("pipeline.py:")
    assert parsed.loc(parsed.node.body[0]).col == 8


def test_flatten_returns_moves_the_rest_into_else() -> None:
    tree = ast.parse("if a:\n    x = 1\n    return\nx = 2\n")
    (s,) = flatten_returns(tree.body)
    assert isinstance(s, ast.If)
    assert ast.unparse(s.orelse[0]) == "x = 2"
    ir = lower_process(cases.Guarded)
    (top,) = ir.body
    assert isinstance(top, If) and len(top.then) == 1 and len(top.orelse) == 1


def test_counter_ir() -> None:
    ir = lower_process(counter.Counter)
    assert [r.name for r in ir.registers] == ["count"]
    assert ir.doc and "Counts" in ir.doc
    inc = ir.body[0].orelse[0].then[0]  # type: ignore[attr-defined]
    assert isinstance(inc, Assign) and inc.target == RegTarget("count")
    assert isinstance(inc.value, Convert) and inc.value.overflow == "wrap"
    assert isinstance(inc.value.operand, BinOp) and inc.value.operand.type == NumT(1, 256)
    out = ir.body[1]
    assert isinstance(out, Assign) and out.target == PortTarget("data", "value")
    assert isinstance(out.value, RegRead)
    assert out.loc.short == "counter.py:40"


def test_pipeline_widths_are_exact() -> None:
    ir = lower_process(pipeline.Scale)
    p1 = ir.body[0]
    assert isinstance(p1, Assign) and isinstance(p1.value, Convert)
    assert p1.value.operand.type == NumT(-98303, 98302)
    assert p1.value.type == NumT.of_width(19, True)
    clamp = lower_process(pipeline.Clamp)
    assert [(v.name, v.type) for v in clamp.locals] == [("p", NumT.of_width(19, True))]
    cmp = clamp.body[1].orelse[0].cond  # type: ignore[attr-defined]
    assert isinstance(cmp.right, Const) and cmp.right.name == "CLAMP_MAX"


def test_helpers_are_inlined_and_locals_joined() -> None:
    ir = lower_process(features.Filter)
    assert [h.name for h in ir.helpers] == ["low_byte", "clamp"]
    names = {v.name: v.type for v in ir.locals}
    assert names["total"] == NumT(0, 4095)  # annotated
    assert "clamp_result" in names and "y" in names
    y = names["y"]
    assert isinstance(y, NumT) and y.lo <= -2048 and y.hi >= 2047


def test_own_output_read_is_marked() -> None:
    ir = lower_process(features.Filter)
    reads = [s.value for s in ir.body if isinstance(s, Assign)
             and s.target == PortTarget("out", "parity")]
    text = repr(reads)
    assert "own_output=True" in text
    assert isinstance(reads[0], object)
    assert PortRead is not None


def test_generator_state_machine() -> None:
    ir = lower_process(features.Handshaker)
    assert ir.is_generator and ir.states is not None
    assert ir.states[0].name == "start"
    assert all(v.persistent for v in ir.locals)
    waits = [s for st in ir.states for s in st.body if isinstance(s, Goto) and s.wait]
    assert waits


def test_states_reject_a_loop_without_yield() -> None:
    with pytest.raises(LoweringError, match=r"_lower_cases.py:\d+:\d+: on_tick can loop "
                       r"without reaching a yield"):
        lower_process(cases.NoYieldPath)


def test_states_accept_a_pass_without_yield() -> None:
    """Its end waits for the next tick (C#'s OnTickAsync returning): no loop in a tick."""
    states = lower_process(cases.NoYieldPass).states
    assert states is not None
    ends = [s for st in states for s in st.body if isinstance(s, Goto) and s.state == 0]
    assert ends and all(s.wait for s in ends)


def test_build_states_on_straight_code() -> None:
    ir = lower_process(counter.Counter)
    # the end of the body ends the tick: the next starts at state 0 (C#'s OnTickAsync
    # returning); a yield just before the end waits into a state that only ends the pass
    states = build_states(ir.body, ir.loc)
    assert len(states) == 1
    last = states[0].body[-1]
    assert isinstance(last, Goto) and last.wait and last.state == 0
    states = build_states([*ir.body, Yield(ir.loc)], ir.loc)
    assert [s.name for s in states] == ["start", "end"]
    last = states[0].body[-1]
    assert isinstance(last, Goto) and last.wait and last.state == 1
    assert states[1].body == [Goto(ir.loc, 0, True)]
    one = build_states([Assign(ir.loc, LocalTarget("x"), Const(NumT.const(1), 1))], ir.loc)
    assert len(one) == 1 and one[0].body[-1] == Goto(ir.loc, 0, True)


# -- unsupported constructs --------------------------------------------------------------
UNSUPPORTED = [
    (cases.WhileLoop, "while loop",
     r"while loops are supported in generator processes \(an on_tick that yields\), where "
     r"each pass yields; here use for over a range"),
    (cases.WhileNoYield, "while loop without yield",
     r"a while loop that does not yield would run without bound in one clock tick"),
    (cases.ReturnInLoop, "return inside a loop",
     r"return inside a for loop is not supported here; end the loop with break"),
    (cases.TryStmt, "try statement", r"try/except is not supported in on_tick"),
    (cases.YieldFromHelper, "yield from",
     r"yield from is not supported in on_tick: helpers cannot yield; write their waits in "
     r"on_tick itself \(a for loop around a bare yield waits that many ticks\)"),
    (cases.TrueDivision, "true division", r"/ is true division \(floats\); use // for integers"),
    (cases.FloatLiteral, "float", r"float values are not supported in on_tick"),
    (cases.MethodCall, "method call", r"cannot call self.helper: only module-level helper"),
    (cases.ForOverPort, "for over a non-constant range",
     r"range\(...\) start and step must be constants; the stop may be an integer read"),
    (cases.Comprehension, "list comprehension", r"comprehensions are not supported in on_tick"),
    (cases.SliceRead, "slice", r"slices are not supported in on_tick"),
    (cases.StringValue, "string", r"strings are not supported in on_tick"),
    (cases.InOperator, "in/not in", r"'in' and 'not in' are not supported in on_tick"),
    (cases.WriteInput, "write to an input port", r"WriteInput cannot write self\.inp\.a: port 'inp' is an In port"),
    (cases.ChainReadsTarget, "chained assignment reading its target",
     r"the value of `self\.out\.b = self\.r = self\.out\.b \+ 1` reads a target it assigns "
     r"first; assign it to one target, then copy"),
    (cases.EnumerateWithStart, "enumerate",
     r"enumerate is supported as `for i, e in enumerate\(<array>\)` \(no start\)"),
    (cases.EnumerateReversed, "enumerate of reversed",
     r"enumerate\(reversed\(...\)\) is not supported; loop with `for i in range\(n\)`"),
    (cases.ReversedRunTimeRange, "reversed range read at run time",
     r"reversed\(range\(...\)\) needs constant bounds"),
    (cases.LoopVarReadAfter, "loop variable read after its loop",
     r"'i' is the variable of the for loop at line \d+, read after the loop ended"),
    (cases.LoopVarAssigned, "assignment to a loop variable",
     r"the loop variable 'i' cannot be assigned"),
    (cases.PlainIntField, "assignment to an attribute",  # (it said only the first part)
     r"self\.count is not a declared register: its annotation int is not a signal type, "
     r"so it is a class constant; declare a register with one: count: Int\[32\] = 0"),
    (cases.MatchOnInteger, "match on a non-enum",  # (it said "not a u8[0..255]")
     r"match needs an enum value, and self\.inp\.a is an integer \(UInt\[8\]\); compare "
     r"it with if/elif instead"),
]


@pytest.mark.parametrize("cls,construct,message", UNSUPPORTED,
                         ids=[c[0].__name__ for c in UNSUPPORTED])
def test_unsupported_construct_message(cls: type, construct: str, message: str) -> None:
    with pytest.raises(UnsupportedConstructError, match=r"^_lower_cases\.py:\d+:\d+: "
                       + message) as info:
        lower_process(cls)
    assert info.value.construct == construct
    assert info.value.loc.file.endswith("_lower_cases.py")


def test_while_message_points_at_the_while() -> None:
    with pytest.raises(UnsupportedConstructError) as info:
        lower_process(cases.WhileLoop)
    src = Path(info.value.loc.file).read_text().splitlines()
    assert src[info.value.loc.line - 1][info.value.loc.col:].startswith("while ")


@pytest.mark.parametrize("cls,message", [
    (cases.BoolArithmetic, r"the left operand of \+ is a bool, not a number; write int"),
    (cases.Accumulator, r"the type of local 'total' grows with every assignment"),
    (cases.SumOfScalar, r"sum\(\) takes an array; self\.inp\.a is not one"),
    (cases.AnyOfScalar, r"any\(\) takes an array; self\.inp\.a is not one"),
])
def test_type_errors(cls: type, message: str) -> None:
    with pytest.raises(LoweringTypeError, match=r"^_lower_cases\.py:\d+:\d+: " + message):
        lower_process(cls)
