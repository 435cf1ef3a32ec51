"""SME C#'s BitWidth example ported (``sme/examples/bitwidth.py``): every sum is the C#
tester's ``(UInt10)(a + b)``, in the interpreter, the compiled backend and GHDL; the
literal port without ``wrap`` stops at the first sum that does not fit, with the same
error in the interpreter and the compiled backend."""

from __future__ import annotations

import pytest

from fpga.pytest_plugin import HardwareTester
from sme import In, Network, Out, Process, SignalValueError, Simulator
from sme.examples import bitwidth as bw


@pytest.mark.ghdl
def test_sums_wrap_to_ten_bits_in_every_backend(sme_hw: HardwareTester) -> None:
    stimulus = list(bw.stimulus())
    trace = sme_hw.all_backends(bw.build(), stimulus)  # interp = compiled = GHDL
    valid, value = trace.column("c.valid"), trace.column("c.value")
    sums = [(s["a.value"] + s["b.value"]) % 1024 for s in stimulus if s["a.valid"]]
    assert [v for ok, v in zip(valid, value, strict=True) if ok] == sums
    assert [t for t, ok in enumerate(valid) if ok] == list(range(2, 2 * len(sums) + 1, 2))
    assert any(s["a.value"] + s["b.value"] > 1023 for s in stimulus if s["a.valid"])


class LiteralAdd(Process):
    """C#'s cast left out: ``c.value = a.value + b.value``."""

    a: In[bw.ValueBus]
    b: In[bw.ValueBus]
    c: Out[bw.ValueBus]

    def on_tick(self) -> None:
        if self.a.valid and self.b.valid:
            self.c.value = self.a.value + self.b.value
            self.c.valid = True
        else:
            self.c.valid = False


def test_without_wrap_the_first_overflow_is_one_clear_error() -> None:
    stimulus = [{"a.valid": True, "b.valid": True, "a.value": 600, "b.value": v}
                for v in (100, 423, 424)]
    errors = []
    for backend in ("interp", "compiled"):
        net = Network("literal", [LiteralAdd(a=bw.ValueBus(name="a"), b=bw.ValueBus(name="b"),
                                             c=bw.ValueBus(name="c"))])
        with pytest.raises(SignalValueError) as info:
            Simulator(net, backend=backend).run(stimulus=stimulus)
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    assert "1024" in errors[0] and "test_examples_ported_bitwidth.py:" in errors[0]
    assert "tick 2" in errors[0]
