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

The blind split is the blind default's three factorizations, grouped as learned
(pipeline.Settings.blind_counterpart; auto's check of one component per source for steady tones
changed no stem of the validation split's blends and cost 12% of their time). One
factorization of 24 components costs a fifth of the iterations but gave 5.90 dB at 0.5 and lost
0.22 dB on a man and a woman (arithmetic mean, before the multichannel Wiener filter: 6.20 with three). On the test split a split with built-ins takes 2.0x the blind
default's time (1.6x with one factorization, 1.3x unblended).

Naming the blind stems by how well each model alone fits them (KL after 50 updates) instead of
by overlap lost on speech + noise (5.90 dB against 9.68): the general speech model fits a loud
noise better than the noise model does.

Models of one's own, learned from other clips of the same sources, gain from the blend too,
at a smaller share (OWN_SHARE). Validation, `bench_quality.py --corpus --supervised`, every class
(96 mixtures of 8 classes; 0 -> 0.25 -> 0.5 of the blind split in a geometric mean):
speech + noise 18.26 -> 18.53 -> 17.42, speech + music 10.82 -> 11.45 -> 11.71, two pitched,
far 7.53 -> 9.27 -> 10.37, a man and a woman 13.72 -> 14.18 -> 14.15, two talkers of one gender
12.37 -> 13.03, two pitched, same 7.00 -> 8.20, drums + pitched 14.67 -> 15.33, three mixed
9.98 -> 9.94 (the last four not run at 0.5). At 0.25 both halves of the split gain on every
class but three mixed (-0.12 and +0.03), 68 of the 96 mixtures gain and 21 lose (worst -4.8);
0.5 loses speech + noise on both halves. One's own voice beside the built-in ``noise``: 14.87 ->
16.29 dB at 0.25 (11 of 12 gain). (The arithmetic mean at 0.15 had gained 0.13 dB over the
classes and lost on every speech class.)

So a split with 2 to MAX_STEMS models and no free bases also runs that blind split with one stem per model,
names each blind stem after the model whose stem it overlaps most (``match``) and masks with
the geometric mean of the two (``combine``; BUILTIN_SHARE, OWN_SHARE): the masks still sum to one. The
blend is nmfsep's; it follows the fusion of separation estimates of different systems (e.g.
Jaureguiberry, Vincent & Richard 2016, "Fusion methods for speech enhancement and audio source
separation", IEEE/ACM TASLP 24(7)).
"""

import itertools

import numpy as np

BUILTIN_SHARE = 0.5  # of the blind split, with built-ins only (pipeline.Settings.blind_share): the table above
OWN_SHARE = 0.25  # of the blind split, where any of the models is one's own: see the module's docstring
FLOOR = 1e-6  # added to every mask before its log in combine: a stem that one split leaves out keeps a trace
MAX_STEMS = 6  # match tries every order of the blind stems: 720 of them at 6


def match(model_masks: np.ndarray, blind_masks: np.ndarray, magnitude: np.ndarray) -> list[int]:
    """The order of the blind stems that names them after the models: blind_masks[order[s]]
    goes with model_masks[s]. Both (n_stems, n_bins, n_frames) over the magnitude (n_bins,
    n_frames) of the same input; the order of greatest overlap, sum over stems and bins of
    magnitude * model mask * blind mask (the first such order in itertools' order on ties).
    Raises ValueError for more than MAX_STEMS stems or masks of other shapes."""
    n = len(model_masks)
    if blind_masks.shape != model_masks.shape or n > MAX_STEMS:
        raise ValueError(f"cannot match {blind_masks.shape} blind masks to {model_masks.shape} ones "
                         f"(at most {MAX_STEMS} stems)")
    weighted = model_masks * magnitude
    overlap = np.einsum("sbf,tbf->st", weighted, blind_masks, dtype=np.float64)
    return list(max(itertools.permutations(range(n)), key=lambda order: overlap[range(n), order].sum()))


def combine(model_masks: np.ndarray, blind_masks: np.ndarray, share: float) -> np.ndarray:
    """The weighted geometric mean of the two sets of masks, made to sum to one over the stems:
    (model_masks + FLOOR)^(1 - share) * (blind_masks + FLOOR)^share / its sum over stems; both
    (n_stems, n_bins, n_frames) in the same stem order (``match``); float32. Share 0 gives the
    model masks, 1 the blind ones (up to FLOOR); where the two are sure of different stems it
    gives each half."""
    log = np.log(model_masks + np.float32(FLOOR), dtype=np.float32)
    log *= np.float32(1 - share)
    log += np.float32(share) * np.log(blind_masks + np.float32(FLOOR), dtype=np.float32)
    log -= log.max(axis=0)
    combined = np.exp(log, out=log)
    combined /= combined.sum(axis=0)
    return combined
