"""Long inputs in bounded memory: two passes over the input, block by block.

    pass 1  segments --STFT--> V subsample: LEARN_SECONDS of frames in segments of
            SEGMENT_SECONDS, evenly spaced from the first frame to the last (read by seeking:
            the whole input when it is shorter); scale = its mean magnitude
            fit_bases(subsample): W and the stems' groups, in the same way as the in-memory path
            (blind: factorize + grouping + centroid order; supervised: the models; --free:
            semi-supervised). The stem order is decided here, once, for the whole input.
    pass 2  blocks --StftStream--> X (n_channels, n_bins, f) --> V = mean_c |X|
            H = argmin D_beta(V / scale | W H), W fixed        (frames are independent: exact per block)
            M_s = soft masks of W_s H_s --> X M_s --IstftStream--> stems 1..S-1;
            stem S = input - (stems 1..S-1), so the stems add up to the input exactly --> write

A blend (nmfsep.blend: built-ins only, or --blend) fits the blind split's bases on the
subsample too and names its stems there; pass 2 then finds both sets of activations per block
and blends the two sets of masks.

With W fixed every frame's activations depend on that frame alone: each block starts H from the
same constant (mean(W H) = 1) and runs a fixed number of iterations (no tolerance test, which
would look at the whole block), so a frame's stems do not depend on where the blocks fall. The
STFT frames and the overlap-add of the ISTFT are carried across blocks, so the stems are those
of one ISTFT of the whole input: no seam, and they add up to the input as exactly as in memory.

Memory is the subsample, one block of spectra, and the carried overlaps: it does not grow with
the input. ``Settings.smoothness`` couples neighbouring frames; in pass 2 it is applied within
each block (frames at a block's edges see no neighbour beyond it), and only where it is given:
blind separation's default smoothness applies to fitting the bases, not to pass 2.
"""

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np

from . import blend, spectrum
from .masks import covariance_sums, source_spectra, spatial_covariance, spatially_filtered
from .errors import NmfsepError
from .fitting import Fit
from .pipeline import IterationCount, Progress, Settings, fit_bases, planned_iterations

LEARN_SECONDS = 90.0     # audio the bases are learned on (the whole input when shorter)
SEGMENT_SECONDS = 5.0    # contiguous pieces of that subsample
BLOCK_FRAMES = 1024      # STFT frames per block in pass 2 (about 12 s at 44.1 kHz)
STREAM_ITER = 20         # activation iterations per block (at most Settings.max_iter): 20, 30 and 50
                         # gave the same SI-SDR (within 0.05 dB, bench_long's material); the solve,
                         # most of pass 2's time, costs in proportion


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
        self.finished = False
        self._buffer = np.zeros((n_channels, params.n_fft // 2), np.float32)  # the leading pad

    def push(self, block: np.ndarray) -> np.ndarray:
        """block: float (n_samples, n_channels)."""
        self.n_samples += block.shape[0]
        self._buffer = np.concatenate([self._buffer, np.asarray(block, np.float32).T], axis=1)
        n_fft, hop = self.params.n_fft, self.params.hop_length
        count = 0 if self._buffer.shape[1] < n_fft else 1 + (self._buffer.shape[1] - n_fft) // hop
        return self._take(count)

    def finish(self) -> np.ndarray:
        self.finished = True
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
    length)``: the overlap-add and its window normalisation are carried across blocks. length
    may be None while it is unknown; it must be set before the samples near the end come out.
    """

    def __init__(self, params: spectrum.StftParams, length: int | None):
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
        end = stop if self.length is None else min(stop, self.length)
        first, last = max(0, -start), max(0, end - start)
        first = min(first, last)
        return signal[..., first:last] / np.where(norm[first:last] > 1e-10, norm[first:last], 1.0)


class Reader(Protocol):
    """An input read twice: ``blocks(n)`` yields float32 (<= n, n_channels) blocks from the start,
    ``read_range(start, n)`` the samples [start, start + n) (fewer at the end)."""

    def blocks(self, n_samples: int) -> Iterable[np.ndarray]: ...

    def read_range(self, start: int, n_samples: int) -> np.ndarray: ...


class ArrayReader:
    """A Reader over samples already in memory (n_samples, n_channels), in blocks of at most
    ``block`` samples (tests, and the Python API)."""

    def __init__(self, samples: np.ndarray, block: int | None = None):
        self.samples, self.block = samples, block

    def blocks(self, n_samples: int) -> Iterator[np.ndarray]:
        size = min(n_samples, self.block or n_samples)
        for start in range(0, len(self.samples), size):
            yield self.samples[start : start + size]

    def read_range(self, start: int, n_samples: int) -> np.ndarray:
        return self.samples[start : start + n_samples]


def learning_segments(n_frames: int, sample_rate: int, params: spectrum.StftParams) -> list[tuple[int, int]]:
    """Frame ranges [start, stop) the bases are learned on: all frames for inputs up to
    LEARN_SECONDS, else segments of SEGMENT_SECONDS evenly spread from the start to the end."""
    budget = max(1, int(LEARN_SECONDS * sample_rate / params.hop_length))
    if n_frames <= budget:
        return [(0, n_frames)]
    segment = max(1, min(budget, int(SEGMENT_SECONDS * sample_rate / params.hop_length)))
    starts = np.linspace(0, n_frames - segment, budget // segment).round().astype(np.int64)
    return [(int(a), int(a) + segment) for a in starts]


def segment_spectra(reader: Reader, n_channels: int, start: int, stop: int,
                    params: spectrum.StftParams) -> np.ndarray:
    """The STFT frames [start, stop) of the input, exactly as ``spectrum.stft`` of all of it
    frames them (zeros before the input's start and after its end), read by seeking."""
    pad, hop = params.n_fft // 2, params.hop_length
    first, last = start * hop - pad, (stop - 1) * hop + params.n_fft - pad   # input samples
    padded = np.zeros((n_channels, last - first), np.float32)
    block = reader.read_range(max(first, 0), last - max(first, 0))
    padded[:, max(-first, 0) : max(-first, 0) + block.shape[0]] = block.T
    return spectrum.analyse_frames(padded, params)


def subsample_covariance(reader: Reader, n_channels: int, segments: list[tuple[int, int]],
                         params: spectrum.StftParams, subsample_masks: Callable[[slice], np.ndarray]) -> np.ndarray:
    """The spatial covariance of each stem (nmfsep.masks.spatial_covariance) over the subsample:
    its segments read again, complex, each with its masks (``subsample_masks(frames)``: the
    frames of the subsample, in the segments' order)."""
    sums, weights, offset = 0.0, 0.0, 0
    for a, b in segments:
        pieces = covariance_sums(segment_spectra(reader, n_channels, a, b, params),
                                 subsample_masks(slice(offset, offset + b - a)))
        sums, weights, offset = sums + pieces[0], weights + pieces[1], offset + b - a
    return spatial_covariance(sums, weights)


def activations(magnitude: np.ndarray, bases: np.ndarray, settings: Settings, n_iter: int) -> tuple[np.ndarray, int]:
    """(H (k, f), iterations run) for a block of normalised magnitudes V (n_bins, f), the bases
    W fixed.

    Every frame starts from the same constant, c with mean(W c) = 1 (the mean of the whole
    normalised input), and runs n_iter iterations: the result does not depend on the block.
    """
    from .nmf import factorize

    k = bases.shape[1]
    row_sums = float(bases.sum(axis=1).mean())
    start = np.full((k, magnitude.shape[1]), 1.0 / row_sums if row_sums > 0 else 1.0, np.float32)
    if row_sums == 0 or n_iter == 0:
        return start * (row_sums > 0), 0
    result = factorize(magnitude, k, W=bases, H=start, init="custom", update_W=False,
                       beta=settings.beta, max_iter=n_iter, tol=0.0, l1_H=settings.sparsity,
                       smooth_H=settings.smoothness or 0.0)  # only if asked: the blind default
    # (BLIND_SMOOTHNESS) shapes the bases fitted on the subsample, not these per-block activations
    return result.H, result.n_iter


def block_activations(magnitude: np.ndarray, bases: np.ndarray, settings: Settings, n_iter: int,
                      scale: float) -> tuple[np.ndarray, int]:
    """``activations`` of a block, or zeros (and 0 iterations) where the input is digital
    silence (scale 0)."""
    if scale > 0:
        return activations(magnitude, bases, settings, n_iter)
    return np.zeros((bases.shape[1], magnitude.shape[1]), np.float32), 0


@dataclass
class StreamResult:
    """What a streamed separation learned: the stems' names and groups, the bases (fitted on
    the subsample), the fit's iterations and loss, and the input's length in samples."""

    names: list[str]
    fit: Fit
    n_samples: int
    learned_frames: int
    iterations_run: int = 0  # solver iterations of both passes: the fit's and every block's
    blend: float = 0.0  # the blind split's share in the masks (pipeline.Separation.blend)


def split_stream(reader: Reader, n_channels: int, sample_rate: int, n_samples_hint: int,
                 settings: Settings, write: Callable[[np.ndarray], None],
                 progress: Progress | None = None, name: str = "input") -> StreamResult:
    """Separate an input read in two passes, block by block, into settings.stem_names.

    reader: the input (see Reader; ``ArrayReader`` for samples in memory). n_samples_hint: its
    length from the header (it places the subsample; pass 2 reads to the real end).
    write(stems): called with each finished block of stems, float32 (n_stems, n, n_channels), in
    order; together they are the input's length. progress(done, total): solver iterations of
    both passes, the total planned from the start and true at the end (pipeline.IterationCount).
    """
    settings.check()
    if settings.separation_rate(sample_rate) != sample_rate:
        raise NmfsepError(f"{name}: {cannot_resample(sample_rate, settings)}")
    params = settings.stft_params(sample_rate, name)
    block_samples = BLOCK_FRAMES * params.hop_length

    # pass 1: the subsample and its scale
    segments = learning_segments(spectrum.n_frames(max(n_samples_hint, 1), params), sample_rate, params)
    # the mean magnitude over channels, and the outer channels' for the grouping's stereo cue
    spectra = [np.abs(segment_spectra(reader, n_channels, a, b, params)) for a, b in segments]
    subsample = np.concatenate([s.mean(axis=0) for s in spectra], axis=1)
    channels = np.concatenate([s[[0, -1]] for s in spectra], axis=2) if n_channels > 1 else None
    del spectra
    scale = float(subsample.mean(dtype=np.float64))
    n_iter = min(STREAM_ITER, settings.max_iter)
    n_blocks = -(-spectrum.n_frames(max(n_samples_hint, 1), params) // BLOCK_FRAMES)  # about
    share, counterpart, other, order = settings.blind_share, settings.blind_counterpart(), None, None
    per_block = n_iter * (2 if share else 1)  # with a blend, the blind split's activations too
    count = IterationCount(progress, planned_iterations(settings, subsample.shape[1]) + n_blocks * per_block)
    fit = fit_bases(subsample, scale, settings, sample_rate, params, count=count, channels=channels)
    if share:  # the blind split to blend with (nmfsep.blend), its stems named on the subsample
        other = fit_bases(subsample, scale, counterpart, sample_rate, params, count=count, channels=channels)
        normalised = subsample / np.float32(scale or 1.0)
        found = fit.masks(fit.activations, settings.mask_power(fit.n_averaged), normalised)
        theirs = other.masks(other.activations, counterpart.mask_power(other.n_averaged), normalised)
        order = blend.match(found, theirs, subsample)
        if blend.clash(found, theirs[order], subsample) > blend.CLASH:  # the models' masks alone
            share, other, per_block = 0.0, None, n_iter
            count.ran(0, n_blocks * n_iter)  # the blind split's block activations are not run
        del normalised, found, theirs

    def block_masks(H: np.ndarray, H_other: np.ndarray | None, magnitude: np.ndarray) -> np.ndarray:
        """The masks of frames of normalised magnitudes with these activations of fit's bases
        (and of the blind split's, H_other, blended in where there is one)."""
        found = fit.masks(H, settings.mask_power(fit.n_averaged), magnitude)
        if other is None:
            return found
        theirs = other.masks(H_other, counterpart.mask_power(other.n_averaged), magnitude)
        return blend.combine(found, theirs[order], share)

    def subsample_masks(frames: slice) -> np.ndarray:
        """The masks of these frames of the subsample, as pass 2 makes a block's."""
        return block_masks(fit.activations[:, frames], None if other is None else other.activations[:, frames],
                           subsample[:, frames] / np.float32(scale or 1.0))

    covariance = None  # the sources' spatial covariances (nmfsep.masks.source_spectra), of the subsample
    if spatially_filtered(n_channels, len(fit.groups)) and scale > 0:
        covariance = subsample_covariance(reader, n_channels, segments, params, subsample_masks)
    learned = subsample.shape[1]
    del subsample, channels

    # pass 2: activations, masks and stems, block by block
    synthesis = IstftStream(params, None)
    analysis = StftStream(n_channels, params)
    inputs = _Fifo()
    for spectra in _spectra(reader.blocks(block_samples), analysis, block_samples, inputs):
        magnitude = np.abs(spectra).mean(axis=0)
        if scale > 0:
            magnitude /= np.float32(scale)
        H, ran = block_activations(magnitude, fit.bases, settings, n_iter, scale)
        H_other = None
        if other is not None:
            H_other, ran_other = block_activations(magnitude, other.bases, counterpart, n_iter, scale)
            ran += ran_other
        source_masks = block_masks(H, H_other, magnitude)
        if analysis.finished:
            synthesis.length = analysis.n_samples
        kept = np.empty((len(source_masks) - 1, *spectra.shape), np.complex64)  # the last stem: the remainder
        for i, source in zip(range(len(kept)), source_spectra(spectra, source_masks, covariance)):
            kept[i] = source
        stems = synthesis.push(kept)
        _write(write, _with_remainder(stems, inputs, len(fit.groups)))
        n_blocks -= 1
        count.ran(ran, per_block if n_blocks >= 0 else 0)  # a block beyond the estimate adds its own
    count.ran(0, max(n_blocks, 0) * per_block)  # fewer blocks than estimated: the total drops to the count
    synthesis.length = analysis.n_samples
    _write(write, _with_remainder(synthesis.finish(), inputs, len(fit.groups)))
    return StreamResult(settings.stem_names, fit, analysis.n_samples, learned, count.done, share)


def cannot_resample(sample_rate: int, settings: Settings) -> str:
    """Why an input at sample_rate cannot be streamed with settings' models, learned at another
    rate, and the fix (learning them again is one only for the user's own models)."""
    rate = settings.separation_rate(sample_rate)
    relearn = "" if all(m.builtin for m in settings.models) else f", or learn the models at {sample_rate} Hz"
    return (f"a streamed separation cannot resample {sample_rate} Hz to the models' {rate} Hz: resample it "
            f"first (e.g. sox IN -r {rate} OUT){relearn}")


class _Fifo:
    """Input samples (n_channels, n) waiting for their stems."""

    def __init__(self):
        self.parts = []

    def push(self, samples: np.ndarray) -> None:
        self.parts.append(samples)

    def take(self, n: int) -> np.ndarray:
        whole = np.concatenate(self.parts, axis=-1) if len(self.parts) > 1 else self.parts[0]
        self.parts = [whole[:, n:]]
        return whole[:, :n]


def _with_remainder(stems: np.ndarray, inputs: _Fifo, n_stems: int) -> np.ndarray:
    """Stems 1..S-1 (S-1, n_channels, n) and, last, what of the input they leave."""
    mixture = inputs.take(stems.shape[-1])
    rest = (mixture - stems.sum(axis=0))[None]
    return np.concatenate([stems, rest]) if n_stems > 1 else rest


def _spectra(blocks: Iterable[np.ndarray], analysis: StftStream, block_samples: int,
             inputs: _Fifo) -> Iterator[np.ndarray]:
    """Spectra of about block_samples / hop frames each, from blocks of any size; the samples
    read are queued in ``inputs``."""
    pending = []
    for block in _rebuffer(blocks, block_samples):
        inputs.push(np.asarray(block, np.float32).T)
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
