"""The TR 38.901 large-scale calibration drop reproduces the published 3GPP curves.

Reference: 3GPP R1-165974 (median over companies), UMa 6 GHz, 5/50/95 % points of the
geometry and of the coupling loss (radio.calibration.R1_165974_UMA_6GHZ).
"""

from __future__ import annotations

import numpy as np
import pytest

from radio.calibration import R1_165974_UMA_6GHZ, large_scale_drop


@pytest.fixture(scope="module")
def drop():
    return large_scale_drop(np.random.default_rng(11), 4000)


def test_geometry_matches_r1_165974_within_1_db(drop):
    ours = np.percentile(drop["geometry_db"], [5, 50, 95])
    assert np.all(np.abs(ours - np.array(R1_165974_UMA_6GHZ["geometry_db"])) < 1.0), ours


def test_coupling_loss_matches_r1_165974_within_1_5_db(drop):
    ours = np.percentile(drop["coupling_loss_db"], [5, 50, 95])
    assert np.all(np.abs(ours - np.array(R1_165974_UMA_6GHZ["coupling_loss_db"])) < 1.5), ours


def test_noise_only_lowers_the_geometry(drop):
    assert np.all(drop["sinr_db"] <= drop["geometry_db"] + 1e-12)
    # Deep-indoor UTs of high-loss buildings are noise-limited at 44 dBm / 20 MHz.
    assert np.percentile(drop["sinr_db"], 5) < np.percentile(drop["geometry_db"], 5) - 5.0


def test_drop_is_reproducible_and_checks_its_arguments():
    a = large_scale_drop(np.random.default_rng(3), 50)
    b = large_scale_drop(np.random.default_rng(3), 50)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="high_loss_fraction"):
        large_scale_drop(np.random.default_rng(0), 5, high_loss_fraction=2.0)
