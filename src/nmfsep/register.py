"""A voice over music named by its register: ``speech`` becomes ``speech_high`` for a high voice.

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
"""

import numpy as np

HIGH_HZ = 165.0  # a speech stem whose median pitch is above this is split again with speech_high
PITCH_RANGE_HZ = (60.0, 450.0)  # the pitches YIN looks for: a voice's, low men's to children's
FRAME_SECONDS = 0.09  # YIN's frame: at least two periods of the lowest pitch


def voice_beside_music(settings) -> int | None:
    """The index of the built-in ``speech`` among the models of settings (nmfsep.pipeline.Settings)
    where they are exactly the built-ins ``speech`` and ``music``, in either order, with no free
    bases (--free: not measured); else None."""
    models = settings.models
    if len(models) != 2 or not all(m.builtin for m in models) or settings.n_free:
        return None
    names = [m.name for m in models]
    return names.index("speech") if sorted(names) == ["music", "speech"] else None


def median_pitch(samples: np.ndarray, sample_rate: int) -> float | None:
    """The median pitch (Hz) of the louder half of the frames of mono float samples (n_samples,):
    YIN (de Cheveigné & Kawahara 2002, JASA 111(4); librosa.yin) within PITCH_RANGE_HZ, in
    frames of FRAME_SECONDS (a power of two of samples) a quarter apart. None where the samples
    are silent or shorter than a frame (no pitch to go by). The first call in a process imports
    what librosa.yin needs (scipy.signal among them): about 0.6 s here, 0.02 s after."""
    import librosa

    frame = 2 ** int(np.ceil(np.log2(FRAME_SECONDS * sample_rate)))
    if samples.shape[0] < frame or not np.any(samples):
        return None
    low, high = PITCH_RANGE_HZ
    pitch = librosa.yin(samples, fmin=low, fmax=min(high, sample_rate / 4), sr=sample_rate, frame_length=frame)
    level = librosa.feature.rms(y=samples, frame_length=frame, hop_length=frame // 4)[0][: len(pitch)]
    loud = level > np.median(level)
    return float(np.median(pitch[loud])) if loud.any() else None


def with_high_voice(settings, voice: int):
    """The settings (nmfsep.pipeline.Settings) with the built-in ``speech_high`` in place of the
    model at index voice, and their shipped pair training (nmfsep.supervised.train_models)."""
    from dataclasses import replace

    from .models import load
    from .supervised import train_models

    models = list(settings.models)
    models[voice] = load("speech_high")
    return train_models(replace(settings, models=tuple(models), trained=None))
