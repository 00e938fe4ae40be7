"""Path-loss models: published formulas re-derived here with scalar math, the
registry contract (broadcasting, pickling, determinism) and clamping/validation."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radio.pathloss import MODELS, FreeSpace, LogDistance, PathLossModel, RMa, UMa, UMi

C_M_S = 299_792_458.0
FORMULA_TOL_DB = 1e-9  # same formula, independent code: only rounding differences
HAND_TOL_DB = 0.01  # values worked out by hand to two decimals


# ---------------------------------------------------------------- reference formulas
# Independent scalar re-derivations of TR 38.901 Table 7.4.1-1 (fc in GHz).
def ref_uma(d2d: float, h_ut: float, fc_hz: float, h_bs: float, los: bool) -> float:
    fc = fc_hz / 1e9
    d3d = math.sqrt(d2d**2 + (h_bs - h_ut) ** 2)
    dbp = 4 * (h_bs - 1) * (h_ut - 1) * fc_hz / C_M_S
    if d2d <= dbp:
        pl_los = 28.0 + 22 * math.log10(d3d) + 20 * math.log10(fc)
    else:
        pl_los = 28.0 + 40 * math.log10(d3d) + 20 * math.log10(fc) - 9 * math.log10(dbp**2 + (h_bs - h_ut) ** 2)
    if los:
        return pl_los
    return max(pl_los, 13.54 + 39.08 * math.log10(d3d) + 20 * math.log10(fc) - 0.6 * (h_ut - 1.5))


def ref_umi(d2d: float, h_ut: float, fc_hz: float, h_bs: float, los: bool) -> float:
    fc = fc_hz / 1e9
    d3d = math.sqrt(d2d**2 + (h_bs - h_ut) ** 2)
    dbp = 4 * (h_bs - 1) * (h_ut - 1) * fc_hz / C_M_S
    if d2d <= dbp:
        pl_los = 32.4 + 21 * math.log10(d3d) + 20 * math.log10(fc)
    else:
        pl_los = 32.4 + 40 * math.log10(d3d) + 20 * math.log10(fc) - 9.5 * math.log10(dbp**2 + (h_bs - h_ut) ** 2)
    if los:
        return pl_los
    return max(pl_los, 35.3 * math.log10(d3d) + 22.4 + 21.3 * math.log10(fc) - 0.3 * (h_ut - 1.5))


def ref_rma(d2d: float, h_ut: float, fc_hz: float, h_bs: float, los: bool, h: float = 5.0, w: float = 20.0) -> float:
    fc = fc_hz / 1e9
    d3d = math.sqrt(d2d**2 + (h_bs - h_ut) ** 2)
    dbp = 2 * math.pi * h_bs * h_ut * fc_hz / C_M_S

    def pl1(d: float) -> float:
        return (
            20 * math.log10(40 * math.pi * d * fc / 3)
            + min(0.03 * h**1.72, 10) * math.log10(d)
            - min(0.044 * h**1.72, 14.77)
            + 0.002 * math.log10(h) * d
        )

    pl_los = pl1(d3d) if d2d <= dbp else pl1(dbp) + 40 * math.log10(d3d / dbp)
    if los:
        return pl_los
    nlos = (
        161.04 - 7.1 * math.log10(w) + 7.5 * math.log10(h)
        - (24.37 - 3.7 * (h / h_bs) ** 2) * math.log10(h_bs)
        + (43.42 - 3.1 * math.log10(h_bs)) * (math.log10(d3d) - 3)
        + 20 * math.log10(fc)
        - (3.2 * math.log10(11.75 * h_ut) ** 2 - 4.97)
    )
    return max(pl_los, nlos)


# (model, reference, h_bs, breakpoint formula) at 3.5 GHz, h_UT = 1.5 m
CASES = {
    "uma": (UMa(3.5e9, 25.0), ref_uma, 25.0, lambda h_ut: 4 * 24 * (h_ut - 1) * 3.5e9 / C_M_S),
    "umi": (UMi(3.5e9, 10.0), ref_umi, 10.0, lambda h_ut: 4 * 9 * (h_ut - 1) * 3.5e9 / C_M_S),
    "rma": (RMa(3.5e9, 35.0), ref_rma, 35.0, lambda h_ut: 2 * math.pi * 35 * h_ut * 3.5e9 / C_M_S),
}


# ---------------------------------------------------------------- free space / log-distance
def test_friis_hand_values_at_3p5_ghz() -> None:
    m = FreeSpace(3.5e9, h_bs_m=1.5)  # h_BS = h_UT: d3D = d2D
    got = m.loss_db(np.array([100.0, 1000.0]), 1.5, True)
    # 20 log10(4π d f / c): 4π·3.5e9/c = 146.71 m⁻¹ → 43.33 dB, + 20 log10(d)
    np.testing.assert_allclose(got, [83.33, 103.33], atol=HAND_TOL_DB)


def test_friis_uses_3d_distance() -> None:
    m = FreeSpace(2e9, h_bs_m=31.5)
    d3d = math.hypot(40.0, 30.0)  # 50 m
    expected = 20 * math.log10(4 * math.pi * d3d * 2e9 / C_M_S)
    assert m.loss_db(40.0, 1.5, True) == pytest.approx(expected, abs=FORMULA_TOL_DB)


def test_log_distance_reference_and_slope() -> None:
    m = LogDistance(3.5e9, h_bs_m=1.5, exponent=3.5, reference_distance_m=10.0)
    pl_d0 = 20 * math.log10(4 * math.pi * 10.0 * 3.5e9 / C_M_S)
    got = m.loss_db(np.array([10.0, 100.0, 1000.0]), 1.5, False)
    np.testing.assert_allclose(got, pl_d0 + np.array([0.0, 35.0, 70.0]), atol=FORMULA_TOL_DB)
    assert m.loss_db(2.0, 1.5, True) == pytest.approx(pl_d0)  # clamped to d0
    m2 = LogDistance(3.5e9, 1.5, exponent=2.0, reference_loss_db=40.0, los_probability=0.3, shadow_std_db=8.0)
    assert m2.loss_db(10.0, 1.5, True) == pytest.approx(60.0)
    np.testing.assert_allclose(m2.los_probability([5.0, 500.0], 1.5), [0.3, 0.3])
    np.testing.assert_allclose(m2.shadow_std_db([True, False]), [8.0, 8.0])


# ---------------------------------------------------------------- TR 38.901 models
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("los", [True, False])
def test_38901_matches_spec_both_sides_of_breakpoint(name: str, los: bool) -> None:
    model, ref, h_bs, dbp = CASES[name]
    for h_ut in (1.5, 2.5):
        bp = dbp(h_ut)
        d = np.array([12.0, 0.5 * bp, 0.999 * bp, 1.001 * bp, 1.5 * bp])
        d = d[d <= model.D2D_RANGE_M[1]]
        assert (d < bp).any() and (d > bp).any()
        got = model.loss_db(d, h_ut, los)
        want = [ref(float(x), h_ut, 3.5e9, h_bs, los) for x in d]
        np.testing.assert_allclose(got, want, atol=FORMULA_TOL_DB, rtol=0)


def test_38901_hand_values() -> None:
    # UMa LOS, d2D = 100 m < d'BP = 560 m: d3D = sqrt(100² + 23.5²) = 102.72 m,
    # PL1 = 28 + 22·2.01166 + 20·0.54407 = 83.14 dB
    assert UMa(3.5e9, 25.0).loss_db(100.0, 1.5, True) == pytest.approx(83.14, abs=HAND_TOL_DB)
    # UMi NLOS, d2D = 200 m: d3D = sqrt(200² + 8.5²) = 200.18 m,
    # PL' = 35.3·2.30142 + 22.4 + 21.3·0.54407 = 115.23 dB
    # (LOS: d'BP = 4·9·0.5·3.5e9/c = 210.2 m, PL1 = 32.4 + 21·2.30142 + 10.88 = 91.61 dB, smaller)
    assert UMi(3.5e9, 10.0).loss_db(200.0, 1.5, False) == pytest.approx(115.23, abs=HAND_TOL_DB)
    assert UMi(3.5e9, 10.0).loss_db(200.0, 1.5, True) == pytest.approx(91.61, abs=HAND_TOL_DB)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(CASES)),
    d2d=st.floats(0.0, 20_000.0),
    h_ut=st.floats(0.5, 30.0),
    fc_ghz=st.floats(0.5, 30.0),
)
def test_nlos_never_below_los(name: str, d2d: float, h_ut: float, fc_ghz: float) -> None:
    model = type(CASES[name][0])(fc_ghz * 1e9)
    assert model.loss_db(d2d, h_ut, False) >= model.loss_db(d2d, h_ut, True)


def test_los_probability_spec_values() -> None:
    d = np.array([5.0, 18.0, 50.0, 200.0, 1000.0])
    umi = 18 / d + np.exp(-d / 36) * (1 - 18 / d)
    uma = 18 / d + np.exp(-d / 63) * (1 - 18 / d)
    np.testing.assert_allclose(UMi(3.5e9).los_probability(d, 1.5), np.where(d <= 18, 1, umi))
    np.testing.assert_allclose(UMa(3.5e9).los_probability(d, 1.5), np.where(d <= 18, 1, uma))
    np.testing.assert_allclose(RMa(3.5e9).los_probability(d, 1.5), np.where(d <= 10, 1, np.exp(-(d - 10) / 1000)))
    # UMa high UT: C'(20 m) = 0.7^1.5
    c = 0.7**1.5
    want = uma * (1 + c * 1.25 * (d / 100) ** 3 * np.exp(-d / 150))
    np.testing.assert_allclose(UMa(3.5e9).los_probability(d, 20.0), np.clip(np.where(d <= 18, 1, want), 0, 1))


@pytest.mark.parametrize("name", ["uma", "umi", "rma"])
def test_los_probability_bounds_and_monotone(name: str) -> None:
    model = CASES[name][0]
    d = np.linspace(0.0, 12_000.0, 4001)
    near = 18.0 if name != "rma" else 10.0
    for h_ut in (1.0, 1.5, 5.0, 10.0, 13.0, 18.0, 22.5):
        p = model.los_probability(d, h_ut)
        assert np.all((p >= 0) & (p <= 1))
        assert np.all(p[d <= near] == 1.0)
        if name != "uma" or h_ut <= 13.0:
            # UMa with h_UT > 13 m is not monotone (its C'(h_UT) bump), by the spec
            assert np.all(np.diff(p) <= 1e-15)


def test_shadow_and_decorrelation_tables() -> None:
    los = np.array([True, False])
    np.testing.assert_allclose(UMa(3.5e9).shadow_std_db(los), [4.0, 6.0])
    np.testing.assert_allclose(UMi(3.5e9).shadow_std_db(los), [4.0, 7.82])
    np.testing.assert_allclose(RMa(3.5e9).shadow_std_db(los), [4.0, 8.0])
    np.testing.assert_allclose(FreeSpace(3.5e9).shadow_std_db(los), [0.0, 0.0])
    np.testing.assert_allclose(UMa(3.5e9).decorrelation_distance_m(los), [37.0, 50.0])
    np.testing.assert_allclose(UMi(3.5e9).decorrelation_distance_m(los), [10.0, 13.0])
    np.testing.assert_allclose(RMa(3.5e9).decorrelation_distance_m(los), [37.0, 120.0])
    np.testing.assert_allclose(LogDistance(3.5e9).decorrelation_distance_m(los), [50.0, 50.0])
    # RMa LOS σ: 4 dB up to d_BP (2π·35·1.5·3.5e9/c = 3851 m), 6 dB beyond
    rma = RMa(3.5e9)
    np.testing.assert_allclose(rma.shadow_std_db(True, np.array([100.0, 3800.0, 3900.0, 9000.0])), [4, 4, 6, 6])
    np.testing.assert_allclose(rma.shadow_std_db([[True], [False]], np.array([100.0, 9000.0])), [[4, 6], [8, 8]])


def test_clamping_of_geometry() -> None:
    uma = UMa(3.5e9)
    assert uma.loss_db(0.0, 1.5, True) == uma.loss_db(10.0, 1.5, True)
    assert uma.loss_db(9_000.0, 1.5, False) == uma.loss_db(5_000.0, 1.5, False)
    assert uma.loss_db(100.0, 0.0, True) == uma.loss_db(100.0, 1.5, True)
    assert uma.loss_db(100.0, 40.0, True) == uma.loss_db(100.0, 22.5, True)
    assert np.isfinite(FreeSpace(3.5e9, h_bs_m=1.5).loss_db(0.0, 1.5, True))
    rma = RMa(3.5e9)
    assert rma.loss_db(50_000.0, 0.5, True) == rma.loss_db(10_000.0, 1.0, True)


@pytest.mark.parametrize(
    ("cls", "kwargs", "arg"),
    [
        (UMa, {"carrier_hz": 0.3e9}, "carrier_hz"),
        (UMa, {"carrier_hz": 3.5e9, "h_bs_m": 5.0}, "h_bs_m"),
        (UMi, {"carrier_hz": 150e9}, "carrier_hz"),
        (RMa, {"carrier_hz": 3.5e9, "h_bs_m": 200.0}, "h_bs_m"),
        (RMa, {"carrier_hz": 40e9}, "carrier_hz"),
        (RMa, {"carrier_hz": 3.5e9, "building_height_m": 60.0}, "building_height_m"),
        (RMa, {"carrier_hz": 3.5e9, "street_width_m": 1.0}, "street_width_m"),
        (FreeSpace, {"carrier_hz": 0.0}, "carrier_hz"),
        (FreeSpace, {"carrier_hz": float("nan")}, "carrier_hz"),
        (LogDistance, {"carrier_hz": 3.5e9, "exponent": 0.5}, "exponent"),
        (LogDistance, {"carrier_hz": 3.5e9, "los_probability": 1.5}, "los_probability"),
        (LogDistance, {"carrier_hz": 3.5e9, "shadow_std_db": -1.0}, "shadow_std_db"),
    ],
)
def test_invalid_constructor_args_name_argument(cls: type, kwargs: dict, arg: str) -> None:
    with pytest.raises(ValueError, match=arg):
        cls(**kwargs)


# ---------------------------------------------------------------- registry contract
def test_registry_keys() -> None:
    assert set(MODELS) == {"free_space", "log_distance", "uma", "umi", "rma"}
    assert all(issubclass(c, PathLossModel) and MODELS[c.name] is c for c in MODELS.values())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_contract(name: str) -> None:
    from cosim.checks import check_pathloss  # the reusable plugin check holds for every built-in

    check_pathloss(MODELS[name])
    model = MODELS[name](carrier_hz=3.5e9, h_bs_m=25.0)
    rng = np.random.default_rng(7)
    d2d = rng.uniform(0.0, 6000.0, size=(3, 40))  # (n_cells, n_devices)
    h_ut = rng.uniform(1.0, 3.0, size=(40,))
    los = rng.random((3, 40)) < 0.5
    pl = model.loss_db(d2d, h_ut, los)
    assert pl.shape == (3, 40) and pl.dtype == np.float64 and np.all(np.isfinite(pl)) and np.all(pl > 0)
    assert model.loss_db(d2d[:, :1], h_ut, True).shape == (3, 40)
    assert model.loss_db(50.0, 1.5, True).shape == ()
    p = model.los_probability(d2d, h_ut)
    assert p.shape == (3, 40) and np.all((p >= 0) & (p <= 1))
    assert model.shadow_std_db(los).shape == (3, 40)
    assert model.shadow_std_db(los, d2d, h_ut).shape == (3, 40)
    assert np.all(model.decorrelation_distance_m(los) > 0)
    # scalar reference pinned to vectorised result
    scalar = [float(model.loss_db(d2d[1, j], h_ut[j], los[1, j])) for j in range(40)]
    np.testing.assert_array_equal(pl[1], scalar)
    # deterministic and picklable
    np.testing.assert_array_equal(pl, model.loss_db(d2d, h_ut, los))
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(pl, clone.loss_db(d2d, h_ut, los))
    assert repr(clone) == repr(model)
