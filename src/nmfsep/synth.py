"""Synthetic mixtures of spectral sources: the demo, and test data with a known answer.

Each source is a harmonic tone (fixed fundamental, its own spectral envelope) switched on and
off by its own rhythm, so that both its spectrum (a column of W) and its activity (a row of H)
are distinct: exactly the structure NMF recovers.
"""

import numpy as np

# Fundamentals (Hz), harmonic roll-offs and note periods (s) of the default sources, listed by
# spectral centroid, lowest first (the order split writes stems in): a low dull tone, a middle
# tone with odd harmonics, a higher bright tone. No fundamental is
# near a harmonic of another (587.33 / 220 = 2.67, 830.61 / 220 = 3.78, 830.61 / 587.33 = 1.41).
DEFAULT_SOURCES = [
    {"f0": 220.0, "rolloff": 0.50, "odd_only": False, "period": 0.50},
    {"f0": 587.33, "rolloff": 0.60, "odd_only": True, "period": 0.70},
    {"f0": 830.61, "rolloff": 0.70, "odd_only": False, "period": 0.90},
]


def harmonic_tone(f0: float, rolloff: float, odd_only: bool, n_samples: int, sample_rate: int,
                  phase_seed: int = 0) -> np.ndarray:
    """A steady tone: harmonics h * f0 below Nyquist with amplitude rolloff ** (h - 1); at least
    the fundamental (f0 below Nyquist)."""
    rng = np.random.default_rng(phase_seed)
    t = np.arange(n_samples) / sample_rate
    tone = np.zeros(n_samples)
    for h in range(1, max(2, int(0.5 * sample_rate / f0))):
        if odd_only and h % 2 == 0:
            continue
        tone += rolloff ** (h - 1) * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
    return tone / np.abs(tone).max()


def gate(period: float, duty: float, offset: float, n_samples: int, sample_rate: int) -> np.ndarray:
    """On/off envelope: on for ``duty`` of each period, with 10 ms raised-cosine edges."""
    t = np.arange(n_samples) / sample_rate
    phase = ((t - offset) % period) / period
    on = (phase < duty).astype(float)
    ramp = max(int(0.01 * sample_rate), 1)
    kernel = np.hanning(2 * ramp + 1)
    return np.convolve(on, kernel / kernel.sum(), mode="same")


def mixture(n_sources: int = 2, sample_rate: int = 22050, duration: float = 4.0, seed: int = 0,
            sources: list[dict] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mix (n_samples,), true sources (n_sources, n_samples)) as float32; mix = sum of sources."""
    specs = (sources or DEFAULT_SOURCES)[:n_sources]
    n_samples = int(duration * sample_rate)
    rng = np.random.default_rng(seed)
    parts = []
    for i, spec in enumerate(specs):
        tone = harmonic_tone(spec["f0"], spec["rolloff"], spec.get("odd_only", False), n_samples,
                             sample_rate, phase_seed=seed + i)
        envelope = gate(spec["period"], 0.6, rng.uniform(0, spec["period"]), n_samples, sample_rate)
        parts.append(0.3 * tone * envelope)
    true_sources = np.array(parts, dtype=np.float32)
    return true_sources.sum(axis=0), true_sources
