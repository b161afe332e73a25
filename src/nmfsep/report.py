"""report.html: one self-contained page per split, to listen to and look at.

An audio player for the mixture and for each stem (the audio embedded as base64 FLAC, or WAV
where FLAC cannot hold it), each with its spectrogram; the overview figure (spectrogram, W, H,
masks, loss curve); the settings used and the time taken. Everything is inside the one file
(no network, no other files), so it opens offline and can be mailed or archived as is.

Each stem's spectrogram is its mask times the mixture's spectrogram: the stem before the inverse
STFT, from the separation's own masks (nothing is separated again).

The page's small script writes each player's duration into ``data-duration`` once its audio has
loaded (``data-error`` if it cannot be decoded) and counts script errors in the body's
``data-errors``: what the browser test reads.
"""

import base64
import html
import io
import os
from urllib.parse import quote

import numpy as np
import soundfile as sf

from . import __version__
from .errors import NmfsepError
from .fitting import mean_loss
from .masks import STEADY_PERCENTILE, spatially_filtered

REPORT_NAME = "report.html"
FLAC_MAX_CHANNELS = 8
FLAC_MAX_RATE = 655350

SCRIPT = """
(function () {
  var body = document.body;
  body.dataset.errors = "0";
  window.addEventListener("error", function (event) {
    body.dataset.errors = String(Number(body.dataset.errors) + 1);
    body.dataset.lastError = String(event.message || (event.target && event.target.tagName) || "error");
  }, true);
  document.querySelectorAll("audio").forEach(function (player) {
    function loaded() { player.dataset.duration = player.duration.toFixed(3); }
    function failed() {
      player.dataset.error = player.error ? String(player.error.code) : "unknown";
      var note = document.createElement("p");
      note.className = "error";
      note.textContent = "This browser could not decode this audio.";
      player.after(note);
    }
    if (player.readyState >= 1) { loaded(); } else { player.addEventListener("loadedmetadata", loaded); }
    if (player.error) { failed(); } else { player.addEventListener("error", failed); }
  });
})();
"""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1240px;
       padding: 0 1rem; color: #1b1b1b; background: #fff; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
code { background: #f2f2f2; padding: 0 0.25em; border-radius: 3px; }
.summary { color: #444; margin-top: 0; }
.track { border: 1px solid #ddd; border-radius: 8px; padding: 0.8rem 1rem; margin: 1rem 0; }
.track h3 { margin: 0 0 0.4rem 0; font-size: 1.05rem; }
.track .file { color: #666; font-weight: normal; font-size: 0.9rem; }
audio { width: 100%; margin: 0.3rem 0; }
img { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; } td, th { text-align: left; padding: 0.2rem 1.2rem 0.2rem 0;
  border-bottom: 1px solid #eee; vertical-align: top; }
th { font-weight: 600; color: #333; }
.error { color: #b00020; }
"""


def report_path(stem_paths: list[str], track: str, template: str) -> str:
    """Where the report of one input goes: report.html beside its stems, or {track}.report.html
    there when the --filename template puts several inputs' stems in one folder."""
    folder = os.path.dirname(stem_paths[0])
    if "{track}" in os.path.dirname(template):
        return os.path.join(folder, REPORT_NAME)
    return os.path.join(folder, track.replace("/", "_").replace("\\", "_") + "." + REPORT_NAME)


def encode_audio(samples: np.ndarray, sample_rate: int) -> tuple[str, str]:
    """(MIME type, base64) of samples (n_samples, n_channels): 16-bit FLAC where FLAC holds the
    channel count and rate, else 16-bit WAV. Samples are clipped to [-1, 1] for playback."""
    samples = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    flac = samples.shape[1] <= FLAC_MAX_CHANNELS and sample_rate <= FLAC_MAX_RATE
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="FLAC" if flac else "WAV", subtype="PCM_16")
    return ("audio/flac" if flac else "audio/wav"), base64.b64encode(buffer.getvalue()).decode("ascii")


def _png(fig) -> str:
    from . import figures

    return base64.b64encode(figures.png_bytes(fig)).decode("ascii")


def settings_rows(settings, separation, sound, seconds: float) -> list[tuple[str, str]]:
    """The settings table: what decided the separation, and what it cost."""
    from .figures import beta_name

    params = separation.params
    rate = separation.resampled_to or sound.sample_rate
    models = ", ".join(f"{m.name} ({m.n_bases} bases)" for m in settings.models)
    rows = [
        ("audio", f"{sound.sample_rate} Hz, {sound.n_channels} channel{'s' * (sound.n_channels != 1)}, "
                  f"{sound.n_samples / sound.sample_rate:.2f} s ({sound.n_samples} frames), "
                  f"{sound.format} {sound.subtype}"),
        ("mode", "supervised (models)" if settings.models else "blind"),
        *([("resampled", f"{sound.sample_rate} Hz to the models' {rate} Hz, the stems back to "
                         f"{sound.sample_rate} Hz")] if rate != sound.sample_rate else []),
        ("stems", ", ".join(separation.names)),
    ]
    if settings.models:
        rows += [("models", models), ("free bases (--free)", str(settings.n_free)),
                 ("blend (--blend)", _blend(settings, separation)),
                 ("steady floor", _steady(settings)),
                 *([("register", _register(separation.register))] if separation.register else [])]
    else:
        rows += [("components (--components)", str(separation.bases.shape[1])),
                 ("grouping (--grouping)", settings.grouping),
                 ("grouping confidence", f"{separation.confidence:.2f} (masks moved toward 1/k by "
                                         f"{1 - separation.confidence:.2f})")]
    rows += [
        ("divergence (--beta)", f"{beta_name(settings.beta)} (β = {settings.beta:g})"),
        ("iterations (--iter)", _iterations(separation, settings)),
        ("final loss (per point, as --json)", _loss(separation)),
        ("seed (--seed)", str(settings.seed)),
        ("mask exponent (--power)", f"{separation.power:g}"),
        ("spatial filter", _spatial(sound.n_channels, len(separation.names))),
        ("STFT (--n-fft, --hop)", f"{params.n_fft} samples ({1000 * params.n_fft / rate:.1f} ms), "
                                  f"hop {params.hop_length}"),
    ]
    if settings.sparsity or settings.temporal_smoothness:
        rows.append(("sparsity, smoothness", f"{settings.sparsity:g}, {settings.temporal_smoothness:g}"))
    rows += [("time taken", f"{seconds:.2f} s (separating and writing the stems)"),
             ("nmfsep", __version__)]
    return rows


def render(input_name: str, sound, separation, settings, seconds: float, stem_paths: list[str],
           folder: str, stems: np.ndarray | None = None) -> str:
    """The report's HTML (a str). Every name from the user is escaped.

    stems (n_stems, n_samples, n_channels): the audio written (default separation.stems). For
    playback, audio louder than full scale is scaled down, mixture and stems alike.
    """
    from . import figures

    spectrogram, rate = separation.spectrogram(sound.samples, sound.sample_rate)
    geometry = figures.Axes(rate, separation.params.n_fft, separation.params.hop_length, spectrogram.shape[1])
    ref = float(geometry.image(spectrogram).max())
    stems = separation.stems if stems is None else stems
    peak = float(np.abs(sound.samples).max())
    playback = 1.0 / peak if peak > 1.0 else 1.0
    e = html.escape
    tracks = []
    entries = [("mixture", input_name, None, sound.samples, spectrogram)]
    entries += [(name, path, os.path.relpath(path, folder), stem, mask * spectrogram)
                for name, path, stem, mask in zip(separation.names, stem_paths, stems, separation.masks)]
    for i, (name, path, link, samples, magnitude) in enumerate(entries):
        mime, data = encode_audio(samples * np.float32(playback), sound.sample_rate)
        image = _png(figures.spectrogram_figure(magnitude, rate, separation.params, ref=ref,
                                                title=f"{name}: spectrogram"))
        file_html = (f'<a class="file" href="{e(quote(link))}">{e(link)}</a>' if link
                     else f'<span class="file">{e(path)}</span>')
        tracks.append(
            f'<section class="track" id="track-{i}"><h3>{e(name)} {file_html}</h3>\n'
            f'<audio controls preload="auto" data-name="{e(name)}" src="data:{mime};base64,{data}"></audio>\n'
            f'<img alt="spectrogram of {e(name)}" src="data:image/png;base64,{image}"></section>')
    blended = f": masks blended with a blind split ({separation.blend:g})" if separation.blend else ""
    overview = _png(figures.separation_figure(spectrogram, rate, separation, beta=settings.beta,
                                              title=input_name + blended))
    rows = "\n".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>"
                     for k, v in settings_rows(settings, separation, sound, seconds))
    blind_too = " (and a blind split blended in)" if separation.blend else ""
    summary = (f"{len(separation.names)} stems from {separation.bases.shape[1]} NMF components{blind_too}, "
               f"{max(separation.iterations_run, separation.n_iter)} iterations, {seconds:.2f} s")
    if playback != 1.0:
        summary += f"; the players play the audio {20 * np.log10(playback):.1f} dB down (it exceeds full scale)"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nmfsep: {e(input_name)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>nmfsep separation of <code>{e(input_name)}</code></h1>
<p class="summary">{e(summary)}. The stems add up to the mixture.</p>
<h2>Listen</h2>
{chr(10).join(tracks)}
<h2>The factorization V ≈ W H</h2>
<img alt="mixture spectrogram, bases W, activations H, masks and loss curve" src="data:image/png;base64,{overview}">
<h2>Settings</h2>
<table>
{rows}
</table>
<script>{SCRIPT}</script>
</body>
</html>
"""


def check(path: str, force: bool = False) -> None:
    if os.path.exists(path) and not force:
        raise NmfsepError(f"{path} already exists (use --force to overwrite)")


def write(path: str, input_name: str, sound, separation, settings, seconds: float,
          stem_paths: list[str], stems: np.ndarray | None = None, overwrite: bool = False) -> str:
    """Render the report and write it to path through a temporary file renamed once complete
    (the caller checks first that it may replace an existing one: ``check``; without overwrite,
    one written meanwhile by another run is kept and NmfsepError raised)."""
    from .figures import write_atomic

    text = render(input_name, sound, separation, settings, seconds, stem_paths, os.path.dirname(path) or ".",
                  stems)
    return write_atomic(path, text.encode("utf-8"), "the report", overwrite)


def _loss(separation) -> str:
    loss = mean_loss(separation.loss, separation.bases, separation.activations)
    return "-" if loss is None else f"{loss:.6g}"


def _spatial(n_channels: int, n_stems: int) -> str:
    """The report's spatial-filter row: how the stems come from the masks (nmfsep.masks.source_spectra)."""
    if spatially_filtered(n_channels, n_stems):
        return (f"multichannel Wiener filter: each source's spatial covariance over the {n_channels} channels, "
                "with the masks as its share of the power (where the channels hold the same sound, the mask itself)")
    return "none: each stem is its mask times the input's spectrum" + (" (one channel)" if n_channels == 1 else "")


def _blend(settings, separation) -> str:
    """The report's blend row: the share, and the components and grouping of the blind split
    (pipeline.Settings.blind_counterpart) of the separation's spectrogram; or why there is none."""
    if not settings.blind_share:
        return "none: the models alone"
    if not separation.blend:
        return "none: the blind split contradicted the models (nmfsep.blend.clash), so the models alone"
    counterpart = settings.blind_counterpart()
    counts = sorted(counterpart.component_counts(separation.activations.shape[1]))
    components = (f"{counts[0]} components" if len(counts) == 1 else
                  f"{len(counts)} factorizations of {', '.join(map(str, counts[:-1]))} and {counts[-1]} components")
    return f"{settings.blind_share:g} of a blind split in the masks ({components}, grouping {counterpart.grouping})"


def _register(picked: dict) -> str:
    """The report's register row (pipeline.Separation.register, nmfsep.register)."""
    from .register import HIGH_HZ

    if picked["pitch_hz"] is None:
        return f"{picked['stem']}: no pitch found (silent or too short): split with the built-in {picked['model']}"
    how = "above" if picked["model"] == "speech_high" else "not above"
    return (f"{picked['stem']}: median pitch {picked['pitch_hz']:.0f} Hz, {how} {HIGH_HZ:.0f} Hz: "
            f"split with the built-in {picked['model']}; its harmonic masks weigh {picked['harmonics']:g} in the masks")


def _steady(settings) -> str:
    """The report's steady-floor row (pipeline.Settings.steady_floor, nmfsep.masks.masks_of)."""
    floor = settings.steady_floor
    if floor is None:
        return "none: no voice beside a built-in noise or music"
    return (f"the part of the voices' activations ({', '.join(floor['from'])}) under their {STEADY_PERCENTILE:g}th "
            f"percentile over time goes to {floor['to']}")


def _iterations(separation, settings) -> str:
    """The report's iterations row: all the solver's iterations, and the first factorization's."""
    ran = f"{separation.n_iter} run"
    if separation.iterations_run > separation.n_iter:
        ran = f"{separation.iterations_run} run in all ({separation.n_iter} in the first factorization)"
    return f"{ran}, at most {settings.max_iter} per factorization, tolerance {settings.tol:g}"
