"""Sample models: phantom projections, flat/dark behaviour, powder rings, the Scene."""

from __future__ import annotations

import itertools
import math
import time

import numba
import numpy as np
import pytest

from devices.phantom import (
    Ellipsoid,
    EllipsoidPhantom,
    PhantomSample,
    _exp_parts,
    shepp_logan_3d,
)
from devices.powder import CEO2, SILICON, CubicCrystal, PowderSample, reflections
from devices.samples import (
    EmptyBeam,
    FluxBuffer,
    IncidentBeam,
    Pose,
    Scene,
    detector_coordinates_mm,
)
from geometry import PoniGeometry

SHAPE = (48, 64)
PIXEL = 50e-6  # m -> 2.4 x 3.2 mm field of view
COARSE = (12, 16)  # the same field of view in fewer rays, for the numerical reference
COARSE_PIXEL = 200e-6


def numerical_line_integrals(phantom, pose, shape, pixel, step=4e-4):
    """∫μ dl by sampling μ along each ray (an independent check of the chord formula)."""
    x, y = detector_coordinates_mm(shape, pixel)
    s = np.arange(-1.5, 1.5, step) + step / 2
    c, sn = math.cos(math.radians(pose.angle)), math.sin(math.radians(pose.angle))
    xr = np.broadcast_to(x - pose.x, shape)[..., None]
    yr = np.broadcast_to(y - pose.y, shape)[..., None]
    # lab point (xr, yr, s) -> sample frame: rotate by -angle about the vertical axis
    pts = np.stack(np.broadcast_arrays(c * xr - sn * s, yr, sn * xr + c * s), axis=-1)
    return phantom.mu_at(pts).sum(axis=-1) * step


# -- phantom ---------------------------------------------------------------------------


@pytest.mark.parametrize("pose", [Pose(0.0, 0.0, 0.0), Pose(0.15, -0.1, 37.0),
                                  Pose(-0.2, 0.05, 123.5)])
def test_projection_matches_numerical_line_integrals(pose):
    phantom = shepp_logan_3d(radius=1.0, mu=2.0)
    exact = phantom.line_integrals(pose, COARSE, COARSE_PIXEL)
    numeric = numerical_line_integrals(phantom, pose, COARSE, COARSE_PIXEL)
    assert exact.shape == COARSE and exact.dtype == np.float64
    assert exact.max() > 0.5  # the rays do cross the phantom
    # sampling error: at most one step per boundary crossed, times mu
    assert np.abs(exact - numeric).max() < 0.02
    assert np.abs(exact - numeric).mean() < 2e-3


def test_tilted_ellipsoid_matches_numerical_line_integrals():
    phantom = EllipsoidPhantom([Ellipsoid((0.1, 0.0, -0.2), (0.6, 0.3, 0.2), mu=1.5,
                                          phi=30.0, tilt=40.0)])
    pose = Pose(0.05, 0.0, 71.0)
    exact = phantom.line_integrals(pose, COARSE, COARSE_PIXEL)
    numeric = numerical_line_integrals(phantom, pose, COARSE, COARSE_PIXEL)
    assert exact.max() > 0.3
    assert np.abs(exact - numeric).max() < 0.01


def test_sphere_chord_is_exact():
    sphere = EllipsoidPhantom([Ellipsoid((0.0, 0.0, 0.0), (0.5, 0.5, 0.5), mu=1.0)])
    x = np.array([0.0, 0.3, 0.5, 0.6])
    got = sphere.line_integrals_at(x, np.zeros_like(x), Pose(angle=17.0))
    assert got == pytest.approx(2 * np.sqrt(np.maximum(0.25 - x**2, 0.0)))


def test_rotation_sense_and_axis_position():
    """A small sphere at sample x = +0.5 mm: at 0 deg it projects to +0.5 mm, at 90 deg to
    the rotation axis (it is then upstream), at 180 deg to -0.5 mm; the axis follows X."""
    dot = EllipsoidPhantom([Ellipsoid((0.5, 0.0, 0.0), (0.05, 0.05, 0.05), mu=1.0)])
    x, _ = detector_coordinates_mm((1, 201), 10e-6)

    def centre(pose):
        profile = dot.line_integrals_at(x, np.zeros((1, 1)), pose)[0]
        return float((profile * x[0]).sum() / profile.sum())

    assert centre(Pose(angle=0.0)) == pytest.approx(0.5, abs=1e-6)
    assert centre(Pose(angle=90.0)) == pytest.approx(0.0, abs=1e-6)
    assert centre(Pose(angle=180.0)) == pytest.approx(-0.5, abs=1e-6)
    assert centre(Pose(x=0.2, angle=180.0)) == pytest.approx(-0.3, abs=1e-6)


def test_opposite_projections_are_mirrored():
    phantom = shepp_logan_3d()
    a = phantom.line_integrals(Pose(angle=20.0), SHAPE, PIXEL)
    b = phantom.line_integrals(Pose(angle=200.0), SHAPE, PIXEL)
    assert np.allclose(a, b[:, ::-1], atol=1e-12)


def test_shepp_logan_attenuation_is_non_negative():
    phantom = shepp_logan_3d(radius=1.0, mu=2.0)
    g = np.linspace(-1.0, 1.0, 41)
    mu = phantom.mu_at(np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1))
    assert mu.min() > -1e-12 and mu.max() == pytest.approx(2.0)


def test_sinogram_ground_truth_matches_flat_corrected_projections():
    phantom = shepp_logan_3d()
    sample = PhantomSample(phantom, IncidentBeam(flux_density=1e6, sigma_y=1.0))
    flat = sample.incident.image(SHAPE, PIXEL)
    angles = np.linspace(0.0, 180.0, 7)
    row = 20
    sino = phantom.sinogram(angles, row, SHAPE, PIXEL)
    assert sino.shape == (7, SHAPE[1])
    for k, angle in enumerate(angles):
        projection = sample.flux(Pose(angle=float(angle)), SHAPE, PIXEL)
        assert -np.log(projection[row] / flat[row]) == pytest.approx(sino[k], abs=1e-12)
    with pytest.raises(ValueError, match=r"sinogram row must be in \[0, 48\)"):
        phantom.sinogram(angles, 48, SHAPE, PIXEL)


def test_incident_beam_profile_and_units():
    beam = IncidentBeam(flux_density=1e8, sigma_x=None, sigma_y=0.5)
    image = beam.image((5, 3), (100e-6, 200e-6))
    # centre pixel: 1e8 photons/s/mm² * 0.1 mm * 0.2 mm
    assert image[2, 1] == pytest.approx(2e6)
    assert image[0, 1] == pytest.approx(2e6 * math.exp(-0.5 * (0.2 / 0.5) ** 2))
    assert np.all(image[:, 0] == image[:, 2])
    with pytest.raises(ValueError, match="pixel_size must be in metres"):
        beam.image((5, 3), 55.0)
    with pytest.raises(ValueError, match="shape must be two positive ints"):
        beam.image((5, 0), 55e-6)


# -- scene: flat / dark behaviour ------------------------------------------------------


@pytest.fixture
def scene(sample_x, sample_y, rotation, shutter, beam):
    s = Scene(sample_x=sample_x, sample_y=sample_y, rotation=rotation, shutter=shutter,
              beam=beam, sample=PhantomSample(shepp_logan_3d()))
    shutter.set("open").wait(timeout=1)
    return s


def test_scene_projection_at_the_motor_positions(scene, rotation, beam):
    rotation.set(30.0).wait(timeout=2)
    flux = scene.flux_image(SHAPE, PIXEL)
    expected = scene.sample.flux(Pose(angle=30.0), SHAPE, PIXEL) * beam.beam_factor()
    assert flux.dtype == np.float64 and flux.flags.c_contiguous
    assert flux == pytest.approx(expected, rel=1e-3)  # beam current noise only
    assert flux.min() < 0.5 * flux.max()  # the sample is seen



def test_flux_parts_are_the_samples_image_and_the_beam_factor(scene, shutter, beam):
    """What a detector model multiplies in its own pass: the sample's image (a cached
    one not copied) and the factor; their product is ``flux_image``. Dark: zeros, 0."""
    image, factor = scene.flux_parts(SHAPE, PIXEL)
    assert factor == pytest.approx(beam.beam_factor(), rel=1e-3)  # current noise only
    assert np.array_equal(image, scene.sample.flux(scene.pose(), SHAPE, PIXEL))
    assert image * factor == pytest.approx(scene.flux_image(SHAPE, PIXEL), rel=1e-3)
    scene.sample = EmptyBeam()
    assert scene.flux_parts(SHAPE, PIXEL)[0] is EmptyBeam().incident.image(SHAPE, PIXEL)
    shutter.set("closed").wait(timeout=1)
    image, factor = scene.flux_parts(SHAPE, PIXEL)
    assert factor == 0.0 and image.shape == SHAPE and not image.any()

def test_flat_when_the_sample_is_moved_out(scene, sample_x):
    sample_x.set(20.0).wait(timeout=2)
    flux = scene.flux_image(SHAPE, PIXEL)
    flat = scene.sample.incident.image(SHAPE, PIXEL)
    assert flux / flat == pytest.approx(np.full(SHAPE, scene.beam.beam_factor()), rel=1e-3)


def test_dark_when_the_shutter_is_closed_or_the_beam_is_down(scene, shutter, beam):
    assert scene.flux_image(SHAPE, PIXEL).max() > 0
    shutter.set("closed").wait(timeout=1)
    assert np.count_nonzero(scene.flux_image(SHAPE, PIXEL)) == 0
    shutter.set("open").wait(timeout=1)
    beam.drop_beam()
    assert np.count_nonzero(scene.flux_image(SHAPE, PIXEL)) == 0
    beam.restore_beam()
    assert scene.flux_image(SHAPE, PIXEL).max() > 0


def test_the_scene_at_a_past_time_has_the_shutter_and_beam_of_then(scene, shutter, beam):
    """A frame computed after its trigger (a fly's sensor behind its triggers) sees the
    shutter and the beam as they were at the trigger, as it sees the motors there."""
    open_then = time.time()
    shutter.set("closed").wait(timeout=1)
    closed_then = time.time()
    shutter.set("open").wait(timeout=1)
    beam.drop_beam()
    down_then = time.time()
    beam.restore_beam()
    now = time.time()
    image, factor = scene.flux_parts(SHAPE, PIXEL, t=open_then)
    assert factor == pytest.approx(1.0, abs=0.01) and image.max() > 0
    assert scene.flux_image(SHAPE, PIXEL, t=open_then) == pytest.approx(image * factor)
    for dark in (closed_then, down_then):
        image, factor = scene.flux_parts(SHAPE, PIXEL, t=dark)
        assert factor == 0.0 and not image.any()
        assert scene.beam_factor(dark) == 0.0
    assert scene.beam_factor(now) == pytest.approx(scene.beam_factor(), abs=0.01)
    shutter.set("closed").wait(timeout=1)
    assert scene.beam_factor(now) > 0.99 and scene.beam_factor() == 0.0


def test_flux_scales_with_ring_current(scene, beam):
    before = scene.flux_image(SHAPE, PIXEL).sum() / beam.beam_factor()
    beam.nominal_current.put(800.0)  # the ring runs at half of the new nominal
    after = scene.flux_image(SHAPE, PIXEL).sum()
    assert after == pytest.approx(0.5 * before, rel=1e-3)


def test_flux_at_a_time_during_continuous_rotation(scene, rotation):
    status = rotation.start_continuous(0.0, 90.0, velocity=90.0)
    t0, t1 = rotation.constant_velocity_window()
    mid = scene.flux_image(SHAPE, PIXEL, t=(t0 + t1) / 2)
    expected = scene.sample.flux(Pose(angle=45.0), SHAPE, PIXEL) * scene.beam_factor()
    assert mid == pytest.approx(expected, rel=2e-3)
    status.wait(timeout=2)


def test_empty_beam_is_the_incident_beam(scene):
    scene.sample = EmptyBeam(IncidentBeam(flux_density=2e7))
    flux = scene.flux_image(SHAPE, PIXEL) / scene.beam.beam_factor()
    assert flux == pytest.approx(IncidentBeam(flux_density=2e7).image(SHAPE, PIXEL))


# -- powder -----------------------------------------------------------------------------


def rule_ceo2(h, k, l):  # noqa: E741
    return len({h % 2, k % 2, l % 2}) == 1  # all even or all odd


def rule_si(h, k, l):  # noqa: E741
    if not rule_ceo2(h, k, l):
        return False
    return (h % 2 == 1) or (h + k + l) % 4 == 0


@pytest.mark.parametrize(("crystal", "rule"), [(CEO2, rule_ceo2), (SILICON, rule_si)])
def test_allowed_reflections_follow_the_extinction_rules(crystal, rule):
    rings = reflections(crystal, d_min=0.8)
    n_max = int((crystal.a / 0.8) ** 2)
    expected: dict[int, int] = {}
    for h, k, l in itertools.product(range(-8, 9), repeat=3):  # noqa: E741
        n = h * h + k * k + l * l
        if 0 < n <= n_max and rule(h, k, l):
            expected[n] = expected.get(n, 0) + 1
    got = {round((crystal.a / r.d) ** 2): r.multiplicity for r in rings}
    assert got == expected


def test_first_rings_and_multiplicities():
    ceo2 = reflections(CEO2, 1.3)
    assert [r.families for r in ceo2] == [((1, 1, 1),), ((2, 0, 0),), ((2, 2, 0),),
                                         ((3, 1, 1),), ((2, 2, 2),), ((4, 0, 0),)]
    assert [r.multiplicity for r in ceo2] == [8, 6, 12, 24, 8, 6]
    assert ceo2[0].d == pytest.approx(5.411651 / math.sqrt(3))
    si = reflections(SILICON, 1.0)
    assert ((5, 1, 1), (3, 3, 3)) in [r.families for r in si]
    assert all(r.families != ((2, 0, 0),) and r.families != ((2, 2, 2),) for r in si)
    # fluorite: all odd -> |F|² = (4 f_Ce)², h+k+l = 4n -> (4 (f_Ce + 2 f_O))²
    assert ceo2[1].f_squared < ceo2[0].f_squared < ceo2[2].f_squared


def test_crystal_validation():
    with pytest.raises(ValueError, match="a must be > 0"):
        CubicCrystal("x", "Fm-3m", -1.0, CEO2.basis)
    with pytest.raises(ValueError, match="d_min must be > 0"):
        reflections(CEO2, 0.0)


def powder_geometry(shape=(400, 400)):
    # beam centre off the detector middle so rings span a long 2θ range
    return PoniGeometry(dist=0.08, poni1=0.2 * shape[0] * 75e-6, poni2=0.3 * shape[1] * 75e-6,
                        rot1=0.02, rot2=-0.01, pixel1=75e-6, pixel2=75e-6, shape=shape,
                        wavelength=0.4e-10)


@pytest.mark.parametrize("crystal", [CEO2, SILICON])
def test_ring_positions_follow_braggs_law(crystal):
    geometry = powder_geometry()
    sample = PowderSample(crystal, geometry, ring_width=0.02, background=1.0)
    image = sample.flux(Pose(), geometry.shape, 75e-6)
    assert image.shape == geometry.shape and image.dtype == np.float64
    tth = np.degrees(geometry.tth())
    signal = image / (geometry.solid_angle() * geometry.polarization(0.99))
    width = 0.004
    bins = np.floor(tth / width).astype(int).ravel()
    total = np.bincount(bins, weights=signal.ravel())
    count = np.bincount(bins)
    profile = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    centres = (np.arange(profile.size) + 0.5) * width
    peaks = [i for i in range(1, profile.size - 1)
             if profile[i] > 50 and profile[i] >= profile[i - 1] and profile[i] > profile[i + 1]]
    found = []
    for i in peaks:  # centroid over ±3 bins
        sl = slice(i - 3, i + 4)
        found.append(float((profile[sl] * centres[sl]).sum() / profile[sl].sum()))
    lam = geometry.wavelength * 1e10
    bragg = [math.degrees(2 * math.asin(lam / (2 * r.d))) for r in sample.rings(geometry)]
    bragg = [b for b in bragg if b < tth.max() - 0.1]
    assert len(bragg) >= 5
    for expected in bragg[:5]:
        nearest = min(found, key=lambda f: abs(f - expected))
        assert nearest == pytest.approx(expected, abs=0.003)
    assert len(found) == len(bragg)


def test_powder_sample_out_of_the_beam_leaves_background():
    geometry = powder_geometry((64, 64))
    sample = PowderSample(CEO2, geometry, background=3.0, sample_radius=0.25, beam_width=0.1)
    assert sample.illuminated_fraction(Pose(x=0.0)) == 1.0
    assert sample.illuminated_fraction(Pose(x=0.25)) == pytest.approx(0.5)
    assert sample.illuminated_fraction(Pose(x=0.3)) == pytest.approx(0.0, abs=1e-12)
    out = sample.flux(Pose(x=5.0), (64, 64), 75e-6)
    assert out == pytest.approx(3.0 * geometry.solid_angle())


def test_powder_flux_of_an_unmoved_sample_is_kept_read_only():
    """A scan that does not move the sample gets the same (read-only) image every frame;
    a move gives the image of the new position, and the kept one stays right."""
    geometry = powder_geometry((64, 64))
    sample = PowderSample(CEO2, geometry, background=3.0, sample_radius=0.25, beam_width=0.1)
    full = sample.flux(Pose(x=0.0), (64, 64), 75e-6)
    assert sample.flux(Pose(x=0.0), (64, 64), 75e-6) is full
    assert not full.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        full[0, 0] = 1.0
    half = sample.flux(Pose(x=0.25), (64, 64), 75e-6)
    background = 3.0 * geometry.solid_angle()
    np.testing.assert_allclose(half - background, (full - background) * 0.5, rtol=1e-12)
    np.testing.assert_array_equal(sample.flux(Pose(x=0.0), (64, 64), 75e-6), full)


def test_powder_uses_the_detector_pixel_size():
    geometry = powder_geometry((200, 200))
    sample = PowderSample(CEO2, geometry)
    binned = sample.geometry_for((100, 100), 150e-6)
    assert (binned.shape, binned.pixel1, binned.dist) == ((100, 100), 150e-6, geometry.dist)
    image = sample.flux(Pose(), (100, 100), 150e-6)
    assert image.shape == (100, 100)


def test_powder_in_the_scene(scene, shutter):
    geometry = PoniGeometry(dist=0.08, poni1=0.0192, poni2=0.0192, pixel1=600e-6,
                            pixel2=600e-6, shape=(64, 64), wavelength=0.4e-10)
    scene.sample = PowderSample(CEO2, geometry, ring_width=0.3)
    flux = scene.flux_image((64, 64), 600e-6)
    assert flux.max() > 10 * flux.min() > 0
    shutter.set("closed").wait(timeout=1)
    assert np.count_nonzero(scene.flux_image((64, 64), 600e-6)) == 0


@pytest.mark.parametrize("pose", [Pose(0.0, 0.0, 0.0), Pose(0.31, -0.22, 37.0),
                                  Pose(-0.4, 0.1, 201.5), Pose(3.0, 0.0, 90.0)])
@pytest.mark.parametrize("shape", [(48, 64), (1, 7), (33, 1)])
def test_compiled_projection_equals_array_formulas(pose, shape):
    """The compiled kernel (rows × column intervals) gives the array formulas' numbers,
    including rows and columns at the edge of an ellipsoid and a sample out of view."""
    phantom = shepp_logan_3d(radius=1.0, mu=2.0)
    x, y = detector_coordinates_mm(shape, PIXEL)
    reference = phantom.line_integrals_at(x, y, pose)
    got = phantom.line_integrals(pose, shape, PIXEL)
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-12)
    sample = PhantomSample(phantom)
    expected = sample.incident.image(shape, PIXEL) * np.exp(-reference)
    np.testing.assert_allclose(sample.flux(pose, shape, PIXEL), expected, rtol=1e-13)
    # the fused pass (one row of integrals, then their exponentials) is the integrals'
    # image applied to the beam: the beam itself, to the bit, where no ray met the
    # phantom, and elsewhere within 2 units in the last place of the C library's exp
    image = sample.incident.image(shape, PIXEL)
    libm_exp = np.frompyfunc(math.exp, 1, 1)
    attenuated = image * np.where(got != 0, libm_exp(-got).astype(np.float64), 1.0)
    flux = sample.flux(pose, shape, PIXEL)
    np.testing.assert_array_equal(flux[got == 0], image[got == 0])
    np.testing.assert_array_max_ulp(flux, attenuated, maxulp=2)


def test_flux_drawn_into_reused_buffers_is_the_flux_of_each_pose():
    """Buffers drawn into again and again (the fly scan's scene thread) hold each pose's
    flux to the bit: a rotation, the sample moved across and out of view (nothing of the
    phantom left, nothing of the last pose either), a shape change and another incident
    beam — and, with every buffer in turn, a pose that puts the phantom where the last
    one left nothing drawn."""
    sample = PhantomSample(shepp_logan_3d(radius=1.0, mu=2.0))
    buffers = [FluxBuffer() for _ in range(3)]
    poses = [Pose(angle=a) for a in np.linspace(0.0, 180.0, 7)] + [
        Pose(0.9, 0.0, 10.0), Pose(5.0, 0.0, 10.0), Pose(-0.7, 0.4, 99.0),
        Pose(0.0, -0.9, 150.0), Pose(0.0, 0.0, 45.0)]
    for k, pose in enumerate(poses * 2):
        shape = SHAPE if k < len(poses) else (40, 64)  # the second round: another shape
        image = sample.flux_into(pose, shape, PIXEL, buffers[k % 3])
        assert image is buffers[k % 3].image and not image.flags.writeable
        np.testing.assert_array_equal(image, sample.flux(pose, shape, PIXEL))
    other = PhantomSample(sample.phantom, IncidentBeam(flux_density=3e7, sigma_y=None))
    for buffer in buffers:
        np.testing.assert_array_equal(other.flux_into(Pose(angle=5.0), (40, 64), PIXEL, buffer),
                                      other.flux(Pose(angle=5.0), (40, 64), PIXEL))
    out_of_view = sample.flux_into(Pose(5.0, 0.0, 0.0), SHAPE, PIXEL, buffers[0])
    np.testing.assert_array_equal(out_of_view, sample.incident.image(SHAPE, PIXEL))


def test_a_buffer_written_by_someone_else_is_drawn_whole_again():
    """The buffer's note of what it holds is the sample's: a shape change forgets it, and
    a buffer whose note is not the phantom's (another sample drew into it) is drawn whole."""
    sample = PhantomSample(shepp_logan_3d(radius=1.0, mu=2.0))
    buffer = FluxBuffer()
    sample.flux_into(Pose(angle=30.0), SHAPE, PIXEL, buffer)
    buffer.array(SHAPE)[:] = -1.0  # (held still says: the phantom at 30 deg)
    buffer.held = "another sample's image"
    np.testing.assert_array_equal(sample.flux_into(Pose(angle=60.0), SHAPE, PIXEL, buffer),
                                  sample.flux(Pose(angle=60.0), SHAPE, PIXEL))
    buffer.array((8, 8))
    assert buffer.held is None and buffer.image is not None and buffer.image.shape == (8, 8)


def test_flux_parts_draw_into_a_buffer_only_for_a_sample_that_can(scene, shutter):
    """``Scene.flux_parts(into=…)``: the phantom's image drawn into the buffer (the same
    numbers as without it); a sample without ``flux_into`` (the empty beam) ignores it;
    a closed shutter gives its zeros as before."""
    buffer = FluxBuffer()
    image, factor = scene.flux_parts(SHAPE, PIXEL, into=buffer)
    assert image is buffer.image
    plain, plain_factor = scene.flux_parts(SHAPE, PIXEL)
    np.testing.assert_array_equal(image, plain)
    assert factor == plain_factor > 0
    scene.sample = EmptyBeam()
    image, _ = scene.flux_parts(SHAPE, PIXEL, into=FluxBuffer())
    assert image is EmptyBeam().incident.image(SHAPE, PIXEL)
    shutter.set("closed").wait(5)
    image, factor = scene.flux_parts(SHAPE, PIXEL, into=buffer)
    assert factor == 0.0 and not image.any() and image is not buffer.image


def test_transmit_and_flux_into_call_the_kernel_with_one_type_of_arguments(monkeypatch):
    """The projection kernel is called with arguments of the same types whether the image
    is a new array (``transmit``: the incident beam copied into it, a writeable array) or
    a fly worker's buffer (``flux_into``: the beam's cached, read-only image), so the one
    signature ``smeflow demo --prepare`` builds natively (``sme.native``) serves the fly
    scan too; a read-only incident beam was another type, which took numba's JIT (compiled
    or loaded on a fly's first frame)."""
    from numba._dispatcher import compute_fingerprint

    import devices.phantom as phantom_module

    seen: list[tuple[bytes, ...]] = []
    kernel = phantom_module._transmit_native

    def recording(*args):
        seen.append(tuple(compute_fingerprint(a) for a in args))
        return kernel(*args)

    monkeypatch.setattr(phantom_module, "_transmit_native", recording)
    sample = PhantomSample(shepp_logan_3d(radius=1.0, mu=2.0))
    sample.flux(Pose(angle=10.0), SHAPE, PIXEL)
    sample.flux_into(Pose(angle=20.0), SHAPE, PIXEL, FluxBuffer())
    incident = np.array(sample.incident.image(SHAPE, PIXEL))  # (a writeable one too)
    sample.phantom.transmit_into(Pose(angle=30.0), incident, PIXEL, np.empty(SHAPE))
    assert len(seen) == 3 and len(set(seen)) == 1, seen


def test_transmit_into_refuses_an_unfit_out():
    phantom = shepp_logan_3d()
    incident = IncidentBeam().image(SHAPE, PIXEL)
    for out in (np.empty((4, 4)), np.empty(SHAPE, np.float32), np.empty(SHAPE).T,
                incident):
        with pytest.raises(ValueError, match="transmit_into: out must be a writeable "
                                             r"C-contiguous float64 array of shape \(48, 64\)"):
            phantom.transmit_into(Pose(), incident, PIXEL, out)


def test_the_rows_an_ellipsoid_cannot_cover_are_skipped_without_changing_a_pixel():
    """``_transmit`` asks each ellipsoid only on the rows within its heights (the phantom's
    ``_heights``, the same at every angle); asking every row gives the very same image and
    box, for tilted, off-centre ellipsoids at any pose, and the heights are those the
    ellipsoids span: a row outside them finds no chord, one just inside does."""
    from devices.phantom import _ray_axes, _transmit

    rng = np.random.default_rng(7)
    phantom = EllipsoidPhantom([
        Ellipsoid(center=tuple(rng.normal(0, 0.5, 3)), semi_axes=tuple(rng.uniform(0.02, 0.6, 3)),
                  mu=float(rng.normal(0, 1)), phi=float(rng.uniform(0, 360)),
                  tilt=float(rng.uniform(-80, 80))) for _ in range(8)])
    incident = rng.uniform(1e4, 2e4, (300, 256))
    xs, ys = _ray_axes(incident.shape, (8e-6, 8e-6))
    everywhere = np.array([[-np.inf, np.inf]] * 8)
    for angle in np.linspace(0, 360, 13):
        pose = Pose(float(rng.normal(0, 0.3)), float(rng.normal(0, 0.3)), float(angle))
        coef = phantom.ray_coefficients(pose)
        skipped, asked = np.array(incident), np.array(incident)
        box = _transmit(xs - pose.x, ys - pose.y, coef, phantom._heights, incident, skipped)
        assert box == _transmit(xs - pose.x, ys - pose.y, coef, everywhere, incident, asked)
        assert np.array_equal(skipped.view(np.uint64), asked.view(np.uint64))
    for k, (low, high) in enumerate(phantom._heights):
        one = EllipsoidPhantom([phantom.ellipsoids[k]])
        row = np.array([0.0])
        for y, meets in ((low - 1e-3, False), (low + 1e-3, True), (high - 1e-3, True),
                         (high + 1e-3, False)):
            image = np.ones((1, 2001))
            cols = np.linspace(-3.0, 3.0, 2001)
            _transmit(cols, row + y, one.ray_coefficients(Pose()), everywhere[:1],
                      np.ones((1, 2001)), image)
            assert (image != 1.0).any() == meets, (k, y)


@numba.njit(cache=False)
def _exps_of_parts(x: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        p, bits = _exp_parts(x[i])
        out[i] = p * np.array([bits]).view(np.float64)[0]
    return out


def test_the_projections_exp_is_the_c_librarys_within_two_ulp():
    """The projection's branch-free ``e^x`` (``_exp_parts``) against the C library's
    ``exp``: within 2 units in the last place over its whole range (uniform in x, and
    the small attenuations of a thin sample), exactly 1 at 0 and at -0, and at the
    powers of 2 it builds (x = k ln 2) and half-way between them."""
    rng = np.random.default_rng(3)
    k = np.arange(-1000, 1000)
    x = np.concatenate([rng.uniform(-708.0, 709.0, 500_000), -rng.exponential(0.3, 500_000),
                        k * math.log(2.0), (k + 0.5) * math.log(2.0),
                        np.array([0.0, -0.0, 1e-300, -1e-300, 1e-17, -708.0, 709.0])])
    got = _exps_of_parts(x)
    want = np.array([math.exp(v) for v in x])
    np.testing.assert_array_max_ulp(got, want, maxulp=2)
    assert got[-7] == got[-6] == 1.0
