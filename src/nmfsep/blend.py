"""Blending a split with models and the blind split of the same input.

The built-in models describe a class of sound (any voice, any noise), not the sources of the
file, and the blind default knows no class: the two go wrong in different places, and the mean
of their masks beats either alone. On the corpus' validation split (every mixture whose sources
the built-ins name, 75 of them; mean SI-SDRi in dB), by the share of the blind split in the masks:

    share of the blind split     0 (models alone)   0.25    0.4    0.5    0.6    1 (blind, named)
    speech + noise                     8.10         9.13   9.52   9.68   9.76    9.07
    speech + music                     3.45         4.44   4.90   5.12   5.27    5.05
    drums + pitched                    5.90         7.42   8.23   8.74   9.21    9.88
    talkers, man + woman               7.61         7.91   7.82   7.64   7.36    5.55
    three mixed                        5.46         6.22   6.40   6.39   6.29    4.49
    two pitched, far                   0.99         2.17   2.73   3.03   3.25    2.45
    two pitched, same                 -0.47         1.50   2.35   2.79   3.13    3.05
    mean of the classes                4.43         5.54   5.99   6.20   6.32    5.65

0.5 is the largest share that is no worse than the models alone on any class (0.6 loses 0.25 dB
on a man and a woman, where the built-ins are at their best).

The blind split is the blind default's three factorizations, grouped as learned
(pipeline.Settings.blind_counterpart; auto's check of one component per source for steady tones
changed no stem of the validation split's blends and cost 12% of their time). One
factorization of 24 components costs a fifth of the iterations but gave 5.90 dB at 0.5 and lost
0.22 dB on a man and a woman. On the test split a split with built-ins takes 2.0x the blind
default's time (1.6x with one factorization, 1.3x unblended).

Naming the blind stems by how well each model alone fits them (KL after 50 updates) instead of
by overlap lost on speech + noise (5.90 dB against 9.68): the general speech model fits a loud
noise better than the noise model does.

So a split whose models are all built-ins also runs that blind split with one stem per model,
names each blind stem after the model whose stem it overlaps most (``match``) and masks with
the mean of the two (``combine``, BUILTIN_SHARE): the masks still sum to one. The blend is
nmfsep's; it follows the averaging of separation estimates of different systems (an ensemble,
e.g. Jaureguiberry, Vincent & Richard 2016, "Fusion methods for speech enhancement and audio
source separation", IEEE/ACM TASLP 24(7)).
"""

import itertools

import numpy as np

BUILTIN_SHARE = 0.5  # of the blind split, with built-ins only (pipeline.Settings.blind_share): the table above
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
    """(1 - share) * model_masks + share * blind_masks, both (n_stems, n_bins, n_frames) in the
    same stem order (``match``): masks that each sum to one over the stems sum to one."""
    return ((1 - share) * model_masks + share * blind_masks).astype(np.float32, copy=False)
