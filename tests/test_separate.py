import warnings

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


def two_voices(rate=22050, seconds=2.0):
    """Two voice-like sounds (harmonics of 110 and 247 Hz with a slow vibrato, in syllables of 0.2 s
    on and 0.1 s off, a little noise) mixed to stereo, float32."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)

    def voice(f0):
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))) / rate
        return 0.2 * ((t % 0.3) < 0.2) * sum(np.sin(h * phase) / h for h in range(1, 12)) \
            + 0.01 * rng.standard_normal(t.size)

    a, b = voice(110.0), voice(247.0)
    return np.stack([a + 0.3 * b, 0.4 * a + b], axis=1).astype(np.float32)


@pytest.mark.parametrize("octaves", [-100, -50, 40])
def test_a_split_at_any_level_is_the_split_at_full_scale_scaled(octaves):
    # split at a peak near 1 (by a power of two) and scaled back; at 2**-50 the squares of its float32
    # spectra underflowed: stems as far from those at full scale as the stems are loud
    x = two_voices()
    gain = np.float32(2.0 ** octaves)
    full = nmfsep.separate(x, 22050, k=2, max_iter=30)
    scaled = nmfsep.separate(x * gain, 22050, k=2, max_iter=30)
    np.testing.assert_allclose(scaled / gain, full, rtol=0, atol=1e-6 * np.abs(full).max())


def test_an_input_of_subnormal_samples_is_split_without_a_warning_and_its_stems_add_up():
    x = np.ldexp(two_voices()[:, 0], -135)  # peak about 2**-136: float32 subnormals (2**136 is beyond float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stems = nmfsep.separate(x, 22050, k=2, max_iter=10)
    peak = np.abs(x).max()
    assert np.isfinite(stems).all() and np.abs(stems).max() > 0
    assert np.abs(stems.sum(axis=0) - x).max() <= 1e-2 * peak


def test_a_quiet_input_resampled_to_the_models_rate_gives_the_stems_at_full_scale_scaled():
    x = two_voices(rate=16000)[:, 0]  # resampled to the built-ins' 22.05 kHz and the stems back
    gain = np.float32(2.0 ** -70)
    full = nmfsep.separate(x, 16000, models=["speech", "music"], max_iter=20)
    scaled = nmfsep.separate(x * gain, 16000, models=["speech", "music"], max_iter=20)
    np.testing.assert_allclose(scaled / gain, full, rtol=0, atol=1e-6 * np.abs(full).max())
    assert np.abs(scaled.sum(axis=0) - x * gain).max() <= 1e-4 * np.abs(x * gain).max()


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
