"""The demo: synthesize sources with known answers, mix them, separate the mixture blind with
split's pipeline, and score each source (SI-SDR against the truth).

Then the control experiment: two sources whose spectra are nearly the same (the first source and
a copy of it 1% higher in pitch, so every harmonic falls in the same STFT bin up to the 10th),
each with its own rhythm. NMF tells sources apart by their spectra (the columns of W): with
near-identical spectra it has nothing to tell them apart by, and the separation fails, whatever
their rhythms.
"""

from dataclasses import dataclass, field
import os

import numpy as np

from . import audio, spectrum, synth
from .errors import NmfsepError
from .evaluate import best_permutation, si_sdr
from .pipeline import Separation, Settings, split_sources

SAMPLE_RATE = 22050
NEAR_RATIO = 1.01        # f0 of the near-identical copy, relative to the first source's
MIN_F0, MAX_F0 = 40.0, 2000.0
DISTINCT_RATIO = 1.03    # --f0 values closer than this are the control's case, not distinct sources
# Each synthetic source is one spectrum switched on and off: exactly one NMF component, so the
# demo factorizes k components for k sources (plain NMF). The default blind grouping (24
# components clustered by timbre) measured -1 to 37 dB (worst source) on seeds 0-7, under 10 dB
# on seeds 2 and 5 with 2 sources and on 3, 5 and 6 with 3; 'none' gave 30-37 dB on all of them.
DEFAULT_GROUPING = "none"


@dataclass
class Experiment:
    """One mixture of known sources and its separation.

    sources: the synth specs; true: (n, n_samples) the true sources; mixture (n_samples,);
    separation: split's result; order[i]: the stem matched to true source i; si_sdr[i] in dB.
    """

    sources: list[dict]
    true: np.ndarray
    mixture: np.ndarray
    separation: Separation
    order: tuple[int, ...]
    si_sdr: list[float]
    mixture_si_sdr: list[float] = field(default_factory=list)

    @property
    def estimates(self) -> np.ndarray:
        """(n, n_samples) the separated stems, in the order of the true sources."""
        return self.separation.stems[list(self.order), :, 0]


def source_specs(n_sources: int = 2, f0s=None, periods=None) -> list[dict]:
    """The synth specs of n sources: synth.DEFAULT_SOURCES with the given fundamentals (Hz) and
    note periods (s) in place of the defaults."""
    if n_sources not in (2, 3):
        raise NmfsepError(f"the demo makes 2 or 3 sources, got {n_sources}")
    specs = [dict(s) for s in synth.DEFAULT_SOURCES[:n_sources]]
    for name, values, key, low, high in (("--f0", f0s, "f0", MIN_F0, MAX_F0),
                                         ("--period", periods, "period", 0.1, 10.0)):
        if values is None:
            continue
        if len(values) != n_sources:
            raise NmfsepError(f"{name} gives {len(values)} values for {n_sources} sources")
        for spec, value in zip(specs, values):
            if not low <= value <= high:
                raise NmfsepError(f"{name} {value:g} is outside {low:g}-{high:g}")
            spec[key] = float(value)
    return specs


def check_distinct(f0s) -> None:
    """NmfsepError where two --f0 values are less than DISTINCT_RATIO apart: `nmfsep demo` reports
    its sources as distinct spectra, and its control already shows near-identical ones (the
    explore playground lets them be tried)."""
    ordered = sorted(f0s or [])
    close = next(((a, b) for a, b in zip(ordered, ordered[1:]) if b / a < DISTINCT_RATIO), None)
    if close is not None:
        raise NmfsepError(f"--f0 {close[0]:g} and {close[1]:g} are less than {100 * (DISTINCT_RATIO - 1):g}% "
                          "apart: the demo's sources need distinct pitches (its control already shows "
                          "near-identical ones)")


def run_experiment(sources: list[dict], settings: Settings, duration: float, seed: int,
                   sample_rate: int = SAMPLE_RATE) -> Experiment:
    mixture, true = synth.mixture(len(sources), sample_rate, duration, seed, sources=sources)
    separation = split_sources(mixture[:, None], sample_rate, settings)
    order, scores = best_permutation(true, separation.stems[:, :, 0])
    return Experiment(sources, true, mixture, separation, tuple(order), [float(s) for s in scores],
                      [si_sdr(t, mixture) for t in true])


def run(n_sources: int = 2, f0s=None, periods=None, duration: float = 4.0, seed: int = 0,
        max_iter: int = 200, grouping: str = DEFAULT_GROUPING) -> tuple[Experiment, Experiment]:
    """(the demo with distinct sources, the control with near-identical spectra), both separated
    by split's pipeline with ``grouping`` (default 'none': one NMF component per source)."""
    if not 1.0 <= duration <= 60.0:
        raise NmfsepError(f"--duration must be between 1 and 60 seconds, got {duration:g}")
    specs = source_specs(n_sources, f0s, periods)
    distinct = run_experiment(specs, Settings(n_sources=n_sources, max_iter=max_iter, seed=seed,
                                              grouping=grouping), duration, seed)
    twin = dict(specs[0], f0=specs[0]["f0"] * NEAR_RATIO, period=specs[1]["period"])
    near = run_experiment([specs[0], twin], Settings(n_sources=2, max_iter=max_iter, seed=seed,
                                                     grouping=grouping), duration, seed)
    return distinct, near


def output_paths(folder: str, n_sources: int) -> dict:
    """Every file the demo writes, by role."""
    near = os.path.join(folder, "near_identical")
    return {
        "mixture": os.path.join(folder, "mixture.wav"),
        "true": [os.path.join(folder, f"source{i + 1}_true.wav") for i in range(n_sources)],
        "estimate": [os.path.join(folder, f"source{i + 1}_separated.wav") for i in range(n_sources)],
        "figure": os.path.join(folder, "demo.png"),
        "near_mixture": os.path.join(near, "mixture.wav"),
        "near_true": [os.path.join(near, f"source{i + 1}_true.wav") for i in range(2)],
        "near_estimate": [os.path.join(near, f"source{i + 1}_separated.wav") for i in range(2)],
    }


def all_paths(paths: dict) -> list[str]:
    return [p for value in paths.values() for p in (value if isinstance(value, list) else [value])]


def check_outputs(paths: dict, force: bool) -> None:
    """NmfsepError where the demo cannot write its files, or (without force) one exists."""
    from .batch import check_writable

    for folder in dict.fromkeys(os.path.dirname(p) or "." for p in all_paths(paths)):
        check_writable(folder, "the demo's files")
    if force:
        return
    existing = [p for p in all_paths(paths) if os.path.exists(p)]
    if existing:
        raise NmfsepError(f"{existing[0]} already exists (use --force to overwrite, or -o another folder)")


def write_audio(paths: dict, distinct: Experiment, near: Experiment,
                sample_rate: int = SAMPLE_RATE) -> None:
    """All the demo's audio as float WAV, each file through a temporary file and a rename."""
    signals = [(paths["mixture"], distinct.mixture)]
    signals += list(zip(paths["true"], distinct.true)) + list(zip(paths["estimate"], distinct.estimates))
    signals += [(paths["near_mixture"], near.mixture)]
    signals += list(zip(paths["near_true"], near.true)) + list(zip(paths["near_estimate"], near.estimates))
    for path, samples in signals:
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            os.replace(audio.write_temp(path, samples, sample_rate, audio.StemFormat("WAV", "FLOAT")), path)
        except OSError as exc:
            raise NmfsepError(f"{path}: cannot write ({exc.strerror or exc})") from None


def figure(distinct: Experiment, near: Experiment, sample_rate: int = SAMPLE_RATE):
    """The demo's figure (see nmfsep.figures.demo_figure)."""
    from . import figures

    params = distinct.separation.params

    def magnitude(samples):
        return spectrum.analyse(np.asarray(samples, np.float32).reshape(len(samples), -1), params)[1]

    n = len(distinct.sources)
    names = [f"source{i + 1}" for i in range(n)]
    return figures.demo_figure(
        sample_rate, params, magnitude(distinct.mixture),
        np.stack([magnitude(t) for t in distinct.true]), np.stack([magnitude(e) for e in distinct.estimates]),
        names, distinct.si_sdr, magnitude(near.mixture), np.stack([magnitude(e) for e in near.estimates]),
        near.si_sdr, near_label(near))


def near_label(near: Experiment) -> str:
    a, b = near.sources
    return f"{a['f0']:g} + {b['f0']:.4g} Hz, same timbre"


def record(distinct: Experiment, near: Experiment, paths: dict) -> dict:
    """The --json object."""

    def sources(experiment, true_paths, estimate_paths):
        return [{"name": f"source{i + 1}", "f0": s["f0"], "period": s["period"], "true": t, "separated": e,
                 "si_sdr": round(score, 2), "mixture_si_sdr": round(base, 2)}
                for i, (s, t, e, score, base) in enumerate(zip(experiment.sources, true_paths, estimate_paths,
                                                               experiment.si_sdr, experiment.mixture_si_sdr))]

    return {
        "mixture": paths["mixture"],
        "figure": paths["figure"],
        "sample_rate": SAMPLE_RATE,
        "sources": sources(distinct, paths["true"], paths["estimate"]),
        "si_sdr": [round(s, 2) for s in distinct.si_sdr],
        "near_identical": {
            "mixture": paths["near_mixture"],
            "sources": sources(near, paths["near_true"], paths["near_estimate"]),
            "si_sdr": [round(s, 2) for s in near.si_sdr],
        },
    }
