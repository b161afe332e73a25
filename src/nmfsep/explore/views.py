"""The explore page's views: arrays in, numbers and pictures out (JSON-ready dicts).

Each view calls the library code that the commands use, never a copy of it: ``nmfsep.nmf``
(``factorize``, ``kmeans``, ``deep_factorize``, ``beta_divergence``), ``nmfsep.rank``
(``loss_by_rank``, ``knee``), ``nmfsep.figures`` (``pca``, the log-frequency pooling), split's
pipeline (``pipeline.split_sources``), the demo (``demo.run_experiment``) and SI-SDR
(``evaluate``). Shapes follow the library: V (n_bins, n_frames), W (n_bins, k), H (k, n_frames).

Pictures go to the page as ``image`` dicts: a matrix quantised to 0-255 between ``lo`` and ``hi``,
row 0 at the bottom (the lowest frequency band, the first component), base64 bytes that the page
paints on a canvas. Spectra are pooled into N_BANDS log-spaced bands (``figures.log_bands``) and
time into at most N_COLUMNS columns (``figures.pool_time``), so a picture costs the same for any
excerpt.

Spectrograms are the excerpt's STFT magnitude (split's default STFT at its own rate, the mean of
its channels' magnitudes) divided by its mean, as ``rank`` and the pipeline factorize it; losses
are D_beta of that scaled V.
"""

from dataclasses import dataclass, field, replace
import base64
import os

import numpy as np

from .. import audio, spectrum
from ..errors import NmfsepError

MAX_EXCERPT = 30.0          # seconds of audio a session holds, at most
DEFAULT_EXCERPT = 10.0      # seconds
MIN_EXCERPT = 1.0           # seconds: a shorter excerpt is refused
MAX_EXCERPT_VALUES = 30 * 48000 * 8  # samples x channels an excerpt may hold (46 MB of float32)
K_MAX = 10                  # the k slider's range is 1..K_MAX (and the rank sweep's)
STEP_MAX = 50               # updates one Step request may run
RANK_ITER = 100             # iterations per k of the k view's sweep (rank's default is 200)
VIEW_ITER = 100             # iterations of the other views' factorizations
N_BANDS = 120               # log-frequency rows of a picture
N_COLUMNS = 400             # time columns of a picture, at most
BETAS = {"euclidean": 2.0, "kl": 1.0, "is": 0.0}
INITS = ("nndsvda", "random")
GROUPINGS = ("none", "auto")  # split's 'none' (one component per source) and its default


@dataclass
class Excerpt:
    """The audio a session explores: samples float32 (n_samples, n_channels) at sample_rate Hz,
    starting ``start`` seconds into an input of ``total`` seconds. A playground excerpt also
    holds its synth specs (``sources``, see ``demo.source_specs``), their true signals
    ``truth`` (n_sources, n_samples) and the seed that made them."""

    samples: np.ndarray
    sample_rate: int
    name: str
    start: float = 0.0
    total: float = 0.0
    sources: list | None = None
    truth: np.ndarray | None = field(default=None, repr=False)
    seed: int = 0
    note: str = ""              # what was changed from the request (a start moved back)

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate

    @property
    def k_max(self) -> int:
        """The largest k this excerpt allows: K_MAX, or fewer where its spectrogram (split's
        default STFT) has fewer frequency bins or frames."""
        params = spectrum.default_params(self.sample_rate)
        return min(K_MAX, params.n_fft // 2 + 1, spectrum.n_frames(self.samples.shape[0], params))

    def describe(self) -> dict:
        return {"name": self.name, "kind": "playground" if self.sources else "recording",
                "start": round(self.start, 3), "duration": round(self.duration, 3),
                "total": round(self.total, 3), "sample_rate": self.sample_rate,
                "channels": int(self.samples.shape[1]), "k_max": self.k_max,
                "sources": self.sources, "note": self.note}


def check_excerpt(start: float, duration: float) -> None:
    """NmfsepError unless MIN_EXCERPT <= duration <= MAX_EXCERPT seconds and start >= 0."""
    if not MIN_EXCERPT <= duration <= MAX_EXCERPT:
        raise NmfsepError(f"an excerpt of {duration:g} s is too long: at most {MAX_EXCERPT:g} s "
                          f"of audio is explored at a time" if duration > MAX_EXCERPT else
                          f"the excerpt's length must be at least {MIN_EXCERPT:g} s, got {duration:g}")
    if not start >= 0:
        raise NmfsepError(f"the excerpt's start must be 0 s or later, got {start:g}")


def read_excerpt(path: str, start: float = 0.0, duration: float = DEFAULT_EXCERPT,
                 name: str | None = None) -> Excerpt:
    """Read ``duration`` seconds of an audio file from ``start`` (s), checking its header first
    (``audio.open_input``) and decoding only the excerpt. name: how messages call the file
    (default: its path). A start so near the end that the excerpt would be short moves back
    (Excerpt.note says so). AudioError (an NmfsepError) for an unreadable file, NmfsepError for an
    excerpt too long, under MIN_EXCERPT seconds or starting past the end, or an empty (0-byte) file."""
    check_excerpt(start, duration)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise NmfsepError(f"{name or path}: the file is empty (0 bytes)")
    try:
        with audio.open_input(path) as source:
            rate, frames = source.header.sample_rate, source.header.n_frames
            total = frames / rate
            if start >= total:
                raise NmfsepError(f"the excerpt starts at {start:g} s, after the end of the input "
                                  f"({total:.2f} s)")
            n_channels = source.header.n_channels
            if min(duration, total) * rate * n_channels > MAX_EXCERPT_VALUES:
                raise NmfsepError(f"an excerpt of {min(duration, total):g} s at {rate} Hz x {n_channels} "
                                  f"channels holds too many samples: shorten it to "
                                  f"{MAX_EXCERPT_VALUES / rate / n_channels:.1f} s")
            note = ""
            if start > 0 and start + duration > total:      # near the end: keep the length
                moved = max(0.0, total - duration)
                note = f"the start moved back from {start:g} s to {moved:g} s so the excerpt keeps its {duration:g} s"
                start = moved
            first = int(round(start * rate))
            samples = source.read_range(first, min(int(round(duration * rate)), frames - first))
    except NmfsepError as exc:
        raise type(exc)(str(exc).replace(path, name)) if name else exc from None
    if samples.shape[0] < MIN_EXCERPT * rate:
        raise NmfsepError(f"{name or path}: the excerpt holds {samples.shape[0] / rate:g} s of audio, too short "
                          f"to explore: at least {MIN_EXCERPT:g} s")
    return Excerpt(np.ascontiguousarray(samples), rate, name or path, start, total, note=note)


def playground(n_sources: int = 2, f0s=None, periods=None, duration: float = DEFAULT_EXCERPT,
               seed: int = 0) -> Excerpt:
    """The demo's synthetic mixture (``demo.source_specs``, ``synth.mixture`` at the demo's rate):
    n_sources harmonic tones with fundamentals f0s (Hz) and note periods (s), their truth kept."""
    from .. import demo, synth

    check_excerpt(0.0, duration)
    if duration < 1.0:
        raise NmfsepError(f"the playground's mixture must last at least 1 s, got {duration:g}")
    specs = demo.source_specs(n_sources, f0s, periods)
    mix, truth = synth.mixture(len(specs), demo.SAMPLE_RATE, duration, seed, sources=specs)
    return Excerpt(mix[:, None], demo.SAMPLE_RATE, "playground", 0.0, duration, specs, truth, seed)


@dataclass
class Analysis:
    """An excerpt's spectrogram V = |STFT| / scale (n_bins, n_frames), scale its mean magnitude,
    the STFT params, and the pooling of its bins into log bands (pool (N_BANDS, n_bins), band
    edges in Hz)."""

    V: np.ndarray
    scale: float
    params: spectrum.StftParams
    sample_rate: int
    pool: np.ndarray
    edges: np.ndarray

    def axes(self, duration: float) -> dict:
        return {"f_low": float(self.edges[0]), "f_high": float(self.edges[-1]),
                "duration": round(duration, 3)}


def analyse(excerpt: Excerpt) -> Analysis:
    """The excerpt's scaled spectrogram, as split and rank compute it; NmfsepError if silent."""
    from .. import figures

    params = spectrum.default_params(excerpt.sample_rate)
    magnitude = spectrum.analyse(excerpt.samples, params)[1]
    scale = float(magnitude.mean())
    if scale == 0.0 and excerpt.start == 0 and excerpt.duration >= excerpt.total:
        raise NmfsepError(f"{excerpt.name}: the whole file is silent; there is nothing to factorize")
    if scale == 0.0:
        raise NmfsepError(f"{excerpt.name}: the excerpt at {excerpt.start:g} s is silent; there is "
                          f"nothing to factorize (move its start)")
    pool, edges = figures.log_bands(excerpt.sample_rate, params.n_fft, N_BANDS)
    return Analysis(magnitude / np.float32(scale), scale, params, excerpt.sample_rate, pool, edges)


# --- pictures -----------------------------------------------------------------------------------

def image(matrix: np.ndarray, lo: float, hi: float) -> dict:
    """A (rows, cols) matrix as 0-255 bytes between lo and hi (clipped), base64; row 0 first."""
    scaled = np.clip((np.asarray(matrix, np.float64) - lo) / (hi - lo), 0, 1)
    data = np.ascontiguousarray(np.round(scaled * 255).astype(np.uint8))
    return {"rows": int(data.shape[0]), "cols": int(data.shape[1]), "lo": lo, "hi": hi,
            "data": base64.b64encode(data.tobytes()).decode("ascii")}


def spectrogram_image(a: Analysis, X: np.ndarray, ref: float) -> dict:
    """A magnitude-like (n_bins, n_frames) in dB below ref, log bands by time."""
    from .. import figures

    pooled = figures.pool_time(a.pool @ X.astype(np.float64), N_COLUMNS)
    return image(figures.to_db(pooled, ref), -figures.DB_RANGE, 0.0)


def bases_image(a: Analysis, W: np.ndarray, signed: bool = False) -> dict:
    """Spectra as columns (n_bins, k): log bands by component, each column by its peak."""
    from .. import figures

    return image(figures.by_peak(a.pool @ np.asarray(W, np.float64), 0), -1.0 if signed else 0.0, 1.0)


def activations_image(H: np.ndarray, signed: bool = False) -> dict:
    """Rows over time (k, n_frames): component by time column, each row by its peak."""
    from .. import figures

    return image(figures.by_peak(figures.pool_time(np.asarray(H, np.float64), N_COLUMNS), 1),
                 -1.0 if signed else 0.0, 1.0)


def mask_image(a: Analysis, mask: np.ndarray) -> dict:
    from .. import figures

    return image(figures.pool_time(a.pool @ mask.astype(np.float64), N_COLUMNS), 0.0, 1.0)


def hoyer_sparsity(M: np.ndarray, axis: int) -> float:
    """Hoyer's sparseness of each vector along axis, averaged: (sqrt(n) - |x|_1 / |x|_2) /
    (sqrt(n) - 1), 0 for a flat vector, 1 for one non-zero entry (Hoyer 2004). All-zero vectors
    are left out; 0.0 if all are zero or n = 1."""
    M = np.asarray(M, np.float64)
    n = M.shape[axis]
    l1, l2 = np.abs(M).sum(axis=axis), np.sqrt((M ** 2).sum(axis=axis))
    kept = l2 > 0
    if n < 2 or not kept.any():
        return 0.0
    return float(np.mean((np.sqrt(n) - l1[kept] / l2[kept]) / (np.sqrt(n) - 1)))


# --- 1. k ---------------------------------------------------------------------------------------

@dataclass
class RankSweep:
    """rank's non-increasing loss for k = 1..len(losses), the factors of each (W, H) and the
    suggested k (the knee)."""

    beta: float
    losses: list
    factors: dict
    suggested: int | None


def rank_sweep(a: Analysis, beta: float = 1.0, max_k: int = K_MAX, seed: int = 0) -> RankSweep:
    """``rank.loss_by_rank`` of V for k = 1..max_k (fewer for a tiny V), keeping each k's factors."""
    from ..rank import knee, loss_by_rank

    factors = {}
    max_k = min(max_k, min(a.V.shape))
    rows = loss_by_rank(a.V, max_k, beta=beta, max_iter=RANK_ITER, seed=seed,
                        on_fit=lambda k, W, H: factors.__setitem__(k, (W, H)))
    losses = [r.loss for r in rows]
    return RankSweep(beta, losses, factors, knee([r.k for r in rows], losses))


def k_view(a: Analysis, sweep: RankSweep, k: int) -> dict:
    """V beside its rank-k reconstruction W H (dB, same reference), the loss against k, W and H."""
    W, H = sweep.factors[k]
    ref = float(a.V.max())
    return {"k": k, "loss": sweep.losses[k - 1], "ks": list(range(1, len(sweep.losses) + 1)),
            "losses": sweep.losses, "suggested": sweep.suggested, "beta": sweep.beta,
            "V": spectrogram_image(a, a.V, ref), "WH": spectrogram_image(a, W @ H, ref),
            "W": bases_image(a, W), "H": activations_image(H)}


# --- 2. Step ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepState:
    """A factorization in progress: W (n_bins, k), H (k, n_frames), the loss after each update
    so far (losses[0]: the starting factors'), the divergence beta and the init used."""

    k: int
    beta: float
    init: str
    W: np.ndarray = field(repr=False)
    H: np.ndarray = field(repr=False)
    losses: tuple = ()


def step_start(a: Analysis, k: int, beta: float, init: str = "nndsvda", seed: int = 0) -> StepState:
    """The starting factors of ``factorize`` (``init``, no update yet) and their loss."""
    from ..nmf import factorize

    result = factorize(a.V, k, beta=beta, solver="mu", init=init, seed=seed, max_iter=0)
    return StepState(k, beta, init, result.W, result.H, (float(result.losses[0]),))


def step_run(a: Analysis, state: StepState, n_updates: int = 1) -> StepState:
    """n multiplicative updates (W, then H) of ``factorize`` from the state's factors."""
    from ..nmf import factorize

    result = factorize(a.V, state.k, beta=state.beta, solver="mu", init="custom", W=state.W,
                       H=state.H, max_iter=n_updates, tol=0)
    return replace(state, W=result.W, H=result.H,
                   losses=state.losses + tuple(float(v) for v in result.losses[1:]))


def step_view(a: Analysis, state: StepState) -> dict:
    return {"k": state.k, "beta": state.beta, "init": state.init,
            "iteration": len(state.losses) - 1, "loss": state.losses[-1], "losses": list(state.losses),
            "W": bases_image(a, state.W), "H": activations_image(state.H),
            "WH": spectrogram_image(a, state.W @ state.H, float(a.V.max()))}


# --- 3. PCA vs NMF ------------------------------------------------------------------------------

def pca_view(a: Analysis, W: np.ndarray, H: np.ndarray) -> dict:
    """``figures.pca`` of V with as many components as W has, beside NMF's W and H (by energy)."""
    from .. import figures

    k = W.shape[1]
    components, scores, explained = figures.pca(a.V, k)
    order = figures.energy_order(W, H)
    return {"k": k, "explained": [float(e) for e in explained], "explained_total": float(explained.sum()),
            "negative": float((components < 0).mean()),
            "pca_components": bases_image(a, components, signed=True),
            "pca_scores": activations_image(scores, signed=True),
            "nmf_W": bases_image(a, W[:, order]), "nmf_H": activations_image(H[order])}


# --- 4. k-means vs NMF --------------------------------------------------------------------------

def kmeans_view(a: Analysis, k: int, seed: int = 0) -> dict:
    """``nmf.kmeans`` (H one-hot: each frame to one centroid) beside Euclidean NMF of the same
    rank (H soft: each frame a mix), with both objectives as ||V - W H||_F^2."""
    from .. import figures
    from ..nmf import factorize, kmeans

    hard = kmeans(a.V, k, seed=seed)
    soft = factorize(a.V, k, beta="euclidean", seed=seed, max_iter=VIEW_ITER)
    hard_order = figures.energy_order(hard.W, hard.H)
    soft_order = figures.energy_order(soft.W, soft.H)
    totals = soft.H.sum(axis=0, keepdims=True)
    shares = np.divide(soft.H, totals, out=np.zeros_like(soft.H), where=totals > 0)[soft_order]
    frames = hard.H[hard_order].sum(axis=1)
    return {"k": k, "kmeans_objective": float(hard.losses[-1]),
            "nmf_objective": float(2 * soft.losses[-1]),       # factorize reports half of it
            "kmeans_iterations": hard.n_iter, "frames": [int(f) for f in frames],
            "kmeans_W": bases_image(a, hard.W[:, hard_order]), "kmeans_H": image(
                figures.pool_time(hard.H[hard_order].astype(np.float64), N_COLUMNS), 0.0, 1.0),
            "nmf_W": bases_image(a, soft.W[:, soft_order]),
            "nmf_H": image(figures.pool_time(shares.astype(np.float64), N_COLUMNS), 0.0, 1.0)}


# --- 5. Deep NMF --------------------------------------------------------------------------------

def deep_view(a: Analysis, k1: int, k2: int, beta: float = 1.0, seed: int = 0) -> dict:
    """One layer V ≈ W H of rank k2 beside two, V ≈ W1 W2 H with ranks [k1, k2]
    (``nmf.deep_factorize``): the divergence D_beta(V | .) and Hoyer sparsity of each."""
    from ..nmf import beta_divergence, deep_factorize, factorize

    one = factorize(a.V, k2, beta=beta, seed=seed, max_iter=VIEW_ITER)
    deep = deep_factorize(a.V, [k1, k2], beta=beta, seed=seed, max_iter=VIEW_ITER, layer_iter=VIEW_ITER)
    W1, W2 = deep.layers

    def summary(W, H):
        return {"loss": float(beta_divergence(a.V, W, H, beta)), "sparsity_W": hoyer_sparsity(W, 0),
                "sparsity_H": hoyer_sparsity(H, 1)}

    return {"k1": k1, "k2": k2, "beta": beta, "one": summary(one.W, one.H), "two": summary(deep.W, deep.H),
            "one_W": bases_image(a, one.W), "one_H": activations_image(one.H),
            "two_W1": bases_image(a, W1), "two_W2": image(W2 / max(float(W2.max()), 1e-30), 0.0, 1.0),
            "two_W": bases_image(a, deep.W), "two_H": activations_image(deep.H)}


# --- 6. Separate and listen ---------------------------------------------------------------------

def separate_view(excerpt: Excerpt, a: Analysis, n_sources: int, grouping: str, seed: int = 0) -> dict:
    """Split's pipeline on the excerpt (``pipeline.split_sources``; on the playground, the demo's
    ``run_experiment``, which adds SI-SDR against the true sources): each stem as audio (FLAC or
    WAV, base64) with its mask, and the components of each stem."""
    from .. import demo
    from ..pipeline import Settings, split_sources
    from ..report import encode_audio

    settings = Settings(n_sources=n_sources, grouping=grouping, seed=seed)
    truth = None
    if excerpt.sources and n_sources == len(excerpt.sources):
        experiment = demo.run_experiment(excerpt.sources, settings, excerpt.duration, excerpt.seed,
                                         excerpt.sample_rate)
        separation = experiment.separation
        truth = [{"name": f"source{i + 1} (true)", "f0": spec["f0"], "period": spec["period"],
                  "stem": separation.names[stem], "si_sdr": score, "mixture_si_sdr": base,
                  "audio": _audio(encode_audio(true[:, None], excerpt.sample_rate))}
                 for i, (spec, stem, score, base, true) in enumerate(zip(
                     excerpt.sources, experiment.order, experiment.si_sdr, experiment.mixture_si_sdr,
                     experiment.true))]
    else:
        separation = split_sources(excerpt.samples, excerpt.sample_rate, settings, name=excerpt.name)
    stems = [{"name": name, "audio": _audio(encode_audio(separation.stems[s], excerpt.sample_rate)),
              "mask": mask_image(a, separation.masks[s]),
              "components": [int(c) for c in separation.groups[s]]}
             for s, name in enumerate(separation.names)]
    return {"n_sources": n_sources, "grouping": grouping, "n_components": int(separation.bases.shape[1]),
            "mixture": _audio(encode_audio(excerpt.samples, excerpt.sample_rate)),
            "V": spectrogram_image(a, a.V, float(a.V.max())), "stems": stems, "truth": truth}


def _audio(encoded: tuple[str, str]) -> str:
    mime, data = encoded
    return f"data:{mime};base64,{data}"
