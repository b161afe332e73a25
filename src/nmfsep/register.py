"""A voice over music, by its pitch: ``speech_high`` for a high voice, and its harmonics in the masks.

The built-in ``speech`` is learned mostly from low voices (45 of its 59 speakers), and beside
``music`` a high voice is better modelled by ``speech_high``. The split does not need to be told:
where its models are exactly the built-ins ``speech`` and ``music``, it splits with them, takes
the median pitch of the speech stem, and where that is above HIGH_HZ splits again with
``speech_high`` in place of ``speech`` (the blind split of the blend is made once and used by
both). The stem keeps the name ``speech``; the JSON record says which built-in split it.

Mean SI-SDRi (dB) of the speech + music mixtures of four validation sets, ``speech`` -> the
high register picked by this module (mixtures that gained / lost more than 0.05 dB); last column,
from the same experiment with pYIN at 16 kHz: each voice split with ``speech_high`` above 165 Hz
and ``speech_low`` below:

    set (validation)                               speech   picked here       high above / low below
    the corpus' validation split (12)                7.79    8.15 (2 / 0)      8.61 (8 / 4)
    40 per class (the 12 above among them)           6.75    6.94 (5 / 0)      7.24 (23 / 16)
    12 recorded klettres women's voices              4.48    4.99 (9 / 1)      4.41 (9 / 3)
    12 espeak-ng men's voices                        5.54    5.54 (0 / 0)      5.61 (7 / 4)

So only the high register is picked: ``speech_low`` for a low pitch gains little on low voices,
and loses where the pitch misleads (two recorded women's voices measured at 99 and 140 Hz lost
2.4 and 4.0 dB with it). Thresholds from 140 to 170 Hz picked the same voices but one or two
of a set; 165 Hz is where the built-ins' registers were split (recorded speakers by median
pitch). With ``--blend 0`` the pick gained too (the corpus' 12: 5.53 -> 6.07; recorded women's
voices 3.10 -> 4.03). Beside ``noise`` the register lost on three sets of four (its pair with
``noise`` has no unfolded layers, that of ``speech`` eight); three sources or more and --free
were not measured: there the split keeps ``speech``, as it does for a streamed input
(nmfsep.stream). On the corpus' test split, speech + music +8.15 -> +8.50 dB (3 of its 4 high
voices gained 1.0 to 1.5 dB, one lost 0.12), at 1.91x the blind default's time against 1.87x.

The same pitch track (YIN on the speech stem, at the STFT's frames) then gives the voice a
harmonic mask (``harmonic_masks``: in its voiced frames high on the harmonics of f0 and low
between them; in its quiet frames low), which weighs HARMONIC_SHARE in the geometric mean of the
masks (the music's: one less it; nmfsep.blend.combine). Music between a voice's harmonics is
music, and so is most of what the quiet frames of the voice's stem hold. Validation sets, the
register pick above -> with the harmonics (gained / lost more than 0.05 dB):

    set (validation)                               picked   harmonics at 0.2    as now
    the corpus' validation split (12)                8.15    8.51 (8 / 2)        8.69 (7 / 3)
    40 per class (the 12 above among them)           6.94    7.32 (31 / 6)       7.61 (31 / 5)
    12 recorded klettres women's voices              4.99    5.22 (8 / 3)        5.49 (9 / 1)
    12 espeak-ng men's voices                        5.54    5.67 (7 / 4)        5.85 (9 / 1)

"At 0.2": the louder half of the frames voiced, the quiet half even (0.5, so the mask only
softened the masks there), f0 as YIN read it. "As now" (the last column against the one before
it: no mixture lost more than 0.21 dB): the louder 60% voiced (VOICED_QUANTILE), the rest at
UNVOICED_MASK, each f0 moved by octaves to within half an octave of the median pitch, at 0.25.
In the experiment that chose these (76 mixtures, the masks of each split kept and the mask
varied; mean change against "at 0.2"): quiet frames at 0.3 / 0.1 / 0.05 +0.07 / +0.12 / +0.13;
octaves folded +0.03; voiced above the 30% / 40% / 50% quantile (folded, quiet at 0.1) +0.20 /
+0.21 / +0.15; at 0.25 / 0.3 +0.27 (55 gained, 8 lost) / +0.29 (48 / 15). YIN's f0 on the clean
voice instead of the stem's, an upper bound, gave +0.29, and with the clean voice's loud frames
as the voiced ones +0.58; voicing by how much of the stem's energy lies on the harmonics, or by
the stem's share of the mixture's energy, did worse than its loudness. The register pick keeps
the louder half of the frames (``median_pitch``): the louder 60% moved two voices across 165 Hz,
and both lost 0.56 dB. Pitch by pYIN did about as well as YIN, at 40x the time. Narrower
harmonics (0.75 bin) with YIN's frame halved gained 0.08 but moved a voice across 165 Hz; wider
ones (1.5 bins, or widening with the harmonic's number) lost 0.05 to 0.12.
An instrument's harmonic mask beside ``drums`` (its stem's track, at 0.2) gained 0.45 dB on the
52 drums + instrument mixtures of two validation sets, whose instruments play lines, but lost
on 8 of 16 of the same mixtures with every note a chord (mean -0.08, up to -1.08), and the share
of the stem's energy on the harmonics did not tell chords from lines: it is not used.
Beside ``noise`` the harmonic mask lost on recorded voices (12 recorded women's voices in noise
11.29 -> 11.08 at 0.2; 11.23 at 0.1), so it is used beside ``music`` only. On the corpus' test
split, speech + music +8.50 -> +8.91 dB with the harmonics at 0.2 (9 of 10 gained up to 0.94 dB,
one lost 0.20), at 1.98x the blind default's time against 1.91x; -> +9.10 as now (8 gained up
to 0.61, 2 lost up to 0.48); -> +9.12 with a stereo stem's pitch on its channels' principal axis
(``principal_channel``; validation: the corpus' 8.69 -> 8.76, 40 per class 7.61 -> 7.65); +9.60
over all 12 of its mixtures (the benchmark had left out the two whose track is too short for a
clip, which the built-ins do not need).
"""

import numpy as np

from . import blend

HIGH_HZ = 165.0  # a speech stem whose median pitch is above this is split again with speech_high
PITCH_RANGE_HZ = (60.0, 450.0)  # the pitches YIN looks for: a voice's, low men's to children's
FRAME_SECONDS = 0.09  # YIN's frame: at least two periods of the lowest pitch
OFFSET_ONLY = 1e-3  # pitch_track: samples that move less than this share of their peak about their mean are DC
GRAM_CHUNK = 1 << 16  # principal_channel's samples at a time
TRACK_CHUNK_FRAMES = 512  # pitch_track's frames at a time: YIN's memory (34 MB a chunk at 22.05 kHz; 1.2 GB for 5 minutes at once)
VOICED_QUANTILE = 0.4  # harmonic_masks' voiced frames: those louder than this quantile of the track's
HARMONIC_SHARE = 0.25  # the voice's harmonic masks' share in the masks (see the module's docstring)
HARMONIC_WIDTH = 0.04  # a harmonic's width in harmonic_masks, in harmonics
UNVOICED_MASK = 0.1  # harmonic_masks' value in the quiet frames of the voice's stem


def voice_beside_music(settings) -> int | None:
    """The index of the built-in ``speech`` among the models of settings (nmfsep.pipeline.Settings)
    where they are exactly the built-ins ``speech`` and ``music``, in either order, with no free
    bases (--free: not measured); else None."""
    models = settings.models
    if len(models) != 2 or not all(m.builtin for m in models) or settings.n_free:
        return None
    names = [m.name for m in models]
    return names.index("speech") if sorted(names) == ["music", "speech"] else None


def pitch_track(samples: np.ndarray, sample_rate: int, hop_length: int, n_frames: int):
    """The pitch of mono float samples (n_samples,) in n_frames frames hop_length apart, frame i
    centred on sample i * hop_length as nmfsep.spectrum.stft's are: (f0 (n_frames,) in Hz, level
    (n_frames,): each frame's rms about the samples' mean), or None where the samples are silent,
    a constant offset (DC: they move less than OFFSET_ONLY of their peak about their mean) or
    shorter than a frame (no pitch to go by). The samples go to YIN less their mean and over their
    peak: the same pitch at any level and offset. f0 by YIN (``yin``) within PITCH_RANGE_HZ, in frames of FRAME_SECONDS (a
    power of two of samples), TRACK_CHUNK_FRAMES at a time."""
    frame = 2 ** int(np.ceil(np.log2(FRAME_SECONDS * sample_rate)))
    if samples.shape[0] < frame:
        return None
    offset = float(samples.mean(dtype=np.float64))
    low_end, high_end = float(samples.min()), float(samples.max())
    peak = max(high_end - offset, offset - low_end)
    if not peak > OFFSET_ONLY * max(high_end, -low_end):
        return None  # silent, or a constant offset (DC): no pitch, where YIN would read its range's floor
    low, high = PITCH_RANGE_HZ
    # centred frames, zeros beyond; less the offset (YIN's difference function as librosa computes
    # it is not blind to one), over the peak (a very quiet input's squares underflow in YIN's float32)
    padded = np.zeros(samples.shape[0] + 2 * (frame // 2) + hop_length, np.float32)
    body = padded[frame // 2:frame // 2 + samples.shape[0]]
    np.subtract(samples, np.float32(offset), out=body)
    body /= np.float32(peak)
    f0, level = np.empty(n_frames), np.empty(n_frames)
    for first in range(0, n_frames, TRACK_CHUNK_FRAMES):  # YIN holds every frame's spectrum: in chunks
        last = min(n_frames, first + TRACK_CHUNK_FRAMES)
        frames = np.lib.stride_tricks.sliding_window_view(padded[first * hop_length:], frame)[::hop_length][:last - first].T
        f0[first:last] = yin(frames, sample_rate, low, min(high, sample_rate / 4))
        level[first:last] = peak * np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=0))
    return f0, level


def yin(frames: np.ndarray, sample_rate: int, low_hz: float, high_hz: float, threshold: float = 0.1) -> np.ndarray:
    """The f0 (n_frames,) in Hz of each column of frames (frame_length, n_frames) by YIN (de
    Cheveigné & Kawahara 2002, "YIN, a fundamental frequency estimator for speech and music", JASA
    111(4)): the first lag whose cumulative mean normalized difference is a local minimum below
    threshold (else its global minimum), refined by parabolic interpolation, within low_hz to
    high_hz. librosa.yin's steps, in NumPy (tests/test_register.py checks they agree): librosa's
    compiles its helpers with numba, 12 s on the first split after an install and 0.6 s of imports
    in every process after."""
    import scipy.fft  # here, not at the top: ~0.1 s that every nmfsep command would pay at start-up

    length = frames.shape[0]
    min_period = int(np.floor(sample_rate / high_hz))
    max_period = min(int(np.ceil(sample_rate / low_hz)), length - 1)
    size = scipy.fft.next_fast_len(2 * length - 1, real=True)
    acf = np.fft.irfft(np.abs(np.fft.rfft(frames, n=size, axis=0)) ** 2, n=size, axis=0)[:max_period + 1]
    energy = np.cumsum(np.square(frames), axis=0)
    difference = np.zeros((max_period + 1, frames.shape[1]), energy.dtype)
    difference[1:] = 2 * (acf[:1] - acf[1:]) - energy[:max_period]      # d(lag), eq. 6 of the paper
    lags = np.arange(1, max_period + 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):  # silent frames: 0 / 0, set to 0 as librosa does
        cmnd = difference[min_period:] / (np.cumsum(difference[1:], axis=0) / lags)[min_period - 1:]  # eq. 8
    cmnd[~np.isfinite(cmnd)] = 0.0
    before, here, after = cmnd[:-2], cmnd[1:-1], cmnd[2:]
    curve, slope = after + before - 2 * here, (after - before) / 2
    shift = np.zeros_like(cmnd)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift[1:-1] = np.where(np.abs(slope) >= np.abs(curve), 0.0, -slope / curve)
    trough = np.zeros(cmnd.shape, bool)
    trough[0] = cmnd[0] < cmnd[1]
    trough[1:-1] = (here < before) & (here <= after)
    trough[-1] = cmnd[-1] < cmnd[-2]
    trough &= cmnd < threshold
    period = np.where(trough.any(axis=0), np.argmax(trough, axis=0), np.argmin(cmnd, axis=0))
    columns = np.arange(cmnd.shape[1])
    return sample_rate / (min_period + period + shift[period, columns])


def principal_channel(samples: np.ndarray) -> np.ndarray:
    """Mono float32 samples (n_samples,) from samples (n_samples, n_channels): their projection on
    the channels' principal axis (the mean of the channels where they are in phase; their
    difference where a voice is in opposite phase in two, which the mean would cancel)."""
    if samples.shape[1] == 1:
        return samples[:, 0]
    gram = np.zeros((samples.shape[1], samples.shape[1]))  # in float64, where a very quiet input's squares live
    for first in range(0, samples.shape[0], GRAM_CHUNK):  # a block at a time: no float64 copy of the samples
        block = samples[first:first + GRAM_CHUNK].astype(np.float64)
        gram += block.T @ block
    axis = np.linalg.eigh(gram)[1][:, -1]
    axis *= np.sign(axis.sum()) or 1.0
    return (samples @ axis.astype(np.float32)) / np.float32(np.sqrt(samples.shape[1]))


def median_pitch(track) -> float | None:
    """The median f0 (Hz) of the louder half of the frames of a ``pitch_track``; None for None or
    where no frame is louder than the median."""
    if track is None:
        return None
    f0, level = track
    louder = level > np.median(level)
    return float(np.median(f0[louder])) if louder.any() else None


def harmonic_masks(track, n_bins: int, n_fft: int, sample_rate: int, pitch: float | None = None) -> np.ndarray:
    """A voice's mask from its ``pitch_track`` alone (n_bins, n_frames), float32: in a voiced frame
    near 0.95 on the harmonics of f0 and 0.05 between them and below 0.8 f0 (a harmonic HARMONIC_WIDTH
    harmonics wide, at least one bin), UNVOICED_MASK in the other frames (the quiet ones of the
    voice's stem: mostly music). Voiced: the frames louder than the VOICED_QUANTILE of the track's
    frames. Each voiced frame's f0 is first moved by octaves to within half an
    octave of the median pitch (YIN's octave errors; pitch: the track's ``median_pitch`` where the
    caller has it, None: worked out here). The harmonic mask of pitch-based separation
    of a voice from its accompaniment (Li & Wang 2007, IEEE TASLP 15(4))."""
    f0, level = track
    voiced = level > np.quantile(level, VOICED_QUANTILE)
    pitch = median_pitch(track) if pitch is None else pitch
    if pitch is not None:
        f0 = f0 * 2.0 ** -np.round(np.log2(f0 / pitch))
    f0 = np.where(voiced, f0, 1.0).astype(np.float32)[None, :]
    freqs = (np.arange(n_bins, dtype=np.float32) * np.float32(sample_rate / n_fft))[:, None]
    mask = freqs / f0                                                 # in harmonics (float32: long inputs)
    mask -= np.round(mask)
    mask /= np.maximum(np.float32(HARMONIC_WIDTH), np.float32(sample_rate / n_fft) / f0)
    np.square(mask, out=mask)
    mask *= np.float32(-0.5)
    np.exp(mask, out=mask)
    mask *= np.float32(0.9)
    mask += np.float32(0.05)
    mask[freqs < np.float32(0.8) * f0] = 0.05
    mask[:, ~voiced] = UNVOICED_MASK
    return mask


def with_harmonics(source_masks: np.ndarray, voice: int, track, n_fft: int, sample_rate: int,
                   pitch: float) -> np.ndarray:
    """source_masks (2, n_bins, n_frames) of a voice (index voice) beside music with the voice's
    ``harmonic_masks`` (of its pitch_track ``track`` and its median_pitch ``pitch``; the music's:
    one less them) in their geometric mean at HARMONIC_SHARE (nmfsep.blend.combine)."""
    harmonic = harmonic_masks(track, source_masks.shape[1], n_fft, sample_rate, pitch)
    expert = np.stack([harmonic if s == voice else 1 - harmonic for s in range(len(source_masks))])
    return blend.combine(source_masks, expert, HARMONIC_SHARE)


def with_high_voice(settings, voice: int):
    """The settings (nmfsep.pipeline.Settings) with the built-in ``speech_high`` in place of the
    model at index voice, and their shipped pair training (nmfsep.supervised.train_models)."""
    from dataclasses import replace

    from .models import load
    from .supervised import train_models

    models = list(settings.models)
    models[voice] = load("speech_high")
    return train_models(replace(settings, models=tuple(models), trained=None))
