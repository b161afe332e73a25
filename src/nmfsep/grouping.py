"""From NMF components to sources: which components make up each source, and in what order.

Blind separation factorizes the mixture into C components and groups them into the n sources a
listener hears. All methods return exactly n non-empty groups.

    none          C = n: each component is a source (plain NMF)
    learned       a small network, trained on mixtures with known sources, gives the log-odds that
                  two components come from the same source (from their timbre, pitch, onsets,
                  activations, stereo position, ...); the partition that agrees best with them
                  wins (nmfsep.affinity)

The other methods describe every component by a few numbers and cluster them with the core's
k-means (k-means as NMF, ``nmfsep.nmf.kmeans``), weighting nothing:

    timbre        MFCCs of each basis (log mel spectrum, DCT, c1..c12), as nussl's NMF-MFCC, plus
                  its spectral flatness (harmonic or noisy), which MFCCs alone blur
    coactivation  the rows of log H, unit-normalised: components that sound together group
    pitch         fundamental of each basis (harmonic sieve) and its spectral flatness:
                  register and harmonic-vs-noisy, a rough source-filter description
    flatness      spectral flatness alone: harmonic versus percussive or noisy components

``auto`` is the method chosen on the validation split of the corpus (benchmarks/bench_quality.py
--corpus --split val): learned (+6.9 dB mean SI-SDRi there; the test split's numbers are in the
README); the pipeline may also replace it by one component per source for steady sources (see
``nmfsep.blind._one_component_per_source``).
"""

import numpy as np

METHODS = ("auto", "none", "learned", "timbre", "coactivation", "pitch", "flatness")
DEFAULT_METHOD = "learned"
N_RESTARTS = 30  # k-means restarts (seeds seed..seed+29); the lowest inertia wins (10 left the
# benchmark's grouping depending on the seed: drums_guitar 7.3 or 11.2 dB)
TINY = 1e-10


def spectral_centroids(source_spectra: np.ndarray) -> np.ndarray:
    """Centroid (in bins) of each row of non-negative spectra (n_sources, n_bins); 0 for silence."""
    bins = np.arange(source_spectra.shape[1], dtype=np.float64)
    energy = source_spectra.sum(axis=1, dtype=np.float64)
    weighted = source_spectra @ bins
    return np.divide(weighted, energy, out=np.zeros_like(weighted), where=energy > 0)


def order_by_centroid(groups: list[np.ndarray], W: np.ndarray, H: np.ndarray) -> list[np.ndarray]:
    """Groups sorted so the source with the lowest spectral centroid comes first.

    A source's spectrum is its components' bases weighted by their total activation, i.e. the
    time-average of W_s H_s. Ties keep the given order (stable sort).
    """
    activation = H.sum(axis=1)
    spectra = np.stack([W[:, g] @ activation[g] for g in groups])
    order = np.argsort(spectral_centroids(spectra), kind="stable")
    return [groups[i] for i in order]


def flatness(W: np.ndarray) -> np.ndarray:
    """Spectral flatness of each basis: geometric over arithmetic mean, in (0, 1]."""
    logs = np.log(W.astype(np.float64) + TINY)
    return np.exp(logs.mean(axis=0)) / (W.mean(axis=0, dtype=np.float64) + TINY)


def harmonic_pitch(W: np.ndarray, sample_rate: int, n_fft: int, low: float = 50.0, high: float = 1600.0,
                   n_harmonics: int = 20) -> np.ndarray:
    """Fundamental (Hz) of each basis by a harmonic sieve: the candidate f0 (1/36 octave steps
    from low to high) whose first n_harmonics partials collect the most of the basis, partial h
    weighted (f0 + 27) / (h f0 + 320) as in Klapuri's (2006) salience, so that f0 / 2 (which also
    covers every partial of f0) does not win."""
    peaks = W.astype(np.float64) / (W.max(axis=0) + TINY)
    peaks[1:-1] = np.maximum(peaks[1:-1], np.maximum(peaks[:-2], peaks[2:]))  # partials off-bin by one
    candidates = low * 2.0 ** (np.arange(int(36 * np.log2(high / low)) + 1) / 36)
    harmonics = np.arange(1, n_harmonics + 1)
    salience = np.zeros((len(candidates), W.shape[1]))
    for i, f0 in enumerate(candidates):
        bins = np.round(harmonics * f0 * n_fft / sample_rate).astype(int)
        inside = bins < W.shape[0]
        salience[i] = ((f0 + 27.0) / (harmonics[inside] * f0 + 320.0)) @ peaks[bins[inside]]
    return candidates[salience.argmax(axis=0)]


def mfcc(W: np.ndarray, sample_rate: int, n_fft: int, n_mels: int = 40) -> np.ndarray:
    """MFCCs c1..c12 of each basis (components, 12)."""
    import warnings

    import librosa
    import scipy.fft

    with warnings.catch_warnings():  # a small n_fft leaves some mel bands between bins: empty, constant, harmless
        warnings.filterwarnings("ignore", message="Empty filters detected", category=UserWarning)
        mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    log_mel = np.log(mel @ (W / (W.sum(axis=0) + TINY)) + 1e-8)
    return scipy.fft.dct(log_mel, axis=0, norm="ortho")[1:13].T


def features(method: str, W: np.ndarray, H: np.ndarray, sample_rate: int, n_fft: int) -> np.ndarray:
    """What each method clusters: (components, n_features)."""
    if method == "timbre":
        return np.concatenate([mfcc(W, sample_rate, n_fft), np.log(flatness(W))[:, None]], axis=1)
    if method == "coactivation":
        logs = np.log(H.astype(np.float64) + 1e-6 * H.max() + TINY)
        logs -= logs.mean(axis=1, keepdims=True)
        return logs / (np.linalg.norm(logs, axis=1, keepdims=True) + TINY)
    if method == "pitch":
        return np.stack([np.log(harmonic_pitch(W, sample_rate, n_fft)), np.log(flatness(W))], axis=1)
    if method == "flatness":
        return np.log(flatness(W))[:, None]
    raise ValueError(f"unknown grouping method {method!r}")


def group_components(W: np.ndarray, H: np.ndarray, n_sources: int, method: str, sample_rate: int,
                     n_fft: int, seed: int = 0, channels: np.ndarray | None = None) -> list[np.ndarray]:
    """Exactly n_sources non-empty groups of component indices (not yet in source order).
    channels: the input's spectrogram per channel (n_channels, n_bins, n_frames), for the
    learned grouping's stereo cue (None: mono)."""
    from .nmf import kmeans

    n_components = W.shape[1]
    if method == "auto":
        method = DEFAULT_METHOD
    if method == "none" or n_components == n_sources:
        return [np.array([c]) for c in range(n_components)][:n_sources]
    if method == "learned":
        from . import affinity

        return affinity.group(affinity.load(), W, H, n_sources, sample_rate, n_fft, channels, seed)
    points = features(method, W, H, sample_rate, n_fft)
    points = (points - points.mean(axis=0)) / (points.std(axis=0) + TINY)
    points -= points.min(axis=0)  # k-means is shift-invariant; the NMF core wants V >= 0
    points = np.ascontiguousarray(points.T, dtype=np.float32)
    runs = [kmeans(points, n_sources, seed=seed + i) for i in range(N_RESTARTS)]
    labels = min(runs, key=lambda r: r.losses[-1]).H.argmax(axis=0)
    return fill_empty([np.flatnonzero(labels == i) for i in range(n_sources)])


def fill_empty(groups: list[np.ndarray]) -> list[np.ndarray]:
    """Give each empty group a component from the largest group (identical features can leave
    a k-means cluster empty)."""
    groups = [g.copy() for g in groups]
    for i, group in enumerate(groups):
        if len(group) == 0:
            largest = max(range(len(groups)), key=lambda j: len(groups[j]))
            groups[i], groups[largest] = groups[largest][-1:], groups[largest][:-1]
    return groups
