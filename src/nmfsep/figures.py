"""Matplotlib figures of a separation: spectrogram, bases W, activations H, masks, loss curve,
NMF beside PCA, the loss against k, the demo.

Every function returns a ``matplotlib.figure.Figure`` (no pyplot, no global state, no display
needed) whose axes carry a label (``ax.get_label()``: 'spectrogram', 'bases', 'activations',
'mask source1', 'loss', ...) so that tests and scripts can find the panels; ``save`` writes one
atomically. Imported only by the commands that draw (matplotlib is slow to import).

Frequency axes are logarithmic: a spectrogram (n_bins, n_frames) is pooled into geometrically
spaced bands (``log_bands``), each the mean of the STFT bins whose centre falls in it, or the
interpolation of the two nearest bins where a band is narrower than a bin. Long inputs are
pooled in time to at most ``MAX_COLUMNS`` columns, so drawing costs the same for any length.
"""

import io
import math
import os
import tempfile

import numpy as np

from .audio import commit_temp, finish_temp
from .errors import NmfsepError
from .rank import beta_name

try:
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator
except ImportError:  # pragma: no cover - matplotlib is a dependency
    raise NmfsepError("drawing figures needs matplotlib (pip install matplotlib)") from None

DPI = 100
WIDTH = 16.0                       # inches: 1600 px at DPI
MAX_COLUMNS = 1500                 # time columns drawn, whatever the input's length
N_BANDS = 240                      # log-frequency rows drawn
F_MIN = 30.0                       # Hz: the lowest frequency drawn
DB_RANGE = 80.0                    # dB below the maximum shown in spectrograms
MASK_FLOOR_DB = 60.0               # masks are blank where the mixture is this far below its peak
SILENCE_COLOUR = "#c6dbef"
FORMATS = ("png", "svg", "pdf")
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "figure.titlesize": 14,
         "image.interpolation": "nearest", "axes.titleweight": "bold"}
SOURCE_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                  "#7f7f7f", "#bcbd22", "#17becf"]


def colour(i: int) -> str:
    return SOURCE_COLOURS[i % len(SOURCE_COLOURS)]


# --- writing ----------------------------------------------------------------------------------

def check_output(path: str, force: bool = False) -> str:
    """The figure's format from its extension; NmfsepError if unknown or if it exists (no force)."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise NmfsepError(f"{path}: a figure must end in {', '.join('.' + f for f in FORMATS)}")
    if os.path.isdir(path):
        raise NmfsepError(f"{path}: is a folder; give a file name such as {os.path.join(path, 'figure.png')}")
    if os.path.exists(path) and not force:
        raise NmfsepError(f"{path} already exists (use --force to overwrite)")
    from .batch import check_writable

    check_writable(os.path.dirname(path) or ".", "the figure")
    return ext


def save(fig: Figure, path: str, force: bool = False) -> str:
    """Write the figure to ``path`` (format from its extension) through a temporary file that is
    renamed once complete, so an existing figure is never left half-written; returns path."""
    fmt = check_output(path, force)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI)
    return write_atomic(path, buffer.getvalue(), "the figure", overwrite=force)


def write_atomic(path: str, data: bytes, what: str = "the file", overwrite: bool = True) -> str:
    """Write data to a temporary file beside path, then rename it to path (making the folder);
    without overwrite, a file that appeared at path meanwhile is kept and NmfsepError raised
    (nmfsep.audio.commit_temp)."""
    folder = os.path.dirname(path) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".nmfsep-", suffix=os.path.splitext(path)[1], dir=folder)
    except OSError as exc:
        raise NmfsepError(f"{path}: cannot write {what} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        finish_temp(temp)      # mkstemp's files are owner-only: a new file's mode, as the stems get
        commit_temp(temp, path, overwrite)
    except OSError as exc:
        os.unlink(temp)
        raise NmfsepError(f"{path}: cannot write {what} ({exc.strerror or exc})") from None
    except BaseException:
        os.unlink(temp)
        raise
    return path


def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def new_figure(height: float, width: float = WIDTH) -> Figure:
    """A figure of width x height inches (DPI pixels per inch) with the house style."""
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


# --- log-frequency pooling --------------------------------------------------------------------

def log_bands(sample_rate: int, n_fft: int, n_bands: int = N_BANDS, f_min: float = F_MIN):
    """(pool (n_bands, n_bins), edges (n_bands + 1,) Hz): a matrix averaging STFT bins into
    geometrically spaced bands from f_min (at least the first bin above 0 Hz) to Nyquist.

    Row b averages the bins whose centre lies in [edges[b], edges[b + 1]); a band with no bin
    centre in it (bands narrower than a bin, at low frequencies) linearly interpolates the two
    bins around its centre. Rows sum to one, so pool @ V keeps V's scale.
    """
    n_bins = n_fft // 2 + 1
    bin_hz = sample_rate / n_fft
    top = sample_rate / 2
    low = min(max(f_min, bin_hz), top / 2)
    edges = np.geomspace(low, top, n_bands + 1)
    freqs = np.arange(n_bins) * bin_hz
    pool = np.zeros((n_bands, n_bins))
    index = np.searchsorted(edges, freqs, side="right") - 1
    for b in range(n_bands):
        inside = np.flatnonzero(index == b)
        if inside.size:
            pool[b, inside] = 1.0 / inside.size
        else:
            x = math.sqrt(edges[b] * edges[b + 1]) / bin_hz
            lo = min(int(x), n_bins - 2)
            w = min(x - lo, 1.0)
            pool[b, lo], pool[b, lo + 1] = 1.0 - w, w
    return pool, edges


def pool_time(matrix: np.ndarray, max_columns: int = MAX_COLUMNS) -> np.ndarray:
    """Mean of consecutive columns so that at most max_columns remain (the last group may be short)."""
    n = matrix.shape[-1]
    step = math.ceil(n / max_columns)
    if step <= 1:
        return matrix
    starts = np.arange(0, n, step)
    sums = np.add.reduceat(matrix, starts, axis=-1)
    counts = np.diff(np.append(starts, n))
    return sums / counts


def to_db(x: np.ndarray, ref: float | None = None, db_range: float = DB_RANGE) -> np.ndarray:
    """20 log10(x / ref) clipped to [-db_range, 0]; ref defaults to max(x)."""
    ref = float(np.max(x)) if ref is None else ref
    if not ref > 0:
        return np.full(x.shape, -db_range)
    return 20 * np.log10(np.maximum(x / ref, 10 ** (-db_range / 20)))


class Axes:
    """Frequency and time geometry of one input, shared by all its panels."""

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_frames: int):
        self.sample_rate = sample_rate
        self.pool, self.edges = log_bands(sample_rate, n_fft)
        self.centres = np.sqrt(self.edges[:-1] * self.edges[1:])
        self.duration = max(n_frames - 1, 1) * hop_length / sample_rate
        self.hop_length = hop_length

    def bands(self, spectra: np.ndarray) -> np.ndarray:
        """(n_bands, ...) band means of spectra (n_bins, ...)."""
        return self.pool @ spectra

    def image(self, spectrogram: np.ndarray) -> np.ndarray:
        """Band means of a (n_bins, n_frames) magnitude spectrogram, pooled in time."""
        return pool_time(self.bands(spectrogram))

    def time_extent(self) -> tuple[float, float]:
        return 0.0, self.duration

    def frequency_axis(self, ax, axis: str = "y") -> None:
        """Tick the axis (drawn in log10 Hz) at round frequencies, labelled in Hz."""
        low, high = self.edges[0], self.edges[-1]
        ticks = [f for f in (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
                 if low <= f <= high]
        labels = [f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks]
        target = ax.yaxis if axis == "y" else ax.xaxis
        target.set_major_locator(FixedLocator(np.log10(ticks)))
        target.set_minor_locator(NullLocator())
        (ax.set_yticklabels if axis == "y" else ax.set_xticklabels)(labels)
        (ax.set_ylabel if axis == "y" else ax.set_xlabel)("frequency (Hz, log scale)")

    def log_extent(self) -> tuple[float, float]:
        return float(np.log10(self.edges[0])), float(np.log10(self.edges[-1]))


# --- panels -----------------------------------------------------------------------------------

def draw_spectrogram(fig, ax, geometry: Axes, spectrogram: np.ndarray, title: str,
                     ref: float | None = None, colorbar: bool = True, label: str = "spectrogram"):
    """A magnitude spectrogram (n_bins, n_frames) in dB (relative to ref, default its maximum)."""
    image = geometry.image(spectrogram)
    db = to_db(image, ref if ref is not None else float(image.max()))
    y0, y1 = geometry.log_extent()
    im = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-DB_RANGE, vmax=0,
                   extent=(*geometry.time_extent(), y0, y1))
    geometry.frequency_axis(ax)
    ax.set_xlabel("time (s)")
    ax.set_title(title)
    ax.set_label(label)
    if colorbar:
        fig.colorbar(im, ax=ax, label="level (dB re max)", pad=0.01)
    return im


def _component_order(groups: list[np.ndarray], n_components: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Components listed source by source, and each source's [start, stop) in that list."""
    order, spans = [], []
    for g in groups:
        spans.append((len(order), len(order) + len(g)))
        order.extend(int(i) for i in g)
    rest = [i for i in range(n_components) if i not in set(order)]
    return np.array(order + rest, dtype=int), spans


def _mark_sources(ax, spans, names, axis: str) -> None:
    """Separator lines between sources and a coloured source name on the given axis."""
    centres = [(a + b) / 2 for a, b in spans]
    for i, (a, b) in enumerate(spans):
        if i:
            (ax.axvline if axis == "x" else ax.axhline)(a - 0.5, color="white", lw=2)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator([c - 0.5 for c in centres]))
    target.set_minor_locator(NullLocator())
    labels = (ax.set_xticklabels if axis == "x" else ax.set_yticklabels)(names)
    for i, text in enumerate(labels):
        text.set_color(colour(i))
        text.set_fontweight("bold")


def draw_bases(fig, ax, geometry: Axes, bases: np.ndarray, groups, names) -> None:
    """Each basis (a column of W) in dB relative to its own peak, grouped by source."""
    order, spans = _component_order(groups, bases.shape[1])
    banded = geometry.bands(bases[:, order])
    peaks = banded.max(axis=0, keepdims=True)
    db = 20 * np.log10(np.maximum(banded / np.where(peaks > 0, peaks, 1), 10 ** (-60 / 20)))
    y0, y1 = geometry.log_extent()
    im = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-60, vmax=0,
                   extent=(-0.5, len(order) - 0.5, y0, y1))
    geometry.frequency_axis(ax)
    _mark_sources(ax, spans, names, "x")
    ax.set_xlabel(f"bases: the {len(order)} columns of W, by source")
    ax.set_title("bases W (spectral templates)")
    ax.set_label("bases")
    fig.colorbar(im, ax=ax, label="dB re each basis' peak", pad=0.01)


def draw_activations(fig, ax, geometry: Axes, activations: np.ndarray, groups, names) -> None:
    """Each activation (a row of H) over time, relative to its own peak, grouped by source."""
    order, spans = _component_order(groups, activations.shape[0])
    rows = pool_time(activations[order].astype(np.float64))
    peaks = rows.max(axis=1, keepdims=True)
    rows = rows / np.where(peaks > 0, peaks, 1)
    im = ax.imshow(rows, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                   extent=(*geometry.time_extent(), -0.5, len(order) - 0.5))
    _mark_sources(ax, spans, names, "y")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("rows of H, by source")
    ax.set_title("activations H (when each basis sounds)")
    ax.set_label("activations")
    fig.colorbar(im, ax=ax, label="activation / its peak", pad=0.01)


def draw_mask(fig, ax, geometry: Axes, mask: np.ndarray, spectrogram: np.ndarray, name: str,
              index: int, colorbar: bool) -> None:
    """A soft mask (n_bins, n_frames), shown per band as the share of the band's magnitude it
    keeps; where the mixture is more than MASK_FLOOR_DB below its peak (silence, where a mask
    decides nothing audible) it is blank, in SILENCE_COLOUR."""
    kept = geometry.image(mask * spectrogram)
    total = geometry.image(spectrogram)
    audible = total > float(total.max()) * 10 ** (-MASK_FLOOR_DB / 20)
    share = np.divide(kept, total, out=np.full(kept.shape, np.nan), where=audible)
    y0, y1 = geometry.log_extent()
    cmap = matplotlib.colormaps["Greys_r"].with_extremes(bad=SILENCE_COLOUR)
    im = ax.imshow(share, origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=1,
                   extent=(*geometry.time_extent(), y0, y1))
    geometry.frequency_axis(ax)
    ax.set_xlabel("time (s)")
    ax.set_title(f"mask of {name}", color=colour(index))
    ax.set_label(f"mask {name}")
    if colorbar:
        fig.colorbar(im, ax=ax, label="mask (0 = none, 1 = all)", pad=0.01)
        ax.text(1.0, 1.01, f"blue: mixture below -{MASK_FLOOR_DB:.0f} dB", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=9, color="#3b6e99")


def draw_losses(ax, losses, beta: float, n_iter: int) -> None:
    """The objective after each iteration (log scale), iteration 0 being the initial factors."""
    losses = np.asarray(losses if losses is not None else [], dtype=np.float64)
    ax.set_label("loss")
    ax.set_title("loss while fitting")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"D (V | WH), {beta_name(beta)}")
    if losses.size == 0:
        ax.text(0.5, 0.5, "no iterations (silent input)", ha="center", va="center",
                transform=ax.transAxes)
        return
    ax.plot(np.arange(losses.size), losses, color="black", lw=2)
    if np.all(losses > 0):
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.text(0.97, 0.95, f"{losses[0]:.4g} at the start\n{losses[-1]:.4g} after {n_iter} iterations",
            transform=ax.transAxes, ha="right", va="top",
            bbox=dict(boxstyle="round", facecolor="white", alpha=0.85, edgecolor="lightgrey"))


# --- figures ----------------------------------------------------------------------------------

def separation_figure(spectrogram: np.ndarray, sample_rate: int, separation, *, beta: float = 1.0,
                      title: str = "") -> Figure:
    """The mixture spectrogram, the loss curve, W, H and every source's mask, 1600 px wide.

    spectrogram: the mixture's magnitude V (n_bins, n_frames) (mean over channels, as the
    pipeline factorizes it); separation: a ``nmfsep.pipeline.Separation``.
    """
    params = separation.params
    geometry = Axes(sample_rate, params.n_fft, params.hop_length, spectrogram.shape[1])
    names = list(separation.names)
    n_stems = len(names)
    per_row = min(n_stems, 4)
    mask_rows = math.ceil(n_stems / per_row)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(3.6 * 2 + 3.0 * mask_rows + 0.6)
        grid = fig.add_gridspec(2 + mask_rows, 1, height_ratios=[3.6, 3.6] + [3.0] * mask_rows)
        top = grid[0].subgridspec(1, 2, width_ratios=[2.2, 1])
        draw_spectrogram(fig, fig.add_subplot(top[0]), geometry, spectrogram, "mixture spectrogram V")
        draw_losses(fig.add_subplot(top[1]), separation.losses, beta, separation.n_iter)
        middle = grid[1].subgridspec(1, 2, width_ratios=[1, 2.2])
        draw_bases(fig, fig.add_subplot(middle[0]), geometry, separation.bases, separation.groups, names)
        draw_activations(fig, fig.add_subplot(middle[1]), geometry, separation.activations,
                         separation.groups, names)
        for r in range(mask_rows):
            row = grid[2 + r].subgridspec(1, per_row)
            for c in range(per_row):
                s = r * per_row + c
                if s < n_stems:
                    draw_mask(fig, fig.add_subplot(row[c]), geometry, separation.masks[s], spectrogram,
                              names[s], s, colorbar=(c == per_row - 1 or s == n_stems - 1))
        fig.suptitle(title or "NMF separation")
    return fig


def pca(spectrogram: np.ndarray, n_components: int):
    """(components (n_bins, n), scores (n, n_frames), explained (n,)): principal components of
    the spectra (the columns of V, centred on their mean), largest variance first.

        V - mean ≈ U_n S_n Vt_n,  components = U_n (unit norm, signed), scores = S_n Vt_n;
        explained = S_n^2 / sum(S^2). Signs are fixed so each component's largest entry is > 0.
    """
    V = np.asarray(spectrogram, dtype=np.float64)
    centred = V - V.mean(axis=1, keepdims=True)
    U, S, Vt = np.linalg.svd(centred, full_matrices=False)
    n = min(n_components, len(S))
    U, S, Vt = U[:, :n], S[:n], Vt[:n]
    signs = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(n)])
    signs[signs == 0] = 1
    total = float((centred ** 2).sum())
    explained = S ** 2 / total if total > 0 else np.zeros(n)
    return U * signs, (S[:, None] * Vt) * signs[:, None], explained


def energy_order(bases: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """Component indices by the energy each explains, sum(W_j) * sum(H_j), largest first (as
    PCA's components come by variance); ties keep their order."""
    energy = bases.sum(axis=0) * activations.sum(axis=1)
    return np.argsort(-energy, kind="stable")


def by_peak(x: np.ndarray, axis: int) -> np.ndarray:
    """x divided by its largest absolute value along axis (columns: 0, rows: 1); zeros stay zero."""
    peak = np.abs(x).max(axis=axis, keepdims=True)
    return x / np.where(peak > 0, peak, 1)


def pca_figure(spectrogram: np.ndarray, sample_rate: int, params, bases: np.ndarray,
               activations: np.ndarray, *, title: str = "") -> Figure:
    """PCA's signed components beside NMF's non-negative parts, on the same spectrogram.

    Top: spectral components (PCA's U, NMF's W), bottom: their weights over time (PCA's scores,
    NMF's H). PCA components are drawn on a diverging scale (blue negative, red positive), each
    relative to its largest absolute value; NMF's on a sequential one. NMF components are listed
    by the energy they explain, as PCA's are by variance.
    """
    n = bases.shape[1]
    components, scores, explained = pca(spectrogram, n)
    n_pca = components.shape[1]
    order = energy_order(bases, activations)
    W, H = bases[:, order], activations[order]
    geometry = Axes(sample_rate, params.n_fft, params.hop_length, spectrogram.shape[1])
    y0, y1 = geometry.log_extent()
    negative = float((components < 0).mean() * 100)

    with matplotlib.rc_context(STYLE):
        fig = new_figure(9.5)
        grid = fig.add_gridspec(2, 2)
        panels = [
            ("pca components", "PCA: principal components U (signed)", by_peak(geometry.bands(components), 0),
             "RdBu_r", -1, 1, "component / its largest |value|", "spectral"),
            ("nmf bases", "NMF: bases W (non-negative parts)", by_peak(geometry.bands(W), 0),
             "magma", 0, 1, "basis / its peak", "spectral"),
            ("pca scores", "PCA: scores over time (signed)", by_peak(pool_time(scores), 1),
             "RdBu_r", -1, 1, "score / its largest |value|", "temporal"),
            ("nmf activations", "NMF: activations H (non-negative)", by_peak(pool_time(H.astype(np.float64)), 1),
             "viridis", 0, 1, "activation / its peak", "temporal"),
        ]
        for i, (label, panel_title, image, cmap, vmin, vmax, bar, kind) in enumerate(panels):
            ax = fig.add_subplot(grid[i // 2, i % 2])
            count = n_pca if label.startswith("pca") else n
            if kind == "spectral":
                im = ax.imshow(image, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                               extent=(0.5, count + 0.5, y0, y1))
                geometry.frequency_axis(ax)
                ax.set_xlabel("component (largest " + ("variance" if label.startswith("pca") else "energy")
                              + " first)")
            else:
                im = ax.imshow(image, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                               extent=(*geometry.time_extent(), 0.5, count + 0.5))
                ax.set_xlabel("time (s)")
                ax.set_ylabel("component")
            ax.set_title(panel_title)
            ax.set_label(label)
            fig.colorbar(im, ax=ax, label=bar, pad=0.01)
        fig.suptitle((title + "\n" if title else "") +
                     f"PCA: {n_pca} components explain {explained.sum() * 100:.1f}% of the variance, "
                     f"{negative:.0f}% of their entries are negative (cancellations, not sounds). "
                     f"NMF: {n} additive parts, every entry ≥ 0.")
    return fig


def rank_figure(ks, losses, suggested_k: int | None, rule: str, *, beta: float = 1.0,
                title: str = "") -> Figure:
    """Loss against the number of components k, the chord from the first to the last k, and the
    suggested k marked."""
    ks = np.asarray(ks)
    losses = np.asarray(losses, dtype=np.float64)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(6.5, 12.0)
        ax = fig.add_subplot()
        ax.plot(ks, losses, "o-", color="black", lw=2, label="loss of the best rank-k fit")
        ax.plot([ks[0], ks[-1]], [losses[0], losses[-1]], "--", color="grey", label="chord (first to last k)")
        if suggested_k is not None:
            i = int(np.flatnonzero(ks == suggested_k)[0])
            ax.plot([suggested_k], [losses[i]], "o", ms=14, mfc="none", mec="#d62728", mew=3,
                    label=f"suggested k = {suggested_k}")
        ax.set_xticks(ks)
        ax.set_xlabel("number of components k")
        ax.set_ylabel(f"D (V | WH), {beta_name(beta)}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right")
        ax.set_title((title + "\n" if title else "") + rule, fontweight="normal")
        ax.set_label("loss by rank")
    return fig


def spectrogram_figure(spectrogram: np.ndarray, sample_rate: int, params, *, title: str = "",
                       ref: float | None = None, width: float = 12.0, height: float = 3.0) -> Figure:
    """One spectrogram panel (for the report's players); ref fixes 0 dB so stems compare."""
    geometry = Axes(sample_rate, params.n_fft, params.hop_length, spectrogram.shape[1])
    with matplotlib.rc_context(STYLE):
        fig = new_figure(height, width)
        draw_spectrogram(fig, fig.add_subplot(), geometry, spectrogram, title, ref=ref)
    return fig


def demo_figure(sample_rate: int, params, mixture: np.ndarray, true_spectrograms: np.ndarray,
                estimated_spectrograms: np.ndarray, names: list[str], si_sdr: list[float],
                near_mixture: np.ndarray, near_estimates: np.ndarray, near_si_sdr: list[float],
                near_label: str) -> Figure:
    """The demo: the mixture and the SI-SDR of every source; each true source beside its
    estimate and their average spectra; last, the control: the mixture of two near-identical
    spectra and what separation makes of it.

    Spectrograms are magnitudes (n_bins, n_frames); estimates are in the order of the true sources.
    """
    geometry = Axes(sample_rate, params.n_fft, params.hop_length, mixture.shape[1])
    ref = float(geometry.image(mixture).max())
    n = len(names)
    with matplotlib.rc_context(STYLE):
        fig = new_figure(3.2 * (n + 2) + 0.6)
        grid = fig.add_gridspec(n + 2, 3)
        draw_spectrogram(fig, fig.add_subplot(grid[0, 0]), geometry, mixture, "the mixture", ref=ref,
                         label="mixture")
        bars = fig.add_subplot(grid[0, 1:])
        labels = names + [f"control {i + 1}" for i in range(len(near_si_sdr))]
        values = list(si_sdr) + list(near_si_sdr)
        colours = [colour(i) for i in range(n)] + ["#b0b0b0"] * len(near_si_sdr)
        x = np.arange(len(values)) + np.array([0] * n + [0.6] * len(near_si_sdr))
        bars.bar(x, values, 0.7, color=colours, edgecolor="black")
        for xi, v in zip(x, values):
            bars.text(xi, v + (1 if v >= 0 else -1), f"{v:.1f} dB", ha="center",
                      va="bottom" if v >= 0 else "top")
        bars.axhline(0, color="black", lw=1)
        bars.axhline(10, color="black", ls=":", lw=1)
        bars.text(x[-1] + 0.45, 10, "10 dB", va="bottom", ha="right", fontsize=9)
        bars.set_xticks(x, labels)
        low, high = min(values + [0]), max(values + [10])
        bars.set_ylim(low - 0.15 * (high - low) - 1, high + 0.15 * (high - low) + 1)
        bars.set_ylabel("SI-SDR (dB, higher is better)")
        bars.set_title(f"separation quality: {n} distinct sources; control: two near-identical spectra")
        bars.set_label("si-sdr")
        for i in range(n):
            draw_spectrogram(fig, fig.add_subplot(grid[i + 1, 0]), geometry, true_spectrograms[i],
                             f"true {names[i]}", ref=ref, label=f"true {names[i]}")
            draw_spectrogram(fig, fig.add_subplot(grid[i + 1, 1]), geometry, estimated_spectrograms[i],
                             f"separated {names[i]}: SI-SDR {si_sdr[i]:.1f} dB", ref=ref,
                             label=f"separated {names[i]}")
            spectra = fig.add_subplot(grid[i + 1, 2])
            top = float(geometry.bands(true_spectrograms[i].mean(axis=1)).max())
            for values_, style, width, alpha, label in ((true_spectrograms[i], "-", 5, 0.35, "true"),
                                                        (estimated_spectrograms[i], "-", 1.2, 1.0, "separated")):
                mean = geometry.bands(values_.mean(axis=1))
                spectra.plot(np.log10(geometry.centres), to_db(mean, ref=top, db_range=60), style,
                             lw=width, alpha=alpha, color=colour(i), label=label)
            geometry.frequency_axis(spectra, "x")
            spectra.set_ylabel("mean level (dB)")
            spectra.set_title(f"average spectrum of {names[i]}")
            spectra.legend(loc="upper right", fontsize=9)
            spectra.grid(True, alpha=0.3)
            spectra.set_label(f"spectrum {names[i]}")
        near_ref = float(geometry.image(near_mixture).max())
        draw_spectrogram(fig, fig.add_subplot(grid[n + 1, 0]), geometry, near_mixture,
                         f"control mixture: {near_label}", ref=near_ref, label="control mixture")
        for j, (estimate, score) in enumerate(zip(near_estimates, near_si_sdr)):
            draw_spectrogram(fig, fig.add_subplot(grid[n + 1, 1 + j]), geometry, estimate,
                             f"control, separated {j + 1}: SI-SDR {score:.1f} dB", ref=near_ref,
                             label=f"control separated {j + 1}")
        fig.suptitle("nmfsep demo: synthetic sources, mixed, then separated blind by NMF")
    return fig
