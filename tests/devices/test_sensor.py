"""The sensor ASIC model (counting statistics, threshold, defects) and its link words."""

from __future__ import annotations

import math

import numpy as np
import pytest

import devices.counting as counting
from devices.samples import frozen_image
from devices.sensor import LinkStream, SensorModel, counting_efficiency, link_stream
from fpga.designs.layout import PILATUS_6M, PILATUS_SENSOR, DetectorLayout, SensorLayer
from fpga.designs.params import PIXEL_MAX, ChainParams
from fpga.designs.reference import default_timestamps

P64 = ChainParams(height=64, width=64, lanes=16)
FLAT = np.full((64, 64), 1000.0)


# -- counting -------------------------------------------------------------------------------

def test_the_sensor_layer_is_the_layouts() -> None:
    """The material and thickness the frame files record: the layout's, the Pilatus one
    without a layout, or the one given; nothing of the counts depends on it."""
    assert SensorModel(ChainParams(8, 32, 16)).layer == PILATUS_SENSOR
    layout = DetectorLayout(PILATUS_6M.module, grid=(1, 2), gap=(0, 7),
                            sensor=SensorLayer("CdTe", 1e-3))
    assert SensorModel(layout).layer == SensorLayer("CdTe", 1e-3)
    thick = SensorLayer("Si", 1000e-6)
    assert SensorModel(layout, layer=thick).layer == thick
    with pytest.raises(ValueError, match="layer must be a SensorLayer"):
        SensorModel(layout, layer="Si")  # type: ignore[arg-type]


@pytest.mark.parametrize("mean", [12.0, 100.0, 2500.0])
def test_large_means_follow_poisson_distribution(mean: float) -> None:
    """Means >= NORMAL_MIN_MEAN are drawn from the Cornish–Fisher expansion: its moments
    and distribution function must be Poisson's (393k draws: the CDF's sampling error is
    about 0.0008, the variance's 0.2 %, the skewness's 0.004)."""
    from scipy import stats

    from devices.sensor import NORMAL_MIN_MEAN

    assert mean >= NORMAL_MIN_MEAN
    p = ChainParams(height=256, width=256, lanes=16)
    s = SensorModel(p, seed=11)
    flux = np.full((256, 256), mean / float(s.efficiency[0, 0]))
    c = np.concatenate([s.expose(flux, 1.0).ravel() for _ in range(6)]).astype(np.float64)
    assert abs(c.mean() - mean) < 4 * math.sqrt(mean / c.size)
    assert abs(c.var() / mean - 1) < 0.01
    # Poisson skewness 1/√λ; the sample skewness's standard error is √(6/n)
    assert abs(stats.skew(c) - 1 / math.sqrt(mean)) < 4 * math.sqrt(6 / c.size)
    values = np.arange(int(mean - 5 * math.sqrt(mean)), int(mean + 5 * math.sqrt(mean)))
    empirical = np.searchsorted(np.sort(c), values, side="right") / c.size
    assert np.abs(empirical - stats.poisson(mean).cdf(values)).max() < 0.003
    assert np.array_equal(c, np.round(c))


def test_mixed_means_draw_each_pixel_from_its_own_law() -> None:
    """Pixels below and above NORMAL_MIN_MEAN in one frame: both paths fill their pixels."""
    s = SensorModel(P64, seed=5)
    flux = np.where(np.arange(64)[None, :] < 32, 3.0, 5000.0) * np.ones((64, 1))
    frames = np.stack([s.expose(flux / float(s.efficiency[0, 0]), 1.0) for _ in range(40)])
    low, high = frames[:, :, :32].astype(float), frames[:, :, 32:].astype(float)
    assert abs(low.mean() - 3) < 0.1 and abs(low.var() / 3 - 1) < 0.05
    assert abs(high.mean() - 5000) < 1 and abs(high.var() / 5000 - 1) < 0.05
    assert np.mean(low == 0) == pytest.approx(math.exp(-3), abs=0.01)  # Poisson's P(0)


def test_flat_field_is_poisson() -> None:
    s = SensorModel(P64, photon_energy=12.0, threshold=3.0, energy_sigma=0.5, seed=1)
    counts = s.expose(FLAT, 0.1)           # mean 100 (efficiency ≈ 1 far below E)
    assert counts.dtype == np.uint32 and counts.shape == (64, 64)
    assert s.efficiency.min() > 1 - 1e-9
    m, v = counts.mean(), counts.var(ddof=1)
    # 4096 pixels: standard error of the mean ≈ 0.16, of the variance ≈ 2.2
    assert abs(m - 100) < 1.0
    assert abs(v - 100) < 10.0


def test_expected_counts_and_fano_at_low_flux() -> None:
    s = SensorModel(P64, seed=2)
    lam = s.expected_counts(FLAT * 0.002, 1.0)          # mean 2 counts
    np.testing.assert_allclose(lam, 2.0 * s.efficiency)
    c = s.expose(FLAT * 0.002, 1.0)
    assert abs(c.mean() - 2.0) < 0.1
    assert abs(c.var(ddof=1) / c.mean() - 1.0) < 0.1
    assert abs((c == 0).mean() - math.exp(-2.0)) < 0.03


def test_efficiency_follows_the_threshold() -> None:
    e, sigma = 12.0, 0.5
    assert counting_efficiency(e, e, sigma) == pytest.approx(0.5)
    assert counting_efficiency(e, e + sigma, sigma) == pytest.approx(0.5 * math.erfc(1 / math.sqrt(2)))
    assert counting_efficiency(e, e - sigma, sigma) == pytest.approx(0.8413447, abs=1e-6)
    ts = np.linspace(0, 20, 41)
    eff = counting_efficiency(e, ts, sigma)
    assert np.all(np.diff(eff) <= 0) and eff[0] == pytest.approx(1) and eff[-1] < 1e-12
    assert counting_efficiency(e, ts, 0.0).tolist() == [1.0 if t < e else 0.5 if t == e else 0.0
                                                         for t in ts]
    s = SensorModel(P64, photon_energy=e, threshold=e, energy_sigma=sigma, seed=3)
    c = s.expose(FLAT, 1.0)                 # mean 500
    assert abs(c.mean() - 500) < 3
    s.threshold = e + sigma
    assert abs(s.expose(FLAT, 1.0).mean() - 1000 * 0.158655) < 3
    s.threshold = 30.0
    assert s.expose(FLAT, 1.0).max() == 0
    s.photon_energy = 60.0
    assert abs(s.expose(FLAT, 1.0).mean() - 1000) < 3


def test_threshold_dispersion_spreads_the_efficiency() -> None:
    s = SensorModel(P64, photon_energy=10.0, threshold=10.0, energy_sigma=0.3,
                    threshold_dispersion=0.2, seed=4)
    eff = s.efficiency
    assert eff.std() > 0.1
    assert abs(eff.mean() - 0.5) < 0.02
    # the per-pixel offsets are fixed: a pixel with a high efficiency keeps counting more
    hi, lo = eff > 0.8, eff < 0.2
    c = s.expose(FLAT, 1.0)
    assert c[hi].mean() > 4 * c[lo].mean()


def test_counter_saturates_without_overflow() -> None:
    s = SensorModel(P64, seed=5)
    c = s.expose(np.full((64, 64), 1e30), 10.0)
    assert (c == PIXEL_MAX).all()
    flux = np.full((64, 64), float(PIXEL_MAX))
    flux[0, 0] = 0
    c = s.expose(flux, 1.5)
    assert c.max() == PIXEL_MAX and c[0, 0] == 0


def test_dead_and_hot_pixels() -> None:
    s = SensorModel(P64, dead_pixels=10, hot_pixels=7, hot_rate=1e6, seed=6)
    assert s.dead_mask.sum() == 10 and s.hot_mask.sum() == 7
    assert not (s.dead_mask & s.hot_mask).any()
    c = s.expose(FLAT, 0.1)
    assert (c[s.dead_mask] == 0).all()
    assert (c[s.hot_mask] > 90_000).all()             # 1e6/s · 0.1 s + photons
    dark = s.expose(np.zeros((64, 64)), 0.001)
    assert (dark[~s.hot_mask] == 0).all()
    assert abs(dark[s.hot_mask].mean() - 1000) < 100
    long = s.expose(np.zeros((64, 64)), 5.0)
    assert (long[s.hot_mask] == PIXEL_MAX).all()      # hot pixels saturate long exposures
    same = SensorModel(P64, dead_pixels=10, hot_pixels=7, seed=6)
    other = SensorModel(P64, dead_pixels=10, hot_pixels=7, seed=7)
    np.testing.assert_array_equal(same.dead_mask, s.dead_mask)
    np.testing.assert_array_equal(same.hot_mask, s.hot_mask)
    assert not np.array_equal(other.dead_mask, s.dead_mask)
    # positions do not depend on the threshold dispersion
    disp = SensorModel(P64, dead_pixels=10, hot_pixels=7, seed=6, threshold_dispersion=0.1)
    np.testing.assert_array_equal(disp.hot_mask, s.hot_mask)


def test_same_seed_same_frames() -> None:
    a = SensorModel(P64, seed=8).frames(FLAT, 0.01, 3)
    b = SensorModel(P64, seed=8).frames(FLAT, 0.01, 3)
    c = SensorModel(P64, seed=9).frames(FLAT, 0.01, 3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], c[0])


def test_a_frozen_flux_image_draws_the_counts_of_a_fresh_one() -> None:
    """A flux image nothing can change (a sample's cached image) has its draws' first
    terms kept from its second exposure on: frame for frame the counts of the same image
    given as a writeable array (computed every time), across changes of exposure, scale
    and threshold and of the hot pixels' rate, hot and dead pixels included."""
    rng = np.random.default_rng(3)
    image = np.where(rng.random((64, 64)) < 0.05, rng.uniform(2e3, 5e4, (64, 64)),
                     rng.uniform(0.0, 200.0, (64, 64)))  # means below and above 10 at 0.01 s
    frozen = frozen_image(image)
    kwargs = {"dead_pixels": 9, "hot_pixels": 5, "hot_rate": 2e3, "seed": 12}
    kept, fresh = SensorModel(P64, **kwargs), SensorModel(P64, **kwargs)
    steps = [(0.01, 1.0)] * 4 + [(0.02, 1.0)] * 3 + [(0.02, 0.5)] * 3 + ["threshold"] \
        + [(0.02, 0.5)] * 3 + ["hot_rate"] + [(0.02, 0.5)] * 3
    for step in steps:
        if step == "threshold":
            kept.threshold = fresh.threshold = 11.0
            continue
        if step == "hot_rate":  # a public attribute in every hot pixel's mean
            kept.hot_rate = fresh.hot_rate = 200.0  # means 40 -> 4: the small-mean draws
            continue
        t, scale = step
        a = kept.expose(frozen, t, scale=scale)
        np.testing.assert_array_equal(a, fresh.expose(image.copy(), t, scale=scale))
    assert kept._kept is not None and kept._kept.terms is not None  # (they were kept)
    assert fresh._kept is None


def test_a_drifting_beam_scale_keeps_the_terms_of_each_scale(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The beam's scale changes every few frames (a ring current's noise): the first
    exposure of a new image keeps nothing (a one-off image costs nothing more), every
    later exposure with new means keeps its terms and the next ones with the same means
    read them back — frame for frame the counts of a writeable copy."""
    passes: list[tuple[bool, bool]] = []  # (terms kept, terms read back) of each pass

    def spy(*args: object, **kwargs: object) -> int:
        passes.append((kwargs["kept"] is not None, bool(kwargs["kept_ready"])))
        return counting.draw_counts(*args, **kwargs)  # type: ignore[arg-type]

    rng = np.random.default_rng(5)
    image = rng.uniform(0.0, 300.0, (64, 64))  # means below 3 at 0.01 s
    frozen = frozen_image(image)
    other = frozen_image(frozen[::-1])
    kept, fresh = SensorModel(P64, hot_pixels=3, seed=2), SensorModel(P64, hot_pixels=3, seed=2)
    scales = [1.0, 1.0, 1.0, 1.0001, 1.0001, 1.0001, 0.9998, 0.9998]
    with monkeypatch.context() as m:
        m.setattr("devices.sensor.draw_counts", spy)
        for flux, scale in [(frozen, s) for s in scales] + [(other, 1.0), (frozen, 1.0)]:
            a = kept.expose(flux, 0.01, scale=scale)
            np.testing.assert_array_equal(a, fresh.expose(np.array(flux), 0.01, scale=scale))
    assert passes[::2] == [(False, False), (True, False), (True, True), (True, False),
                           (True, True), (True, True), (True, False), (True, True),
                           (False, False), (False, False)]
    assert passes[1::2] == [(False, False)] * 10  # (the writeable copies keep nothing)


def test_a_read_only_view_of_a_writeable_flux_is_not_taken_as_unchanging() -> None:
    base = np.full((64, 64), 50.0)
    view = base.view()
    view.flags.writeable = False
    s, fresh = SensorModel(P64, seed=4), SensorModel(P64, seed=4)
    for value in (50.0, 50.0, 50.0, 0.0, 400.0):
        base[:] = value
        np.testing.assert_array_equal(s.expose(view, 0.01), fresh.expose(base.copy(), 0.01))
    assert s._kept is None


def test_a_read_only_image_that_owns_its_memory_is_not_taken_as_unchanging() -> None:
    """numpy lets the owner of an array's memory make it writeable again: a flat field
    made read-only, exposed, changed in place and made read-only again is drawn from its
    new means (Poisson 5, not the kept terms of Poisson 1), frame for frame the counts of
    a writeable copy; a ``frozen_image`` cannot be changed so."""
    kw = {"hot_pixels": 40, "hot_rate": 100.0, "dead_pixels": 10, "seed": 3}
    s, fresh = SensorModel(P64, **kw), SensorModel(P64, **kw)  # type: ignore[arg-type]
    image = np.full((64, 64), 100.0)
    owner = image.copy()
    owner.flags.writeable = False
    for _ in range(3):
        np.testing.assert_array_equal(s.expose(owner, 0.01), fresh.expose(image, 0.01))
    owner.flags.writeable = True
    owner *= 5.0
    owner.flags.writeable = False
    a = s.expose(owner, 0.01)
    np.testing.assert_array_equal(a, fresh.expose(image * 5.0, 0.01))
    live = ~(s.hot_mask | s.dead_mask)
    assert abs(a[live].mean() - 5.0) < 0.2
    assert s._kept is None
    frozen = frozen_image(image)
    assert not frozen.flags.writeable and frozen.base is not None
    for array in (frozen, frozen.view(), frozen[::2]):
        with pytest.raises(ValueError, match="cannot set WRITEABLE flag"):
            array.flags.writeable = True


@pytest.mark.parametrize("bad", [float("nan"), -1e5, float("inf"), "1"])
def test_a_bad_hot_rate_is_refused_after_construction_too(bad: object) -> None:
    s = SensorModel(P64, hot_pixels=40, hot_rate=100.0, seed=3)
    with pytest.raises(ValueError, match=r"hot_rate must be (finite and >= 0|a number)"):
        s.hot_rate = bad  # type: ignore[assignment]
    assert s.hot_rate == 100.0
    s.hot_rate = 0.0
    assert not s.expose(np.zeros((64, 64)), 0.01).any()


@pytest.mark.parametrize(("flux", "exposure", "match"), [
    (np.ones((64, 32)), 1.0, r"flux must have the sensor shape \(64, 64\), got \(64, 32\)"),
    (np.where(np.eye(64) > 0, -1.0, 1.0)[::-1], 1.0, r"flux must be >= 0, got -1.0 at pixel \(y=0, x=63\)"),
    (np.full((64, 64), np.nan), 1.0, "flux must be finite"),
    (np.full((64, 64), "a"), 1.0, "flux must be a real array"),
    (np.zeros((64, 64), "m8[s]"), 1.0, "flux must be a real array, got dtype timedelta64"),
    (FLAT, 0.0, "exposure must be finite and > 0, not 0.0"),
    (FLAT, -1.0, "exposure must be finite and > 0"),
    (FLAT, float("inf"), "exposure must be finite"),
])
def test_expose_errors(flux: np.ndarray, exposure: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SensorModel(P64).expose(flux, exposure)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"photon_energy": 0.0}, "photon_energy must be finite and > 0"),
    ({"threshold": -1.0}, "threshold must be finite and >= 0"),
    ({"energy_sigma": float("nan")}, "energy_sigma must be finite"),
    ({"dead_pixels": 64 * 64 + 1}, r"dead_pixels must be an int in 0 … 4096"),
    ({"dead_pixels": 4000, "hot_pixels": 100}, r"hot_pixels must be an int in 0 … 96"),
    ({"hot_rate": "x"}, "hot_rate must be a number"),
])
def test_model_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SensorModel(P64, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="params must be a ChainParams"):
        SensorModel((64, 64))  # type: ignore[arg-type]


def test_setting_a_bad_threshold_is_refused() -> None:
    s = SensorModel(P64)
    with pytest.raises(ValueError, match="threshold must be finite and >= 0, not -2"):
        s.threshold = -2
    assert s.threshold == 6.0


# -- link ----------------------------------------------------------------------------------

P = ChainParams(height=4, width=64, lanes=16)      # 4 words per line, 16 per frame


def numbered_frames(n: int) -> list[np.ndarray]:
    return [np.arange(4 * 64).reshape(4, 64) + 1000 * i for i in range(n)]


def test_link_words_flags_and_gaps() -> None:
    frames = numbered_frames(3)
    ls = link_stream(frames, P, lead_idle=5, tail_idle=2)
    wpf, gap = P.words_per_frame, P.frame_gap
    assert ls.ticks == 5 + 3 * (wpf + gap) + 2
    assert ls.sof_ticks.tolist() == [5, 5 + wpf + gap, 5 + 2 * (wpf + gap)]
    assert ls.sof_ticks.tolist() == default_timestamps(3, P, lead_idle=5)
    assert (ls.last_ticks - ls.sof_ticks).tolist() == [wpf - 1] * 3
    assert np.flatnonzero(ls.sof).tolist() == ls.sof_ticks.tolist()
    v = np.flatnonzero(ls.valid)
    assert len(v) == 3 * wpf
    # every line's last word carries eol
    assert np.flatnonzero(ls.eol).tolist() == v[3::4].tolist()
    # lane j of word c of line y is pixel (y, c·K + j)
    words = ls.data[v]
    assert words[0].tolist() == list(range(16))
    assert words[5].tolist() == list(range(80, 96))           # line 1, word 1
    np.testing.assert_array_equal(words.reshape(3, 4, 64), np.stack(frames))
    # idle ticks carry nothing, and the gap after each frame is exactly frame_gap
    idle = ~ls.valid
    assert not ls.sof[idle].any() and not ls.eol[idle].any() and not ls.data[idle].any()
    assert (ls.sof_ticks[1:] - ls.last_ticks[:-1] - 1).tolist() == [gap, gap]
    assert ls.ticks - 1 - ls.last_ticks[-1] == gap + 2
    assert ls.data.dtype == np.uint32 and ls.valid.dtype == bool


def test_link_random_idle_ticks_inside_frames() -> None:
    frames = numbered_frames(4)
    ls = link_stream(frames, P, idle_prob=0.4, seed=11)
    v = np.flatnonzero(ls.valid)
    np.testing.assert_array_equal(ls.data[v].reshape(4, 4, 64), np.stack(frames))
    inside = (ls.last_ticks - ls.sof_ticks + 1 - P.words_per_frame)
    assert inside.sum() > 10                              # gaps inside frames exist
    assert (ls.sof_ticks[1:] - ls.last_ticks[:-1] - 1 == P.frame_gap).all()
    assert np.flatnonzero(ls.sof).tolist() == ls.sof_ticks.tolist()
    assert ls.eol.sum() == 16 and (ls.valid[ls.eol]).all()
    again = link_stream(frames, P, idle_prob=0.4, seed=11)
    np.testing.assert_array_equal(again.valid, ls.valid)
    assert not np.array_equal(link_stream(frames, P, idle_prob=0.4, seed=12).valid, ls.valid)
    gen = link_stream(frames, P, idle_prob=0.4, seed=np.random.default_rng(11))
    np.testing.assert_array_equal(gen.valid, ls.valid)


def test_link_stimulus_for_run_batch() -> None:
    ls = link_stream(np.stack(numbered_frames(2)), P)
    st = ls.stimulus()
    assert set(st) == {"link.valid", "link.sof", "link.eol", "link.data"}
    assert all(len(a) == ls.ticks for a in st.values())
    assert st["link.data"].shape == (ls.ticks, 16)
    part = ls.stimulus("sensor", start=3, stop=10)
    assert set(part) == {"sensor.valid", "sensor.sof", "sensor.eol", "sensor.data"}
    np.testing.assert_array_equal(part["sensor.data"], ls.data[3:10])
    assert isinstance(ls, LinkStream)


def test_link_from_the_sensor_model() -> None:
    s = SensorModel(P, hot_pixels=2, seed=1)
    frames = s.frames(np.full((4, 64), 1e7), 1.0, 2)
    ls = link_stream(frames, P)
    assert ls.data.max() == PIXEL_MAX
    assert len(link_stream([], P, lead_idle=3).valid) == 3


@pytest.mark.parametrize(("frames", "kwargs", "match"), [
    ([np.zeros((4, 32), int)], {}, r"frames\[0\] has shape \(4, 32\), the sensor is \(4, 64\)"),
    ([np.zeros((4, 64), int), np.zeros((4, 64))], {}, r"frames\[1\] must hold integer counts"),
    ([np.ones((4, 64), "m8[s]")], {}, r"frames\[0\] must hold integer counts, got dtype "
                                      r"timedelta64"),
    ([np.ones((4, 64), bool)], {}, r"frames\[0\] must hold integer counts, got dtype bool"),
    ([np.full((4, 64), PIXEL_MAX + 1)], {}, r"frames\[0\] counts must be in 0 … 1048575"),
    ([np.full((4, 64), -1)], {}, r"frames\[0\] counts must be in 0 … 1048575, got -1 … -1"),
    (np.zeros((4, 64), int), {}, r"frames must be a sequence of \(4, 64\) arrays"),
    ([np.zeros((4, 64), int)], {"idle_prob": 1.0}, r"idle_prob must be a number in \[0, 1\)"),
    ([np.zeros((4, 64), int)], {"lead_idle": -1}, "lead_idle must be an int"),
    ([np.zeros((4, 64), int)], {"tail_idle": 1.5}, "tail_idle must be an int"),
])
def test_link_errors(frames: list[np.ndarray], kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        link_stream(frames, P, **kwargs)  # type: ignore[arg-type]


def test_each_exposure_draws_fresh_noise_whichever_thread_asks() -> None:
    """Exposures taken from several threads at once are the model's exposures 0, 1, …
    (each its own noise; none reused), and successive frames are uncorrelated."""
    from concurrent.futures import ThreadPoolExecutor

    flux = FLAT * 0.005                     # mean 5 counts
    seq = SensorModel(P64, seed=3).frames(flux, 1.0, 8)
    threaded = SensorModel(P64, seed=3)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: threaded.expose(flux, 1.0), range(8)))
    assert sorted(f.tobytes() for f in got) == sorted(f.tobytes() for f in seq)
    assert len({f.tobytes() for f in seq}) == 8
    a = np.stack(seq).reshape(8, -1).astype(float)
    corr = np.corrcoef(a)[np.triu_indices(8, 1)]
    assert np.abs(corr).max() < 5 / math.sqrt(a.shape[1])


def test_scale_multiplies_the_flux_not_the_hot_pixels() -> None:
    """``scale`` (the beam factor) scales the photons only: hot pixels count at their
    rate whatever the beam, and scale 0 leaves them alone on a dark frame."""
    s = SensorModel(P64, hot_pixels=5, hot_rate=1e4, seed=12)
    photons = ~s.hot_mask
    half = np.stack([s.expose(FLAT, 0.1, scale=0.5) for _ in range(20)]).astype(float)
    assert abs(half[:, photons].mean() - 50.0 * s.efficiency[0, 0]) < 0.3
    assert abs(half[:, s.hot_mask].mean() - (1e4 * 0.1 + 50.0 * s.efficiency[0, 0])) < 15
    dark = s.expose(FLAT, 0.1, scale=0.0)
    assert not dark[photons].any() and (dark[s.hot_mask] > 900).all()
    with pytest.raises(ValueError, match="scale must be finite and >= 0, not -1"):
        s.expose(FLAT, 0.1, scale=-1)


def test_frame_link_is_the_link_of_the_counts_drawn_into_it() -> None:
    """Counts drawn into ``frame_link``'s view make the stream ``link_stream`` makes of
    them (flags, idle ticks, words), as the model's own uint32 draw; a fitting stream
    is filled again in place, one that does not fit is not touched."""
    from devices.sensor import frame_link

    flux = FLAT * 0.01
    made = frame_link(P64)
    assert made is not None
    link, into = made
    counts = SensorModel(P64, hot_pixels=3, seed=4).expose(flux, 1.0, out=into)
    assert counts is into and counts.dtype == np.uint32
    own = SensorModel(P64, hot_pixels=3, seed=4).expose(flux, 1.0)
    np.testing.assert_array_equal(counts, own)
    want = link_stream([own], P64)
    for name in ("valid", "sof", "eol", "data", "sof_ticks", "last_ticks"):
        np.testing.assert_array_equal(getattr(link, name), getattr(want, name), err_msg=name)
    again = frame_link(P64, reuse=link)
    assert again is not None and again[0] is link
    np.testing.assert_array_equal(again[1], own)  # the same words, to be overwritten
    two = link_stream([own, own], P64)
    other = frame_link(P64, reuse=two)
    assert other is not None and other[0] is not two and not other[1].any()
    assert frame_link(ChainParams(4, 60, 16, binning=False)) is None  # padded: not one block


def test_link_stream_refills_a_stream_of_the_same_ticks() -> None:
    frames = numbered_frames(2)
    first = link_stream(frames, P, lead_idle=3, tail_idle=1)
    swapped = [frames[1], frames[0]]
    again = link_stream(swapped, P, lead_idle=3, tail_idle=1, reuse=first)
    assert again is first
    fresh = link_stream(swapped, P, lead_idle=3, tail_idle=1)
    for name in ("valid", "sof", "eol", "data", "sof_ticks", "last_ticks"):
        np.testing.assert_array_equal(getattr(again, name), getattr(fresh, name))
    # other idle ticks, another number of frames or random idle ticks: a new stream
    for kwargs in ({"lead_idle": 4, "tail_idle": 1}, {"idle_prob": 0.3}):
        new = link_stream(swapped, P, reuse=first, **kwargs)  # type: ignore[arg-type]
        assert new is not first
    assert link_stream(frames[:1], P, lead_idle=3, tail_idle=1, reuse=first) is not first
    np.testing.assert_array_equal(first.data, fresh.data)  # untouched by the refusals


@pytest.mark.parametrize("out, match", [
    (np.empty((64, 64), np.int32), "int32 of shape"),
    (np.empty((64, 32), np.uint32), r"uint32 of shape \(64, 32\)"),
    (np.empty((64, 128), np.int64)[:, ::2], "C-contiguous"),
    ([[0] * 64] * 64, "got \\[\\["),
])
def test_expose_refuses_a_wrong_out(out: object, match: str) -> None:
    with pytest.raises(ValueError, match=f"out must be a writeable C-contiguous.*{match}"
                       if match != "C-contiguous" else "writeable C-contiguous"):
        SensorModel(P64).expose(FLAT, 1.0, out=out)  # type: ignore[arg-type]
