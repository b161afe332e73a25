import numpy as np
import pytest

from nmfsep.masks import soft_masks


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
