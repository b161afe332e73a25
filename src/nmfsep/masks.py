"""Soft (Wiener-like) masks that share every time-frequency point between the sources.

    M_s = (W_s H_s)^p / sum_t (W_t H_t)^p

The masks sum to one at every bin, so the masked spectra add back up to the mixture. Where every
source model is zero the point is shared equally (1 / n_sources) instead of giving 0 / 0.

A steady floor (``masks_of``'s ``steady``): a voice falls silent between words, so what a voice's
bases explain in every frame, the low part of each of its activations, is steady sound that
resembles it (hum, a narrow band of noise) and goes to a noise (or music) stem instead. That is
minimum-statistics noise tracking (Martin 2001, IEEE TSAP 9(5)) applied to NMF activations.
"""

import numpy as np

# The percentile of each activation over time that counts as its steady floor (``masks_of``).
# Chosen on the corpus' validation split (SI-SDRi, dB): built-ins speech + noise (blended, the
# default) / 42 mono mixtures of validation voices and noises at 0 dB, --model speech --model
# noise --blend 0 / own voice + built-in noise: none 9.68 / 8.15 / 12.08; 30: - / 8.53 / -;
# 40: 9.86 / 8.66 / 12.32; 50: 9.64 / 8.60 / 12.23; 60: - / 8.26 / -. Three sources with the
# built-in noise: 6.39 -> 6.54 at 40, but 6.32 when music's floor moved too (held notes). A running
# percentile over 2 / 4 s windows instead of the whole input: speech + noise 9.69 / 9.78, speech +
# music (the built-in music taking the floor) 5.50 / 5.39, own voice + noise 12.05 / 12.26, against
# 9.86 / 5.28 / 12.32: no better on the whole, so the whole input's (a streamed block's) it is.
STEADY_PERCENTILE = 40.0


def soft_masks(source_models: np.ndarray, power: float = 2.0) -> np.ndarray:
    """Masks (n_sources, n_bins, n_frames) from non-negative source models of the same shape.

    Each point is divided by the largest source there before the power is taken, so the
    power can neither overflow nor underflow to an all-zero denominator.
    """
    models = np.asarray(source_models, dtype=np.float32)
    peak = models.max(axis=0)
    silent = peak <= 0
    masks = models / np.where(silent, 1.0, peak)
    if power != 1:
        np.power(masks, power, out=masks)
    total = masks.sum(axis=0)  # >= 1 wherever peak > 0: the largest source contributes 1
    total[silent] = 1.0
    masks /= total
    masks[:, silent] = 1.0 / models.shape[0]
    return masks


def masks_of(bases: np.ndarray, activations: np.ndarray, groups: list[np.ndarray], power: float,
             confidence: float = 1.0, steady: "tuple[int, tuple[int, ...]] | None" = None) -> np.ndarray:
    """Soft masks (n_stems, n_bins, n_frames) of the stems W_s H_s, one per group of components,
    moved toward 1 / n_stems by 1 - confidence (they still sum to one).

    steady: (receiver, voices), stem indices: of each voice stem's activations, the part under their
    STEADY_PERCENTILE over time (min(H, floor), per component) is modelled in the receiver's stem
    instead (see the module doc); None: no stem's floor moves."""
    receiver, voices = steady if steady is not None and activations.shape[1] else (None, ())
    stem_models, floors = [], {}
    for s, g in enumerate(groups):
        H = activations[g]
        if s in voices:
            floors[s] = np.minimum(H, np.percentile(H, STEADY_PERCENTILE, axis=1, keepdims=True))
            H = H - floors[s]
        stem_models.append(bases[:, g] @ H)
    for s, low in floors.items():
        stem_models[receiver] = stem_models[receiver] + bases[:, groups[s]] @ low
    source_masks = soft_masks(np.stack(stem_models), power)
    if confidence < 1:
        source_masks = confidence * source_masks + np.float32((1 - confidence) / len(groups))
    return source_masks


# Points (bins x frames x channels^2) per chunk of the multichannel Wiener filter (``source_spectra``):
# its complex128 temporaries are a few such arrays, 16 MB each (256 frames of 1025 bins in stereo;
# fewer frames with more channels, so that memory does not grow with them).
WIENER_CHUNK = 2 ** 20
# The mixture covariance's diagonal loading, relative to the power at each point: keeps it invertible
# where the channels are identical (one sound in both), and is inaudible (-80 dB). Local, so that a
# block of a streamed input is filtered as the whole input is.
WIENER_LOADING = 1e-8


def source_spectra(mixture: np.ndarray, masks: np.ndarray, covariance: np.ndarray | None = None):
    """Each stem's spectrum (n_channels, n_bins, n_frames), complex64, one per mask, in order.

    mixture: the input's spectrum (n_channels, n_bins, n_frames); masks: (n_stems, n_bins,
    n_frames), summing to one over the stems (``masks_of``), made on the channels' mean magnitude.
    One channel (or one stem): mask * mixture. Several channels: the multichannel Wiener filter
    of the local Gaussian model (Duong, Vincent & Gribonval 2010, IEEE TASLP 18(7); norbert's
    ``wiener``, the post-filter of Open-Unmix), the masks giving each source's share of the power:

        P(f, t)   = mean over channels of |x(f, t)|^2
        R_s(f)    = sum_t M_s^2 x x^H / sum_t M_s^2 P       source s's spatial covariance in bin f
        C_x(f, t) = sum_s M_s P R_s + e I,   e = WIENER_LOADING * P
        stem_s    = (M_s P R_s + e / n_stems I) C_x^-1 x

    A source panned left and one panned right share a point by how the channels differ there, not
    only by the mask. The gains sum to the identity, so the stems still add up to the input; where
    the channels cannot tell the sources apart (the same R_s for every source, e.g. one sound in
    both channels) stem_s is M_s x, as with one channel. The power share is M_s P, not norbert's
    |M_s x|^2, which squares the masks: on the corpus' validation split (the blind default's 49
    stereo mixtures) +1.99 dB, against +0.91 for norbert's one iteration (+1.17 with two).

    covariance: R (n_stems, n_bins, n_channels, n_channels) from ``spatial_covariance`` of the
    whole input where this is one block of it; None: this mixture's own. With several channels the
    stems are made together, a chunk of frames at a time (C_x^-1 x is solved once for all of them:
    4 stems of 2 minutes of stereo took 28 s against 18 s when each stem solved it again), so all
    n_stems spectra are held at once; with one channel, one at a time.
    """
    n_stems, n_bins, n_frames = masks.shape
    n_channels = mixture.shape[0]
    if not spatially_filtered(n_channels, n_stems):
        for mask in masks:
            yield mixture * mask
        return
    if covariance is None:
        covariance = spatial_covariance(*covariance_sums(mixture, masks))
    stems = np.empty((n_stems,) + mixture.shape, np.complex64)  # all at once: one solve per point
    for c in _chunks(n_frames, n_bins, n_channels):
        x = mixture[:, :, c].astype(np.complex128)
        power = _power(x)                                         # (F, t)
        v = masks[:, :, c] * power                                # (S, F, t)
        loading = WIENER_LOADING * power + np.finfo(np.float64).tiny
        z = _solve(v, covariance, loading, x)                     # C_x^-1 x: (C, F, t)
        for s in range(n_stems - 1):
            imaged = np.matmul(covariance[s], z.transpose(1, 0, 2)).transpose(1, 0, 2)   # R_s z
            stems[s, :, :, c] = v[s] * imaged + loading / n_stems * z
        stems[-1, :, :, c] = mixture[:, :, c] - stems[:-1, :, :, c].sum(axis=0)  # I less the others' gains
    yield from stems


def spatially_filtered(n_channels: int, n_stems: int) -> bool:
    """Whether ``source_spectra`` filters by the channels: several channels and several stems."""
    return n_channels > 1 and n_stems > 1


def _solve(v: np.ndarray, covariance: np.ndarray, loading: np.ndarray, x: np.ndarray) -> np.ndarray:
    """z = C_x^-1 x at every point (``source_spectra``): v (S, F, t), covariance R (S, F, C, C),
    loading (F, t), x (C, F, t). Two channels in closed form, with the Hermitian R's real
    diagonal in real arithmetic (numpy's batched solve of 2 x 2 systems took 10 times as long)."""
    if len(x) == 2:
        a = np.einsum("sft,sf->ft", v, covariance[:, :, 0, 0].real) + loading
        d = np.einsum("sft,sf->ft", v, covariance[:, :, 1, 1].real) + loading
        b = np.einsum("sft,sf->ft", v, covariance[:, :, 0, 1])
        det = a * d - (b.real ** 2 + b.imag ** 2)
        det[det <= 0] = np.inf  # only where the input is silent (the loading's floor underflows): z = 0
        return np.stack([d * x[0] - b * x[1], a * x[1] - b.conj() * x[0]]) / det
    n_stems, n_bins, n_frames = v.shape
    n_channels = len(x)
    matrices = np.matmul(v.transpose(1, 2, 0), covariance.reshape(n_stems, n_bins, -1).transpose(1, 0, 2))
    matrices = matrices.reshape(n_bins, n_frames, n_channels, n_channels) + loading[..., None, None] * np.eye(n_channels)
    return np.moveaxis(np.linalg.solve(matrices, np.moveaxis(x, 0, -1)[..., None])[..., 0], -1, 0)


def covariance_sums(mixture: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sums over frames that make ``source_spectra``'s R_s: (sum_t M_s^2 x x^H (n_stems, n_bins,
    n_channels, n_channels) complex128, sum_t M_s^2 P (n_stems, n_bins)), for mixture (n_channels,
    n_bins, n_frames) and masks (n_stems, n_bins, n_frames). Those of several pieces of one input
    add up to the whole input's."""
    n_stems, n_bins, n_frames = masks.shape
    n_channels = mixture.shape[0]
    sums = np.zeros((n_stems, n_bins, n_channels, n_channels), np.complex128)
    weights = np.zeros((n_stems, n_bins))
    for c in _chunks(n_frames, n_bins, n_channels):
        x = mixture[:, :, c].astype(np.complex128)
        share = masks[:, :, c].astype(np.float64) ** 2
        sums += np.einsum("sft,cdft->sfcd", share, x[:, None] * x[None].conj())
        weights += np.einsum("sft,ft->sf", share, _power(x))
    return sums, weights


def spatial_covariance(sums: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """R_s (n_stems, n_bins, n_channels, n_channels) from ``covariance_sums`` (0 where a stem has
    no power in a bin)."""
    return sums / np.where(weights > 0, weights, 1.0)[..., None, None]


def _chunks(n_frames: int, n_bins: int, n_channels: int) -> list[slice]:
    """Frame ranges of at most WIENER_CHUNK points (bins x frames x channels^2)."""
    frames = max(1, WIENER_CHUNK // (n_bins * n_channels ** 2))
    return [slice(a, a + frames) for a in range(0, n_frames, frames)]


def _power(x: np.ndarray) -> np.ndarray:
    """Mean over channels (axis 0) of |x|^2, float64."""
    return (x.real.astype(np.float64) ** 2 + x.imag.astype(np.float64) ** 2).mean(axis=0)
