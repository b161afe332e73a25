import numpy as np
import pytest
import soundfile as sf

from nmfsep import synth


@pytest.fixture
def tones():
    """(mix, sources, sample_rate): the demo's two synthetic sources, 3 s at 22050 Hz."""
    mix, sources = synth.mixture(2, sample_rate=22050, duration=3.0, seed=1)
    return mix, sources, 22050


@pytest.fixture
def wav_file(tmp_path, tones):
    """Write a mixture to disk: wav_file(name, channels=1, subtype='FLOAT', fmt='WAV')."""
    mix, _, rate = tones

    def make(name="mix.wav", channels=1, subtype="FLOAT", fmt="WAV", samples=None, rate=rate):
        data = mix if samples is None else samples
        if channels > 1 and data.ndim == 1:
            data = np.stack([data * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)
        path = tmp_path / name
        sf.write(path, data, rate, subtype=subtype, format=fmt)
        return path

    return make


@pytest.fixture(autouse=True)
def _cache_in_a_temporary_folder(monkeypatch, tmp_path_factory):
    """No test reads or writes the user's cache (nmfsep.cache): each gets its own empty one."""
    monkeypatch.setenv("NMFSEP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
