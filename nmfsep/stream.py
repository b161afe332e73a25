"""Long inputs in bounded memory: two passes over the input, block by block.

    pass 1  blocks --StftStream--> |X| --> V blocks: the mean magnitude of the whole input (the
            scale) and a subsample of frames spread over all of it (LEARN_SECONDS in segments of
            SEGMENT_SECONDS, evenly spaced from the first frame to the last)
            fit_bases(subsample): W and the stems' groups, in the same way as the in-memory path
            (blind: factorize + grouping + centroid order; supervised: the models; --free:
            semi-supervised). The stem order is decided here, once, for the whole input.
    pass 2  blocks --StftStream--> X (n_channels, n_bins, f) --> V = mean_c |X|
            H = argmin D_beta(V / scale | W H), W fixed        (frames are independent: exact per block)
            M_s = soft masks of W_s H_s --> X M_s --IstftStream--> stem blocks --> write

With W fixed every frame's activations depend on that frame alone: each block starts H from the
same constant (mean(W H) = 1) and runs a fixed number of iterations (no tolerance test, which
would look at the whole block), so a frame's stems do not depend on where the blocks fall. The
STFT frames and the overlap-add of the ISTFT are carried across blocks, so the stems are those
of one ISTFT of the whole input: no seam, and they add up to the input as exactly as in memory.

Memory is the subsample, one block of spectra, and the carried overlaps: it does not grow with
the input. ``Settings.smoothness`` couples neighbouring frames; in pass 2 it is applied within
each block (frames at a block's edges see no neighbour beyond it).
"""

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from . import spectrum
from .pipeline import Fit, Progress, Settings, fit_bases, masks_of

LEARN_SECONDS = 90.0     # audio the bases are learned on (the whole input when shorter)
SEGMENT_SECONDS = 5.0    # contiguous pieces of that subsample
BLOCK_FRAMES = 1024      # STFT frames per block in pass 2 (about 12 s at 44.1 kHz)
STREAM_ITER = 50         # activation iterations per block (at most Settings.max_iter)


class StftStream:
    """The centred STFT of ``spectrum.stft``, fed samples block by block.

    ``push(block)`` returns the spectra (n_channels, n_bins, f) of every frame complete so far;
    ``finish()`` the last ones (zero-padded as ``stft`` pads). Concatenated, they are exactly
    ``spectrum.stft`` of the whole signal.
    """

    def __init__(self, n_channels: int, params: spectrum.StftParams):
        self.params = params
        self.n_samples = 0
        self.n_frames = 0
        self._buffer = np.zeros((n_channels, params.n_fft // 2), np.float32)  # the leading pad

    def push(self, block: np.ndarray) -> np.ndarray:
        """block: float (n_samples, n_channels)."""
        self.n_samples += block.shape[0]
        self._buffer = np.concatenate([self._buffer, np.asarray(block, np.float32).T], axis=1)
        n_fft, hop = self.params.n_fft, self.params.hop_length
        count = 0 if self._buffer.shape[1] < n_fft else 1 + (self._buffer.shape[1] - n_fft) // hop
        return self._take(count)

    def finish(self) -> np.ndarray:
        count = spectrum.n_frames(self.n_samples, self.params) - self.n_frames
        need = (count - 1) * self.params.hop_length + self.params.n_fft
        if count > 0 and self._buffer.shape[1] < need:
            pad = np.zeros((self._buffer.shape[0], need - self._buffer.shape[1]), np.float32)
            self._buffer = np.concatenate([self._buffer, pad], axis=1)
        return self._take(max(count, 0))

    def _take(self, count: int) -> np.ndarray:
        n_fft, hop = self.params.n_fft, self.params.hop_length
        if count == 0:
            return np.zeros((self._buffer.shape[0], self.params.n_bins, 0), np.complex64)
        spectra = spectrum.analyse_frames(self._buffer[:, : (count - 1) * hop + n_fft], self.params)
        self._buffer = self._buffer[:, count * hop :].copy()
        self.n_frames += count
        return spectra


class IstftStream:
    """The inverse of ``spectrum.istft``, fed the spectra of consecutive frames block by block.

    ``push(spectra (..., n_bins, f))`` returns the samples (..., m) that no later frame
    overlaps; ``finish()`` the rest. Concatenated, they are ``spectrum.istft(whole, params,
    length)``: the overlap-add and its window normalisation are carried across blocks.
    """

    def __init__(self, params: spectrum.StftParams, length: int):
        self.params = params
        self.length = length
        self._position = -(params.n_fft // 2)   # of the next finished sample, in input samples
        self._tail = None
        self._norm_tail = None
        self._win2 = spectrum.window(params.n_fft) ** 2

    def push(self, spectra: np.ndarray) -> np.ndarray:
        count = spectra.shape[-1]
        hop = self.params.hop_length
        signal = spectrum._overlap_add(spectrum.synthesis_frames(spectra, self.params), hop)
        norm = spectrum._overlap_add(np.broadcast_to(self._win2, (count, self.params.n_fft)), hop)
        if self._tail is not None:
            overlap = self._tail.shape[-1]
            signal[..., :overlap] += self._tail
            norm[:overlap] += self._norm_tail
        ready = count * hop
        self._tail, self._norm_tail = signal[..., ready:].copy(), norm[ready:].copy()
        return self._emit(signal[..., :ready], norm[:ready])

    def finish(self) -> np.ndarray:
        if self._tail is None:
            return np.zeros((0,), np.float32)
        return self._emit(self._tail, self._norm_tail)

    def _emit(self, signal: np.ndarray, norm: np.ndarray) -> np.ndarray:
        start, stop = self._position, self._position + signal.shape[-1]
        self._position = stop
        first, last = max(0, -start), max(0, min(stop, self.length) - start)
        first = min(first, last)
        return signal[..., first:last] / np.where(norm[first:last] > 1e-10, norm[first:last], 1.0)


def learning_frames(n_frames: int, sample_rate: int, params: spectrum.StftParams) -> np.ndarray:
    """Indices of the frames the bases are learned on: all of them for inputs up to
    LEARN_SECONDS, else segments of SEGMENT_SECONDS evenly spread from the start to the end."""
    budget = max(1, int(LEARN_SECONDS * sample_rate / params.hop_length))
    if n_frames <= budget:
        return np.arange(n_frames)
    segment = max(1, min(budget, int(SEGMENT_SECONDS * sample_rate / params.hop_length)))
    starts = np.linspace(0, n_frames - segment, budget // segment).round().astype(np.int64)
    return np.unique((starts[:, None] + np.arange(segment)).ravel())


def activations(magnitude: np.ndarray, bases: np.ndarray, settings: Settings, n_iter: int) -> np.ndarray:
    """H (k, f) for a block of normalised magnitudes V (n_bins, f), the bases W fixed.

    Every frame starts from the same constant, c with mean(W c) = 1 (the mean of the whole
    normalised input), and runs n_iter iterations: the result does not depend on the block.
    """
    from .nmf import factorize

    k = bases.shape[1]
    row_sums = float(bases.sum(axis=1).mean())
    start = np.full((k, magnitude.shape[1]), 1.0 / row_sums if row_sums > 0 else 1.0, np.float32)
    if row_sums == 0 or n_iter == 0:
        return start * (row_sums > 0)
    return factorize(magnitude, k, W=bases, H=start, init="custom", update_W=False,
                     beta=settings.beta, max_iter=n_iter, tol=0.0, l1_H=settings.sparsity,
                     smooth_H=settings.smoothness).H


@dataclass
class StreamResult:
    """What a streamed separation learned: the stems' names and groups, the bases (fitted on
    the subsample), the fit's iterations and loss, and the input's length in samples."""

    names: list[str]
    fit: Fit
    n_samples: int
    learned_frames: int


def split_stream(blocks: Callable[[], Iterable[np.ndarray]], n_channels: int, sample_rate: int,
                 n_samples_hint: int, settings: Settings, write: Callable[[np.ndarray], None],
                 progress: Progress | None = None, name: str = "input") -> StreamResult:
    """Separate an input read twice, block by block, into settings.stem_names.

    blocks(): an iterator over the input's float32 blocks (n, n_channels) from its start (called
    once per pass). n_samples_hint: its length from the header (it places the subsample; the
    length actually read is used for everything else). write(stems): called with each finished
    block of stems, float32 (n_stems, n, n_channels), in order; together they are the input's
    length.
    """
    settings.check()
    params = settings.stft_params(sample_rate, name)
    block_samples = BLOCK_FRAMES * params.hop_length

    # pass 1: the scale and the subsample
    chosen = learning_frames(spectrum.n_frames(n_samples_hint, params), sample_rate, params)
    subsample = np.zeros((params.n_bins, len(chosen)), np.float32)
    total, kept = 0.0, 0
    analysis = StftStream(n_channels, params)
    for spectra in _spectra(blocks(), analysis, block_samples):
        magnitude = np.abs(spectra).mean(axis=0)
        first = analysis.n_frames - magnitude.shape[1]
        total += float(magnitude.sum(dtype=np.float64))
        lo, hi = np.searchsorted(chosen, [first, analysis.n_frames])
        subsample[:, kept : kept + hi - lo] = magnitude[:, chosen[lo:hi] - first]
        kept += hi - lo
    n_samples, n_frames = analysis.n_samples, analysis.n_frames
    subsample = subsample[:, :kept] if kept else np.zeros((params.n_bins, 1), np.float32)
    scale = total / (n_frames * params.n_bins)
    fit = fit_bases(subsample, scale, settings, sample_rate, params, progress)
    del subsample

    # pass 2: activations, masks and stems, block by block
    n_iter = min(STREAM_ITER, settings.max_iter)
    synthesis = IstftStream(params, n_samples)
    analysis = StftStream(n_channels, params)
    done = 0
    for spectra in _spectra(blocks(), analysis, block_samples):
        magnitude = np.abs(spectra).mean(axis=0)
        if scale > 0:
            magnitude /= np.float32(scale)
            H = activations(magnitude, fit.bases, settings, n_iter)
        else:
            H = np.zeros((fit.bases.shape[1], magnitude.shape[1]), np.float32)
        source_masks = masks_of(fit.bases, H, fit.groups, settings.power)
        stems = synthesis.push(spectra[None] * source_masks[:, None])
        _write(write, stems)
        done += spectra.shape[-1]
        if progress is not None:
            progress(done, n_frames)
    _write(write, synthesis.finish())
    return StreamResult(settings.stem_names, fit, n_samples, kept)


def _spectra(blocks: Iterable[np.ndarray], analysis: StftStream, block_samples: int) -> Iterator[np.ndarray]:
    """Spectra of about block_samples / hop frames each, from blocks of any size."""
    pending = []
    for block in _rebuffer(blocks, block_samples):
        pending.append(analysis.push(block))
        if sum(p.shape[-1] for p in pending) >= block_samples // analysis.params.hop_length:
            yield np.concatenate(pending, axis=-1) if len(pending) > 1 else pending[0]
            pending = []
    pending.append(analysis.finish())
    rest = np.concatenate(pending, axis=-1)
    if rest.shape[-1]:
        yield rest


def _rebuffer(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The same samples in blocks of at most ``size`` (a reader may give any size)."""
    for block in blocks:
        for start in range(0, block.shape[0], size):
            yield block[start : start + size]


def _write(write: Callable[[np.ndarray], None], stems: np.ndarray) -> None:
    if stems.shape[-1]:
        write(np.ascontiguousarray(np.swapaxes(stems, -1, -2)))
