import numpy as np
import pytest

from nmfsep import masks as masks_module
from nmfsep.masks import masks_of, soft_masks


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0, 3.0])
def test_masks_sum_to_one_everywhere(power):
    rng = np.random.default_rng(0)
    models = rng.gamma(0.3, size=(3, 40, 50)).astype(np.float32)
    models[:, :5] = 0.0  # all-zero bins
    models[0, 10:12] = 1e-30  # one tiny source alone
    models[:, 20] *= 1e30  # huge values
    masks = soft_masks(models, power)
    assert np.isfinite(masks).all()
    assert masks.min() >= 0
    np.testing.assert_allclose(masks.sum(axis=0), 1.0, atol=1e-6)


def test_all_zero_bins_are_shared_equally():
    masks = soft_masks(np.zeros((4, 3, 2), np.float32))
    np.testing.assert_array_equal(masks, 0.25)


def test_mask_is_the_power_ratio():
    models = np.array([[[1.0]], [[3.0]]], np.float32)
    np.testing.assert_allclose(soft_masks(models, 1.0).ravel(), [0.25, 0.75])
    np.testing.assert_allclose(soft_masks(models, 2.0).ravel(), [0.1, 0.9])


def test_caller_models_are_not_modified():
    models = np.ones((2, 3, 4), np.float32) * 2
    soft_masks(models, 2.0)
    np.testing.assert_array_equal(models, 2.0)


def _voice_and_floor(n_frames=100):
    """Bases (4 bins, 3): two voice components, one noise one; activations whose first
    component is steady (a constant), the second on in a third of the frames."""
    bases = np.array([[1, 0, 0.1], [0, 1, 0.1], [0, 0, 1], [0.5, 0.5, 1]], np.float32)
    H = np.zeros((3, n_frames), np.float32)
    H[0] = 2.0
    H[1, : n_frames // 3] = 3.0
    H[2] = 1.0
    return bases, H, [np.array([0, 1]), np.array([2])]


def test_a_steady_floor_moves_from_the_voice_to_the_noise_stem():
    bases, H, groups = _voice_and_floor()
    plain = masks_of(bases, H, groups, 2.0)
    moved = masks_of(bases, H, groups, 2.0, steady=(1, (0,)))
    np.testing.assert_allclose(moved.sum(axis=0), 1.0, atol=1e-6)
    # bin 0 holds only the steady component 0: it goes to the noise stem
    assert plain[0, 0].min() > 0.9 and moved[1, 0].min() > 0.99
    # component 1 (off in two thirds of the frames, so no floor) stays with the voice
    np.testing.assert_allclose(moved[0, 1, :33], plain[0, 1, :33], rtol=1e-5)
    assert moved[0, 1, :33].min() > 0.9


def test_no_steady_stems_leaves_the_masks_unchanged():
    bases, H, groups = _voice_and_floor()
    np.testing.assert_array_equal(masks_of(bases, H, groups, 2.0, 0.7, None), masks_of(bases, H, groups, 2.0, 0.7))
    empty = np.zeros((3, 0), np.float32)
    assert masks_of(bases, empty, groups, 2.0, steady=(1, (0,))).shape == (2, 4, 0)


def test_the_floor_is_the_percentile_over_time_per_component(monkeypatch):
    bases, H, groups = _voice_and_floor()
    H[0] = np.linspace(0, 10, H.shape[1])  # floor at the STEADY_PERCENTILE-th value
    monkeypatch.setattr(masks_module, "STEADY_PERCENTILE", 50.0)
    moved = masks_of(bases, H, groups, 1.0, steady=(1, (0,)))
    floor = np.percentile(H[0], 50.0)
    voice0 = np.maximum(H[0] - floor, 0)       # bin 0: voice W00 (H0 - floor); noise 0.1 H2 + W00 min(H0, floor)
    noise0 = 0.1 * H[2] + np.minimum(H[0], floor)
    expected = voice0 / (voice0 + noise0)
    np.testing.assert_allclose(moved[0, 0], expected, rtol=1e-5, atol=1e-6)
