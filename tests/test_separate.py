import numpy as np
import pytest

import nmfsep
from nmfsep.errors import NmfsepError
from nmfsep.evaluate import si_sdr_improvement
from nmfsep.grouping import spectral_centroids


def test_stems_sum_to_the_mono_input(tones):
    mix, _, rate = tones
    stems = nmfsep.separate(mix, rate, k=2, max_iter=30)
    assert stems.shape == (2,) + mix.shape and stems.dtype == np.float32
    assert np.abs(stems.sum(axis=0) - mix).max() <= 1e-4 * np.abs(mix).max()


def test_stems_sum_to_the_stereo_input_and_keep_channels(tones):
    mix, _, rate = tones
    stereo = np.stack([mix, 0.5 * mix[::-1]], axis=1)
    stems = nmfsep.separate(stereo, rate, k=3, max_iter=30)
    assert stems.shape == (3,) + stereo.shape
    assert np.abs(stems.sum(axis=0) - stereo).max() <= 1e-4 * np.abs(stereo).max()


def test_demo_sources_come_apart_by_10_db(tones):
    mix, sources, rate = tones
    stems = nmfsep.separate(mix, rate, k=2)
    improvement = si_sdr_improvement(sources, stems, mix)
    assert improvement.min() >= 10, improvement


def test_stems_are_ordered_by_spectral_centroid(tones):
    mix, sources, rate = tones
    stems = nmfsep.separate(mix, rate, k=2)
    true_centroids = spectral_centroids(np.abs(np.fft.rfft(sources, axis=1)))
    lowest = int(np.argmin(true_centroids))
    assert np.corrcoef(stems[0], sources[lowest])[0, 1] > 0.9
    assert np.corrcoef(stems[1], sources[1 - lowest])[0, 1] > 0.9


def test_digital_silence_gives_silent_stems():
    stems = nmfsep.separate(np.zeros(5000, np.float32), 16000, k=2)
    assert np.isfinite(stems).all() and not stems.any()


def test_input_shorter_than_one_frame():
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 100).astype(np.float32)
    stems = nmfsep.separate(x, 16000, k=2, max_iter=20)
    assert np.isfinite(stems).all()
    assert np.abs(stems.sum(axis=0) - x).max() <= 1e-4


def test_same_seed_same_stems(tones):
    mix, _, rate = tones
    a = nmfsep.separate(mix, rate, k=2, max_iter=20, seed=3)
    b = nmfsep.separate(mix, rate, k=2, max_iter=20, seed=3)
    np.testing.assert_array_equal(a, b)


def test_caller_samples_are_not_modified(tones):
    mix, _, rate = tones
    copy = mix.copy()
    nmfsep.separate(mix, rate, k=2, max_iter=5)
    np.testing.assert_array_equal(mix, copy)


@pytest.mark.parametrize("kwargs,message", [
    ({"k": 0}, "k \\(number of sources\\) must be at least 1, got 0"),
    ({"max_iter": 0}, "iter must be at least 1, got 0"),
    ({"power": 0}, "power must be > 0"),
])
def test_bad_settings_are_refused(tones, kwargs, message):
    mix, _, rate = tones
    with pytest.raises(NmfsepError, match=message):
        nmfsep.separate(mix, rate, **kwargs)


def test_non_finite_samples_are_refused():
    with pytest.raises(NmfsepError, match="NaN or infinite"):
        nmfsep.separate(np.array([0.0, np.nan, 0.1]), 16000)
