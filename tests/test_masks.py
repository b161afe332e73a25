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


def stereo_mixture(rng, n_bins=33, n_frames=300):
    return (rng.standard_normal((2, n_bins, n_frames)) + 1j * rng.standard_normal((2, n_bins, n_frames))).astype(np.complex64)


def random_masks(rng, n_stems, n_bins, n_frames):
    masks = rng.random((n_stems, n_bins, n_frames)).astype(np.float32)
    return masks / masks.sum(axis=0)


def test_multichannel_wiener_stems_add_up_to_the_mixture():
    rng = np.random.default_rng(0)
    mixture = stereo_mixture(rng)
    stems = np.stack(list(masks_module.source_spectra(mixture, random_masks(rng, 3, 33, 300))))
    assert stems.shape == (3,) + mixture.shape and stems.dtype == np.complex64
    np.testing.assert_allclose(stems.sum(axis=0), mixture, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 2])
def test_the_wiener_filter_is_the_mask_where_the_channels_cannot_tell_the_sources_apart(channels):
    rng = np.random.default_rng(1)
    mixture = np.repeat(stereo_mixture(rng)[:1], channels, axis=0)  # one sound in every channel
    masks = random_masks(rng, 2, 33, 300)
    for stem, mask in zip(masks_module.source_spectra(mixture, masks), masks):
        np.testing.assert_allclose(stem, mask * mixture, atol=1e-5)


def test_the_wiener_filter_uses_where_each_source_is_panned():
    # two noises panned apart, and masks that only lean toward the right source (ratio masks
    # pulled halfway to the even split): the channels tell the rest
    rng = np.random.default_rng(2)
    sources = rng.standard_normal((2, 33, 400)) + 1j * rng.standard_normal((2, 33, 400))
    pans = np.array([[0.9, 0.3], [0.2, 1.0]])  # (source, channel)
    images = sources[:, None] * pans[:, :, None, None]  # (source, channel, bin, frame)
    mixture = images.sum(axis=0).astype(np.complex64)
    magnitudes = np.abs(images).mean(axis=1)
    leaning = (0.5 * magnitudes / magnitudes.sum(axis=0) + 0.25).astype(np.float32)
    stems = np.stack(list(masks_module.source_spectra(mixture, leaning)))

    def error(estimates):
        return float((np.abs(estimates - images) ** 2).sum() / (np.abs(images) ** 2).sum())

    assert error(stems) < 0.7 * error(leaning[:, None] * mixture[None])  # 0.25 against 0.41


def test_the_wiener_filter_agrees_with_norbert_given_the_same_power_shares():
    norbert = pytest.importorskip("norbert")
    rng = np.random.default_rng(3)
    mixture = stereo_mixture(rng, 17, 120)
    masks = random_masks(rng, 2, 17, 120)
    ours = np.stack(list(masks_module.source_spectra(mixture, masks)))
    x = mixture.transpose(2, 1, 0).astype(np.complex128)  # norbert: (frames, bins, channels)
    power = (np.abs(x) ** 2).mean(axis=2)
    covariances = np.stack([norbert.get_local_gaussian_model(masks[s].T[..., None] * x, eps=0)[1][0]
                            for s in range(2)], axis=-1)
    shares = np.stack([masks[s].T * power for s in range(2)], axis=-1)
    inverse = np.linalg.inv(norbert.get_mix_model(shares, covariances)
                            + masks_module.WIENER_LOADING * power[..., None, None] * np.eye(2))
    for s in range(2):
        theirs = norbert.apply_filter(x, norbert.wiener_gain(shares[..., s], covariances[..., s], inverse))
        np.testing.assert_allclose(ours[s], theirs.transpose(2, 1, 0), rtol=1e-4, atol=1e-5)


def test_covariance_sums_of_pieces_add_up_to_the_whole_input():
    rng = np.random.default_rng(4)
    mixture, masks = stereo_mixture(rng, 9, 600), random_masks(rng, 2, 9, 600)
    whole = masks_module.covariance_sums(mixture, masks)
    first = masks_module.covariance_sums(mixture[..., :250], masks[..., :250])
    rest = masks_module.covariance_sums(mixture[..., 250:], masks[..., 250:])
    np.testing.assert_allclose(first[0] + rest[0], whole[0], rtol=1e-10)
    np.testing.assert_allclose(first[1] + rest[1], whole[1], rtol=1e-10)
    np.testing.assert_allclose(masks_module.spatial_covariance(*whole)[0, :, 0, 1],
                               np.conj(masks_module.spatial_covariance(*whole)[0, :, 1, 0]))


def test_a_silent_stereo_input_gives_silent_stems():
    masks = random_masks(np.random.default_rng(5), 2, 9, 40)
    stems = list(masks_module.source_spectra(np.zeros((2, 9, 40), np.complex64), masks))
    assert all(np.isfinite(s).all() and not s.any() for s in stems)
