import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nmfsep import synth


@pytest.fixture(scope="session")
def benchmark_script():
    """A loader of benchmarks/NAME.py as a module (the scripts are not a package)."""
    def load(name):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


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


# Headless Chromium for the browser tests (test_report.py, test_explore.py): no network, no sound.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--mute-audio", "--hide-scrollbars"]


@pytest.fixture(scope="session")
def chromium():
    """The Chromium binary; skip without it, except in CI (CI=true), where its absence fails."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI: chromium is required for the browser tests (apt-get install chromium)")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; `make dev` does it)")
    return found


@pytest.fixture
def trainings(monkeypatch):
    """The positional arguments of every nmfsep.discriminative.train call from now on, each call
    still made for real (a spy on the model-set training)."""
    from nmfsep import discriminative

    made = []
    real = discriminative.train
    monkeypatch.setattr(discriminative, "train", lambda *a, **k: made.append(a) or real(*a, **k))
    return made
