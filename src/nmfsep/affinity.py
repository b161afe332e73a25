"""Which NMF components come from the same source: a learned pairwise model.

Blind separation cuts the mixture into C components and must say which of them make up each
source. Rules of thumb (timbre, pitch, co-activation) each work on some mixtures and fail on
others; here a small network trained on mixtures with known sources weighs all of them. For every
pair of components (i, j) it sees PAIR_FEATURES (how alike their spectra, pitch, harmonicity,
brightness, flatness, loudness, temporal texture, onsets, activations and stereo position are)
and gives the log-odds that i and j belong to the same source. The grouping is the partition into
n sources that agrees best with those log-odds (correlation clustering, Bansal et al. 2004),
each pair weighted by the components' loudness, so that the loud components decide.

This is the learned similarity of Bach & Jordan (2006, "Learning spectral clustering, with
application to speech separation"), with pair features in the spirit of the source-grouping cues
of computational auditory scene analysis (common onset, harmonicity, common fate).

The model (``grouping.npz`` beside this module) is trained by benchmarks/train_grouping.py on the
train split of the corpus that benchmarks/make_corpus.py generates; its balance (how readily the
grouping splits components apart) is chosen on the validation split. It is read without pickle
and validated like a model file (``load``).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .errors import ModelError

TINY = 1e-10
FORMAT_VERSION = 1
MAX_UNITS = 1024  # hidden units per layer that a model file may ask for
MAX_LAYERS = 8
# Each source holds at least this share of the components' loudness: without it, where the model
# finds every component alike, the best cut may set one quiet component apart as a "source"
# (benchmarks/data/voice_noise: 1 component against 23, -5.6 dB; -3.6 dB with 0.1). On the
# validation split, with the model trained before the remixes of benchmarks/train_grouping.py (24 components, one factorization): 0 -> +5.57, 0.05 -> +5.57, 0.1 -> +5.58,
# 0.15 -> +5.60, 0.2 -> +5.59 dB mean: no cost; 0.1 leaves room for a source down to about -19 dB.
MIN_SHARE = 0.1
MAX_VALUE = 1e6  # largest magnitude of any weight, bias, mean, scale or balance (a trained model's are < 100)
DEFAULT_PATH = Path(__file__).with_name("grouping.npz")
PAIR_FEATURES = (
    "mfcc_distance", "flatness_difference", "pitch_difference", "harmonicity_difference",
    "centroid_difference", "spread_difference", "texture_difference", "activity_difference",
    "pan_difference", "mean_flatness", "mean_harmonicity", "mean_texture", "log_activation_correlation",
    "onset_correlation", "activation_correlation", "spectral_cosine", "pitch_ratio_distance",
    "loudness_difference",
)
SIMPLE_RATIOS = np.log2([1, 2, 3, 4, 1.5, 5 / 4, 4 / 3, 5 / 3])  # octaves, fifths, thirds, ...


@dataclass(frozen=True)
class PairModel:
    """A multilayer perceptron (ReLU hidden layers, one logit out) over standardized pair
    features. weights[i]: (n_in, n_out) float32, biases[i]: (n_out,); mean, scale: (n_features,)
    standardization; balance: subtracted from every log-odds before the partition (higher splits
    more readily)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    balance: float

    def log_odds(self, features: np.ndarray) -> np.ndarray:
        """Log-odds of "same source" for features (..., n_features): (...)."""
        x = (features - self.mean) / self.scale
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w + b
            if i < len(self.weights) - 1:
                np.maximum(x, 0, out=x)
        return x[..., 0]

    def arrays(self) -> dict:
        """The model as named arrays (what ``save`` writes)."""
        fields = {"mean": self.mean, "scale": self.scale, "balance": np.float64(self.balance),
                  "features": np.array(PAIR_FEATURES), "format_version": np.int64(FORMAT_VERSION),
                  "nmfsep_version": np.array(__version__)}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            fields[f"weights{i}"], fields[f"biases{i}"] = w, b
        return fields


def save(model: PairModel, path: str | Path) -> None:
    """Write the model (nmfsep.model.write_arrays: atomically, the same bytes for the same model)."""
    from .model import write_arrays
    write_arrays(path, model.arrays())


def load(path: str | Path = DEFAULT_PATH) -> PairModel:
    """Read and validate a grouping model (.npz, no pickle); ModelError names the file and the problem."""
    from .model import read_arrays

    n = len(PAIR_FEATURES)
    spec = {"mean": ("f", (n,)), "scale": ("f", (n,)), "balance": ("f", ()), "features": ("U", (n,)),
            "format_version": ("i", ()), "nmfsep_version": ("U", ())}
    layers = {f"{kind}{i}": ("f", (None,) * ndim) for i in range(MAX_LAYERS)
              for kind, ndim in (("weights", 2), ("biases", 1))}
    arrays = read_arrays(path, spec, layers, max_elements=MAX_UNITS * MAX_UNITS, what="a grouping model")
    if int(arrays["format_version"]) != FORMAT_VERSION:
        raise ModelError(f"{path}: grouping model format {int(arrays['format_version'])}, this nmfsep reads {FORMAT_VERSION}")
    if tuple(str(f) for f in arrays["features"]) != PAIR_FEATURES:
        raise ModelError(f"{path}: grouping model was trained on other pair features")
    weights, biases, n_in = [], [], n
    for i in range(MAX_LAYERS):
        w, b = arrays.get(f"weights{i}"), arrays.get(f"biases{i}")
        if w is None and b is None:
            break
        if w is None or b is None or w.ndim != 2 or b.ndim != 1 or w.shape[0] != n_in or b.shape != w.shape[1:]:
            raise ModelError(f"{path}: grouping model layer {i} has inconsistent shapes")
        weights.append(w.astype(np.float64))
        biases.append(b.astype(np.float64))
        n_in = w.shape[1]
    if not weights or n_in != 1:
        raise ModelError(f"{path}: grouping model must end in one output")
    values = [arrays["mean"], arrays["scale"], np.float64(arrays["balance"]), *weights, *biases]
    if not all((np.abs(v) <= MAX_VALUE).all() for v in values) or not (arrays["scale"] > 0).all():
        raise ModelError(f"{path}: grouping model values must be finite, at most {MAX_VALUE:g} in size "
                         "(and scales positive)")
    return PairModel(arrays["mean"].astype(np.float64), arrays["scale"].astype(np.float64), tuple(weights),
                     tuple(biases), float(arrays["balance"]))


def descriptors(W: np.ndarray, H: np.ndarray, sample_rate: int, n_fft: int,
                channels: np.ndarray | None = None) -> dict:
    """Per-component descriptors of bases W (n_bins, C) and activations H (C, n_frames).

    channels: magnitude spectrograms (n_channels, n_bins, n_frames) of the input, for each
    component's stereo position (its Wiener share of each channel's energy); None or one channel: 0.
    """
    from .grouping import flatness, harmonic_pitch, mfcc

    W, H = W.astype(np.float64), H.astype(np.float64)
    shape = W / (W.sum(axis=0) + TINY)
    freqs = np.arange(W.shape[0]) * sample_rate / n_fft
    centroid = freqs @ shape
    spread = np.sqrt(((freqs[:, None] - centroid) ** 2 * shape).sum(axis=0))
    f0 = harmonic_pitch(W, sample_rate, n_fft)
    log_H = np.log(H + 1e-3 * H.max(axis=1, keepdims=True) + TINY)
    return {
        "mfcc": mfcc(W, sample_rate, n_fft), "flatness": np.log(flatness(W)), "pitch": np.log(f0),
        "harmonicity": _harmonicity(W, f0, sample_rate, n_fft), "centroid": np.log(centroid + 1),
        "spread": np.log(spread + 1),
        "texture": np.log(np.abs(np.diff(H, axis=1)).mean(axis=1) / (H.mean(axis=1) + TINY) + 1e-3),
        "activity": (H > 0.1 * H.max(axis=1, keepdims=True)).mean(axis=1),
        "pan": _pan(W, H, channels), "loudness": H.sum(axis=1) * W.sum(axis=0), "log_activations": log_H,
        "onsets": np.maximum(np.diff(log_H, axis=1), 0), "shape": shape,
    }


def _harmonicity(W: np.ndarray, f0: np.ndarray, sample_rate: int, n_fft: int, n_harmonics: int = 20) -> np.ndarray:
    """Share of each basis within one bin of the first n_harmonics partials of its pitch f0."""
    out = np.zeros(W.shape[1])
    for c in range(W.shape[1]):
        bins = np.round(np.arange(1, n_harmonics + 1) * f0[c] * n_fft / sample_rate).astype(int)
        near = np.unique(np.clip(np.concatenate([bins - 1, bins, bins + 1]), 0, W.shape[0] - 1))
        out[c] = W[near, c].sum() / (W[:, c].sum() + TINY)
    return out


def _pan(W: np.ndarray, H: np.ndarray, channels: np.ndarray | None, chunk: int = 1024) -> np.ndarray:
    """log(first channel's / last channel's energy) through each component's Wiener share,
    channels (n_channels, n_bins, n_frames) complex or magnitude, a chunk of frames at a time."""
    if channels is None or len(channels) < 2:
        return np.zeros(W.shape[1])
    energy = np.zeros((2, W.shape[1]))
    for start in range(0, H.shape[1], chunk):
        frames = slice(start, start + chunk)
        model = W @ H[:, frames] + TINY
        for i, channel in enumerate((channels[0], channels[-1])):
            energy[i] += (((np.abs(channel[:, frames]) / model) @ H[:, frames].T) * W).sum(axis=0)
    return np.log((energy[0] + TINY) / (energy[1] + TINY))


def _correlation(rows: np.ndarray) -> np.ndarray:
    centred = rows - rows.mean(axis=1, keepdims=True)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True) + TINY
    return centred @ centred.T


def pair_features(d: dict) -> np.ndarray:
    """(C, C, len(PAIR_FEATURES)), symmetric, from ``descriptors``."""
    def difference(v):
        return np.abs(v[:, None] - v[None])

    def mean(v):
        return (v[:, None] + v[None]) / 2

    unit = d["shape"] / (np.linalg.norm(d["shape"], axis=0) + TINY)
    octaves = difference(d["pitch"]) / np.log(2)
    loudness = np.log(d["loudness"] + TINY)
    features = [
        np.sqrt(((d["mfcc"][:, None] - d["mfcc"][None]) ** 2).sum(axis=-1)),
        *(difference(d[k]) for k in ("flatness", "pitch", "harmonicity", "centroid", "spread", "texture",
                                     "activity", "pan")),
        *(mean(d[k]) for k in ("flatness", "harmonicity", "texture")),
        _correlation(d["log_activations"]), _correlation(d["onsets"]),
        _correlation(np.exp(d["log_activations"])), unit.T @ unit,
        np.min(np.abs(octaves[..., None] - SIMPLE_RATIOS), axis=-1),
        difference(loudness),
    ]
    return np.stack(features, axis=-1)


def partition(log_odds: np.ndarray, weights: np.ndarray, n: int, seed: int = 0, restarts: int = 20,
              shares: np.ndarray | None = None, min_share: float = 0.0) -> list[np.ndarray]:
    """The n non-empty groups of C items that maximise the sum over same-group pairs of
    weights * log_odds (both (C, C), symmetric): correlation clustering with n clusters, by
    greedy moves of one item at a time from ``restarts`` random starts (seeded); the best wins.
    shares (C,), summing to one, and min_share: no move takes a group below min_share of the
    total, and a partition whose groups all hold at least that much wins over any that does not."""
    C = len(log_odds)
    if C <= n:
        return [np.array([c]) for c in range(C)]
    gain = log_odds * weights
    np.fill_diagonal(gain, 0)
    shares = np.zeros(C) if shares is None else np.asarray(shares, np.float64)
    rng = np.random.default_rng(seed)
    best, best_value = None, (False, -np.inf)
    for _ in range(restarts):
        labels = rng.integers(n, size=C)
        labels[rng.permutation(C)[:n]] = np.arange(n)  # no group starts empty
        sizes = np.bincount(labels, minlength=n)
        mass = np.bincount(labels, weights=shares, minlength=n)
        moved = True
        while moved:
            moved = False
            for c in rng.permutation(C):
                source = labels[c]
                if sizes[source] == 1 or (min_share and mass[source] - shares[c] < min_share):
                    continue
                pull = np.bincount(labels, weights=gain[c], minlength=n)
                target = int(np.argmax(pull))
                if pull[target] > pull[source] + 1e-12:
                    sizes[source] -= 1
                    sizes[target] += 1
                    mass[source] -= shares[c]
                    mass[target] += shares[c]
                    labels[c], moved = target, True
        value = (bool(mass.min() >= min_share), sum(gain[np.ix_(labels == g, labels == g)].sum() for g in range(n)))
        if value > best_value:
            best, best_value = labels.copy(), value
    return [np.flatnonzero(best == g) for g in range(n)]


def pair_scores(model: PairModel, W: np.ndarray, H: np.ndarray, sample_rate: int, n_fft: int,
                channels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``partition`` weighs for the components of W (n_bins, C), H (C, n_frames): the
    model's symmetric log-odds (C, C) of every pair, before its balance; the pairs' weights
    (C, C), the geometric mean of the two components' loudness shares times C; those shares (C,)."""
    d = descriptors(W, H, sample_rate, n_fft, channels)
    log_odds = model.log_odds(pair_features(d))
    share = d["loudness"] / (d["loudness"].sum() + TINY)
    return (log_odds + log_odds.T) / 2, np.sqrt(np.outer(share, share)) * len(share), share


def group(model: PairModel, W: np.ndarray, H: np.ndarray, n_sources: int, sample_rate: int, n_fft: int,
          channels: np.ndarray | None = None, seed: int = 0) -> list[np.ndarray]:
    """n_sources non-empty groups of the components of W (n_bins, C), H (C, n_frames)."""
    log_odds, weights, shares = pair_scores(model, W, H, sample_rate, n_fft, channels)
    return partition(log_odds - model.balance, weights, n_sources, seed, shares=shares, min_share=MIN_SHARE)
