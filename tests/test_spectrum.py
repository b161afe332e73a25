import numpy as np
import pytest

from nmfsep import spectrum
from nmfsep.errors import NmfsepError


@pytest.mark.parametrize("n_samples", [1, 100, 2048, 22050, 22051])
@pytest.mark.parametrize("n_fft,hop", [(2048, 512), (1024, 256), (512, 200), (256, 128)])
def test_stft_istft_round_trip(n_samples, n_fft, hop):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, n_samples)).astype(np.float32)
    params = spectrum.StftParams(n_fft, hop).check()
    y = spectrum.istft(spectrum.stft(x, params), params, n_samples)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y - x).max() <= 1e-5


def test_stft_shape_and_dtype():
    params = spectrum.StftParams(1024, 256)
    X = spectrum.stft(np.zeros(10_000, np.float32), params)
    assert X.shape == (513, spectrum.n_frames(10_000, params))
    assert X.dtype == np.complex64 and X.flags.c_contiguous


def test_stft_of_a_sine_peaks_at_its_bin():
    rate, params = 16000, spectrum.StftParams(1024, 256)
    t = np.arange(rate) / rate
    X = spectrum.stft(np.sin(2 * np.pi * 1000 * t).astype(np.float32), params)
    assert np.argmax(np.abs(X[:, 20])) == round(1000 * 1024 / rate)


@pytest.mark.parametrize("rate,n_fft", [(8000, 512), (16000, 1024), (22050, 1024), (44100, 2048),
                                        (48000, 2048), (192000, 8192)])
def test_default_n_fft_follows_sample_rate(rate, n_fft):
    params = spectrum.default_params(rate)
    assert (params.n_fft, params.hop_length) == (n_fft, n_fft // 4)


@pytest.mark.parametrize("n_fft,hop,message", [
    (1000 + 1, 256, "n_fft must be an even number"),
    (8, 4, "n_fft must be an even number of samples >= 16"),
    (1024, 600, "hop must be between 1 and n_fft/2 = 512 samples, got 600"),
])
def test_unusable_stft_params_are_refused(n_fft, hop, message):
    with pytest.raises(NmfsepError, match=message):
        spectrum.StftParams(n_fft, hop).check()
