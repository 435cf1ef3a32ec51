"""The examples are tests: the counter's trace and the pipeline's figures from DESIGN.md."""

from pathlib import Path

import numpy as np

from sme import Simulator
from sme.examples import counter, pipeline

COUNTER_CSV = """\
counter_control.valid,counter_control.reset,counter_data.value
0,0,0
1,0,1
1,0,2
1,0,3
0,0,3
1,0,4
1,0,5
1,0,6
0,0,6
1,1,0
1,0,1
1,0,2
0,0,2
"""


def test_counter_trace(tmp_path: Path) -> None:
    sim = Simulator(counter.build())
    trace = sim.run(stimulus=counter.stimulus())
    assert trace is not None
    assert trace.write_csv(tmp_path / "counter.csv").read_text() == COUNTER_CSV


def test_counter_wraps_at_256() -> None:
    sim = Simulator(counter.build(), trace=False)
    sim.poke("counter_control.valid", True)
    sim.run(255)
    assert sim.peek("counter_data.value") == 255
    sim.step()
    assert sim.peek("counter_data.value") == 0


def test_pipeline_network_shape() -> None:
    net = pipeline.build()
    assert [b.name for b in net.inputs] == ["samples"]
    assert [b.name for b in net.outputs] == ["sum_out"]
    assert [p.name for p in net.clocked] == ["scale", "clamp", "accumulate", "output"]
    assert net.combinational == []


def test_pipeline_figures_over_100000_ticks() -> None:
    ticks = 100_000
    i = np.arange(ticks)
    u = (i * 40503 + 12345) % 65536
    stimulus = {"samples.x": np.where(u >= 32768, u - 65536, u), "samples.x_valid": i % 8 != 7}
    out = Simulator(pipeline.build(), trace=False).run_batch(stimulus, ticks)
    valid = out["sum_out.sum_valid"]
    assert int(valid.sum()) == pipeline.EXPECTED_VALID_COUNT == 5_468
    assert int(out["sum_out.sum_out"][valid].sum()) == pipeline.EXPECTED_VALID_SUM == 175_399_483


def reference_pipeline(ticks: int) -> list[tuple[int, bool]]:
    """DESIGN.md's pipeline as plain Python: (sum_out, sum_valid) right after each edge."""
    p1 = v1 = c2 = v2 = s3 = v3 = acc = cnt = sum_out = 0
    sum_valid = False
    rows = []
    for i in range(ticks):
        x, x_valid = pipeline.sample(i)
        n_sum_out, n_sum_valid = s3, bool(v3)
        n_v3 = 0
        n_s3 = s3
        if v2:
            if cnt == 15:
                n_s3, n_v3, acc, cnt = (acc + c2) % 65536, 1, 0, 0
            else:
                acc, cnt = (acc + c2) % 65536, cnt + 1
        n_c2, n_v2 = min(max(p1, 0), 4095), v1
        p1, v1 = x * 3 + 1, x_valid
        c2, v2, s3, v3, sum_out, sum_valid = n_c2, n_v2, n_s3, n_v3, n_sum_out, n_sum_valid
        rows.append((sum_out, sum_valid))
    return rows


def test_pipeline_matches_a_plain_python_model_tick_by_tick() -> None:
    ticks = 2_000
    sim = Simulator(pipeline.build())
    trace = sim.run(stimulus=pipeline.stimulus(ticks))
    assert trace is not None
    got = list(zip(trace.column("sum_out.sum_out")[1:], trace.column("sum_out.sum_valid")[1:],
                   strict=True))
    assert got == reference_pipeline(ticks)
    assert sum(v for _, v in got) > 100


def test_pipeline_stimulus_is_designs() -> None:
    assert pipeline.sample(0) == (12345, True)
    assert pipeline.sample(7) == ((7 * 40503 + 12345) % 65536 - 65536, False)
    first = next(pipeline.stimulus(1))
    assert first == {"samples.x": 12345, "samples.x_valid": True}
