"""Blending a split with models and the blind split of the same input.

The built-in models describe a class of sound (any voice, any noise), not the sources of the
file, and the blind default knows no class: the two go wrong in different places, and a mean of
their masks beats either alone. The mean is geometric (log-linear pooling, a product of experts:
Hinton 2002, "Training products of experts by minimizing contrastive divergence", Neural
Computation 14(8)): a point that either split is sure belongs to no stem stays out of it, where
the arithmetic mean would give it half. On the corpus' validation split (every mixture whose
sources the built-ins name, 75 of them; stereo ones through the multichannel Wiener filter;
mean SI-SDRi in dB), by the share of the blind split in the masks:

    share of the blind split     0 (models)   arithmetic mean               geometric mean   1 (blind,
                                              0.25   0.5    0.75            0.4    0.5    0.6      named)
    speech + noise                 9.68      10.98  11.60  11.44          12.95  12.98  12.79    10.22
    speech + music                 5.02       6.40   7.33   7.56           7.09   7.51   7.80     6.93
    drums + pitched                6.64       8.48  10.08  11.38          11.65  11.87  11.94    11.53
    talkers, man + woman           8.58       9.20   9.16   8.32           9.67   9.78   9.72     6.65
    three mixed                    6.04       6.80   6.89   6.24           6.88   6.95   6.90     4.28
    two pitched, far               0.77       1.97   2.89   3.42           3.97   4.63   4.84     2.71
    two pitched, same             -0.49       1.55   2.98   3.85           2.79   3.30   3.57     3.41
    mean of the classes            5.18       6.48   7.28   7.46           7.86   8.15   8.22     6.53

The geometric mean at 0.5 beats the arithmetic one at 0.5 on every class (59 of the 75
mixtures gain, 14 lose: mostly ones whose blind stems were named the wrong way round, a mistake
the product sharpens). 0.6 is 0.07 dB better on the mean, but the two halves of the split (even
and odd ids) disagree on it (+0.29 and -0.16 against 0.5), so the share stays 0.5. Sharper or
softer products ((...)^1.5, ^0.75 at 0.5) gave 7.89 and 8.03.

Beside the built-in ``noise`` the blind split's share is NOISE_SHARE (0.35), not 0.5. Blind NMF
is confidently wrong about a voice in steady broadband noise (its factorizations agree on setting a
small part of the voice apart and leaving the rest with the noise), and at 0.5 the product lets
that confidence veto the model: a new-user check of mono espeak-ng voices in pink and white noise
lost 0.75 dB against the arithmetic mean (4.38 -> 0.70, 5.19 -> 2.40, 6.80 -> 5.18 dB on three of
8 files), and so did the test split's mono speech + noise mixtures (-0.49). Until then the mean
beside ``noise`` was arithmetic; a lower share keeps the product and beats it. Every mixture
with ``noise`` among its built-ins, in four sets (mean SI-SDRi in dB; the corpus' validation and
train splits, and two sets of 12 mono voices in noise made from the validation split's clips by
benchmarks/make_voice_sets.py: recorded klettres speakers and espeak-ng voices, in its coloured and
recorded noises at -6 to +6 dB):

    beside noise                 arithmetic 0.5   geometric 0.2   0.3     0.35    0.4     0.5
    recorded voices, mono              9.08           10.13       10.31   10.28   10.17   9.77
    espeak-ng voices, mono             9.45           10.41        9.98    9.71    9.45   9.00
    validation, speech + noise        11.69           12.15       12.81   12.99   13.09   13.08
    validation, three sources          7.48            6.79        7.13    7.30    7.46   7.73
    train, speech + noise              9.66           10.02       10.14   10.14   10.11   9.94
    train, three sources               6.86            6.32        6.66    6.82    6.96   7.18

0.3 to 0.4 is a plateau (mean gain over the 65 mixtures, 12 + 12 + 12 + 7 + 16 + 6 by row:
+0.59, +0.60, +0.58 dB; 0.5: +0.43); 0.35
is its middle, where no set of voices in noise loses (the fewest: +0.26) and three sources lose at
most 0.18. Other pairs keep 0.5: speech + music at 0.35 lost on all three sets that have it
(validation 7.63 -> 7.00, recorded voices 4.18 -> 3.97, espeak-ng 5.21 -> 5.14). On the test
split, against the arithmetic mean: speech + noise 6.17 -> 6.02 (stereo +0.39, mono -0.63; its
crackling fire and thunder -0.7 to -1.3), three sources 6.64 -> 7.23 (7 of 11 gained, none lost).
A new-user check of 30 voices in noise of its own: the voice stem +9.07 -> +9.62 (19 gained, 6
lost); 32 voices in pink noise +8.79 -> +8.92, where 0.2 gave +9.26 and mono espeak-ng voices
still lost (+5.32 -> +4.55; the models alone +6.85).

Where the two splits describe different sources, the blind split is left out (``clash``). In a
changing recorded noise blind NMF can be sure of a wrong split: a new-user check's recorded voice
in supertux's waterfall (44.1 kHz stereo, the voice 5 dB above the noise) gave the voice -4.25 dB
blended and +7.30 with the models alone. The sign is how much of the input's magnitude lies where
each split is sure (a mask above SURE) of a different stem. On 120 validation mixtures of a voice
and noise with ``speech`` and ``noise`` (klettres' uk and he speakers and espeak-ng voices, in
the validation split's noise clips and in the raw waterfall recording looped; mono and stereo,
16 to 44.1 kHz, the noise -8 to +6 dB from the voice) it was at most 0.24 or at least 0.42, and
each of the 6 at 0.42 or more lost with the blend (-1.3 to -5.3 dB on the voice against the
models alone), the most where the blind voice stem holds what the models call noise. Above CLASH
(0.3) the masks are the models' alone: the voice's mean SI-SDRi went +8.94 -> +9.11 (the raw
waterfall's 24: +6.92 -> +7.54, the models alone +7.52; the others' 96 did not lose). The corpus'
validation splits (12 and 40 per class, every class) had 3 of 328 mixtures above it, all of two
instruments or drums: +1.1, +1.0 and -4.6 dB (the class means 8.54 -> 8.55 and 8.91 -> 8.89).
On the test split it changed 2 of its 79 (two instruments of one register, -31 -> -9 dB both);
voices of its own speakers (ru, da) in its recorded fire and thunder: none of 24.

Models of one's own (learned from other clips of the same sources) were measured blended by
default at 0.25 of a geometric mean: on validation +0.70 dB over the 8 supervised classes (7
gained) and one's own voice beside ``noise`` 14.87 -> 16.29; on the test split supervised 11.28
-> 11.72. But a new-user check lost up to 4.1 dB on one's own voice in pink or white noise, gained
only 0.3 on voices and instruments, and the blind split doubled the time of every split (the
first split with two models of one's own at 44.1 kHz: 3.44x a blind split against 2.74x). They
stay unblended unless asked (``--blend``).

One's own model beside a built-in other than ``noise`` is blended at BUILTIN_SHARE: the built-in
knows only a class of sound, as in a set of built-ins. One's own voice (learned from other clips
of the same speaker) beside ``music`` gained on every set it was measured on (mean SI-SDRi, dB,
unblended -> 0.5): the corpus' validation split +9.86 -> +10.94, 40 per class +8.26 -> +9.17 (31
of 40 gained), its test split +9.88 -> +10.55 (5 of 10; worst -0.37). Beside ``noise`` at
NOISE_SHARE it gained on the corpus (validation +15.11 -> +16.50 and +13.94 -> +14.81; test +7.66
-> +8.35, recorded and band noise) but lost on every one of 24 validation voices in synthetic pink
and white noise (mono, 0 dB: the voice +10.25 -> +9.24 and +10.82 -> +8.82), where the voice's
own model is strong and blind NMF weakest, as the new-user check above found at 0.25: so one's
own models beside ``noise`` stay unblended (``default_share``).

The blind split is the blind default's three factorizations, grouped as learned
(pipeline.Settings.blind_counterpart; auto's check of one component per source for steady tones
changed no stem of the validation split's blends and cost 12% of their time). One
factorization of 24 components costs a fifth of the iterations but gave 5.90 dB at 0.5 and lost
0.22 dB on a man and a woman (arithmetic mean, before the multichannel Wiener filter: 6.20 with three). On the test split a split with built-ins takes 1.9x the blind
default's time (2.0x before the filter; 1.6x with one factorization, 1.3x unblended).

Naming the blind stems by how well each model alone fits them (KL after 50 updates) instead of
by overlap lost on speech + noise (5.90 dB against 9.68): the general speech model fits a loud
noise better than the noise model does.

So a split whose models include a built-in (``default_share``) also runs that blind split with one stem per model,
names each blind stem after the model whose stem it overlaps most above chance (``match``) and masks with
the geometric mean of the two (``combine``; the blind split's share ``default_share``): the masks
still sum to one. The
blend is nmfsep's; it follows the fusion of separation estimates of different systems (e.g.
Jaureguiberry, Vincent & Richard 2016, "Fusion methods for speech enhancement and audio source
separation", IEEE/ACM TASLP 24(7)).
"""

import itertools

import numpy as np

BUILTIN_SHARE = 0.5  # of the blind split, with built-ins (pipeline.Settings.blind_share): the table above
NOISE_SHARE = 0.35  # the same beside the built-in noise: see the module's docstring
FLOOR = 1e-6  # added to every mask before its log in combine: a stem that one split leaves out keeps a trace
MAX_STEMS = 6  # match tries every order of the blind stems: 720 of them at 6
SURE = 0.8  # a mask above this is a split's sure choice of its stem (clash)
CLASH = 0.3  # the most of the input's magnitude that the two splits may be sure of different stems for


def match(model_masks: np.ndarray, blind_masks: np.ndarray, magnitude: np.ndarray) -> list[int]:
    """The order of the blind stems that names them after the models: blind_masks[order[s]]
    goes with model_masks[s]. Both (n_stems, n_bins, n_frames) over the magnitude (n_bins,
    n_frames) of the same input; the order of greatest overlap above chance: the sum over
    stems of the magnitude-weighted covariance of the two masks over the points (bins x
    frames), i.e. of magnitude * model mask * blind mask less what the masks' sizes alone give
    (the first such order in itertools' order on ties). Raises ValueError for more than
    MAX_STEMS stems or masks of other shapes.

    Not the plain overlap: where one model's stem takes nearly everything (``music`` beside
    ``drums`` on a synth pad: 97% of the input), that names the louder blind stem after it
    whatever the blind stems hold; the covariance names it after the stem where that model's
    mask is higher than elsewhere. On the validation split it renamed one of the 75 mixtures
    the built-ins name (two instruments: +2.0 -> +9.5 dB) and no other stem changed."""
    n = len(model_masks)
    if blind_masks.shape != model_masks.shape or n > MAX_STEMS:
        raise ValueError(f"cannot match {blind_masks.shape} blind masks to {model_masks.shape} ones "
                         f"(at most {MAX_STEMS} stems)")
    weighted = model_masks * magnitude
    overlap = np.einsum("sbf,tbf->st", weighted, blind_masks, dtype=np.float64)
    total = float(magnitude.sum(dtype=np.float64))
    if total > 0:
        sizes = np.einsum("tbf,bf->t", blind_masks, magnitude, dtype=np.float64)
        overlap -= np.outer(weighted.sum(axis=(1, 2), dtype=np.float64), sizes) / total
    return list(max(itertools.permutations(range(n)), key=lambda order: overlap[range(n), order].sum()))


def clash(model_masks: np.ndarray, blind_masks: np.ndarray, magnitude: np.ndarray) -> float:
    """The share of the input's magnitude (n_bins, n_frames) at the points where the model split
    and the blind split are each sure (a mask above SURE) of a different stem; both sets of masks
    (n_stems, n_bins, n_frames) in the same stem order (``match``). 0 for silence. Above CLASH the
    two describe different sources and the masks are the models' alone (see the module's
    docstring); the blind split's confidence would otherwise veto the models where it is wrong."""
    total = float(magnitude.sum(dtype=np.float64))
    if total <= 0:
        return 0.0
    model_stem, blind_stem = model_masks.argmax(axis=0), blind_masks.argmax(axis=0)
    sure = (model_masks.max(axis=0) > SURE) & (blind_masks.max(axis=0) > SURE) & (model_stem != blind_stem)
    return float(magnitude.sum(where=sure, dtype=np.float64)) / total


def default_share(models) -> float:
    """The blind split's share in the masks of a split with these models and no free bases, unless
    given (pipeline.Settings.blind_share; see the module's docstring): 0 for models of one's own
    only, and for one's own beside the built-in ``noise``; else NOISE_SHARE where ``noise`` is
    among them (built-ins only), else BUILTIN_SHARE (a built-in among them)."""
    builtin = [m.builtin for m in models]
    noise = any(m.builtin and m.name == "noise" for m in models)
    if not any(builtin) or (noise and not all(builtin)):
        return 0.0
    return NOISE_SHARE if noise else BUILTIN_SHARE


def combine(model_masks: np.ndarray, blind_masks: np.ndarray, share: float) -> np.ndarray:
    """The weighted geometric mean of the two sets of masks, made to sum to one over the stems:
    (model_masks + FLOOR)^(1 - share) * (blind_masks + FLOOR)^share / its sum over stems; both
    (n_stems, n_bins, n_frames) in the same stem order (``match``); float32. Share 0 gives the
    model masks, 1 the blind ones (up to FLOOR); at 0.5, where the two are sure of different
    stems, it gives each half."""
    log = np.log(model_masks + np.float32(FLOOR), dtype=np.float32)
    log *= np.float32(1 - share)
    log += np.float32(share) * np.log(blind_masks + np.float32(FLOOR), dtype=np.float32)
    log -= log.max(axis=0)
    combined = np.exp(log, out=log)
    combined /= combined.sum(axis=0)
    return combined
