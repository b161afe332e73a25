#!/usr/bin/env python3
"""Regenerate every audio file in sample_audio/ (and its README.md), deterministically.

    .venv/bin/python sample_audio/make_samples.py

Tools needed to regenerate (NOT needed to use the committed files; tests and CI never run this):
  - Python with numpy, scipy and soundfile (the project's venv has them)
  - espeak-ng            (Debian package `espeak-ng`, tested with 1.51)       -> voices
  - fluidsynth           (Debian package `fluidsynth`, tested with 2.3.1)     -> piano_bass
  - FluidR3_GM soundfont (Debian package `fluid-soundfont-gm`,
                          /usr/share/sounds/sf2/FluidR3_GM.sf2)
MIDI files are written by hand below (no mido needed). All randomness uses fixed seeds, and
the external tools are deterministic, so a rerun reproduces the same files on the same versions.

Every mixture `<name>_mix.wav` comes with its true sources `<name>_src1.wav`, `<name>_src2.wav`,
ordered by spectral centroid (lowest first, the order `nmfsep split` writes blind stems in).
All files are 16-bit PCM WAV. The sources are quantized to int16 first and the mixture is their
integer sum, so `mix == src1 + src2` holds exactly, sample for sample, when read back as floats.
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

HERE = Path(__file__).resolve().parent
SOUNDFONT = Path(os.environ.get("NMFSEP_SOUNDFONT", "/usr/share/sounds/sf2/FluidR3_GM.sf2"))
PEAK = 0.85  # peak of every mixture after scaling (full scale = 1.0)


# --------------------------------------------------------------------------- helpers


def fade(x: np.ndarray, sr: int, seconds: float = 0.01) -> np.ndarray:
    """Raised-cosine fade in and out along axis 0 (avoids clicks at the file edges)."""
    n = int(seconds * sr)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))
    x = x.copy()
    x[:n] *= ramp.reshape(-1, *([1] * (x.ndim - 1)))
    x[-n:] *= ramp[::-1].reshape(-1, *([1] * (x.ndim - 1)))
    return x


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad along axis 0 to exactly n frames."""
    if len(x) >= n:
        return x[:n]
    pad = [(0, n - len(x))] + [(0, 0)] * (x.ndim - 1)
    return np.pad(x, pad)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def spectral_centroid(x: np.ndarray, sr: int, n_fft: int = 2048) -> float:
    """Centroid (Hz) of the long-term magnitude spectrum of x (channels averaged)."""
    mono = x.mean(axis=1) if x.ndim == 2 else x
    n_frames = 1 + (len(mono) - n_fft) // (n_fft // 2)
    frames = np.stack([mono[i * n_fft // 2: i * n_fft // 2 + n_fft] for i in range(n_frames)])
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)).sum(axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    return float((freqs * mag).sum() / mag.sum())


def write_mixture(name: str, sources: list[np.ndarray], sr: int) -> list[str]:
    """Order sources by centroid, equalize nothing, scale jointly, quantize, write src + mix.

    The sources are scaled by one common gain so the mixture peaks at PEAK, rounded to int16,
    and the mixture is written as the integer sum of the rounded sources (exact).
    Returns the descriptions of the sources in written order ("src1", "src2").
    """
    order = sorted(range(len(sources)), key=lambda i: spectral_centroid(sources[i], sr))
    sources = [sources[i] for i in order]
    gain = PEAK / np.max(np.abs(np.sum(sources, axis=0)))
    ints = [np.round(s * gain * 32768.0).astype(np.int32) for s in sources]
    mix = np.sum(ints, axis=0)
    assert np.max(np.abs(mix)) <= 32767 and all(np.max(np.abs(s)) <= 32767 for s in ints)
    for i, s in enumerate(ints, start=1):
        sf.write(HERE / f"{name}_src{i}.wav", s.astype(np.int16), sr, subtype="PCM_16")
    sf.write(HERE / f"{name}_mix.wav", mix.astype(np.int16), sr, subtype="PCM_16")
    return order


# ---------------------------------------------------------------- 1. tones (the demo)


def harmonic_tone(f0: float, amplitudes: list[float], sr: int, n: int) -> np.ndarray:
    t = np.arange(n) / sr
    out = np.zeros(n)
    for h, a in enumerate(amplitudes, start=1):
        if h * f0 < sr / 2 - 500:
            out += a * np.sin(2 * np.pi * h * f0 * t)
    return out


def pulses(period: float, on: float, offset: float, sr: int, n: int, ramp: float = 0.015,
           decay: float | None = None) -> np.ndarray:
    """On/off envelope: a note of length `on` every `period` seconds from `offset`.

    Each note has raised-cosine ramps of `ramp` seconds; with `decay` (seconds) it also decays
    exponentially, like a plucked string.
    """
    env = np.zeros(n)
    n_on, n_ramp = int(on * sr), int(ramp * sr)
    shape = np.ones(n_on)
    r = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n_ramp))
    shape[:n_ramp] *= r
    shape[-n_ramp:] *= r[::-1]
    if decay is not None:
        shape *= np.exp(-np.arange(n_on) / (decay * sr))
    start = offset
    while start < n / sr:
        i = int(round(start * sr))
        seg = shape[: max(0, min(n_on, n - i))]
        env[i: i + len(seg)] += seg
        start += period
    return env


def make_tones(sr: int = 22050, seconds: float = 3.5) -> dict:
    """Two harmonic sources with fixed spectra and different on/off patterns.

    low:  f0 = 220 Hz, all harmonics, amplitude 0.8**(h-1) (dull), plucked notes every 0.5 s.
    high: f0 = 587.33 Hz (D5), odd harmonics 1/h, even ones 0.05/h (clarinet-like, bright),
          held notes every 0.7 s. 3.5 s is one full cycle of both patterns; they overlap often.
    Each source's spectrum is constant over time, so plain KL-NMF with k = 2 separates them.
    """
    n = int(seconds * sr)
    low = harmonic_tone(220.0, [0.8 ** (h - 1) for h in range(1, 16)], sr, n)
    low *= pulses(0.5, 0.32, 0.0, sr, n, decay=0.25)
    high = harmonic_tone(587.33, [(1.0 if h % 2 else 0.05) / h for h in range(1, 14)], sr, n)
    high *= pulses(0.7, 0.45, 0.15, sr, n)
    low, high = low / rms(low), high / rms(high)  # equal loudness
    order = write_mixture("tones", [low, high], sr)
    names = ["220 Hz plucked tone, all harmonics (pulses every 0.5 s)",
             "587 Hz held tone, odd harmonics (pulses every 0.7 s)"]
    return {"sr": sr, "sources": [names[i] for i in order],
            "mix": "two synthetic harmonic sources with different on/off patterns (the demo)"}


# -------------------------------------------------------------------------- 2. voices


def espeak(text: str, voice: str, sr: int, pitch: int = 50, speed: int = 160) -> np.ndarray:
    """Speak text with espeak-ng and return float samples resampled to sr (espeak: 22050 Hz)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed),
                        "-w", str(path), text], check=True)
        x, native = sf.read(path, dtype="float64")
    if native != sr:
        g = np.gcd(native, sr)
        x = resample_poly(x, sr // g, native // g)
    return x


def make_voices(sr: int = 16000, seconds: float = 4.0) -> dict:
    n = int(seconds * sr)
    male = espeak("The quick brown fox jumps over the lazy dog near the river bank.",
                  "en+m3", sr, pitch=35, speed=170)
    female = espeak("She sells bright sea shells by the quiet shore every morning.",
                    "en+f3", sr, pitch=70, speed=165)
    male = fade(fit_length(male, n), sr)
    female = fade(fit_length(np.concatenate([np.zeros(int(0.3 * sr)), female]), n), sr)
    male, female = male / rms(male), female / rms(female)
    order = write_mixture("voices", [male, female], sr)
    names = ["male voice (espeak-ng en+m3, low pitch)",
             "female voice (espeak-ng en+f3, high pitch)"]
    return {"sr": sr, "sources": [names[i] for i in order],
            "mix": "two espeak-ng voices, male and female, different sentences"}


# ---------------------------------------------------------------------- 3. piano_bass


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_file(notes: list[tuple[float, float, int, int]], program: int, channel: int = 0,
              pan: int = 64, volume: int = 100, end: float | None = None) -> bytes:
    """A minimal format-0 standard MIDI file.

    notes: (start_seconds, duration_seconds, pitch, velocity). Tempo is 120 bpm with 480 ticks
    per beat, so one second is 960 ticks. `end` (seconds) places the end of the track late
    enough for release tails to be rendered.
    """
    tps = 960  # ticks per second at 120 bpm, 480 ticks per quarter note
    events = []  # (tick, order, bytes): note-offs sort before note-ons at the same tick
    for start, dur, pitch, vel in notes:
        events.append((round(start * tps), 1, bytes([0x90 | channel, pitch, vel])))
        events.append((round((start + dur) * tps), 0, bytes([0x80 | channel, pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray()
    track += b"\x00\xff\x51\x03" + (500000).to_bytes(3, "big")  # tempo: 120 bpm
    track += bytes([0x00, 0xC0 | channel, program])
    track += bytes([0x00, 0xB0 | channel, 7, volume])
    track += bytes([0x00, 0xB0 | channel, 10, pan])
    tick = 0
    for t, _, data in events:
        track += _varlen(t - tick) + data
        tick = t
    last = max(tick, round((end or 0) * tps))
    track += _varlen(last - tick) + b"\xff\x2f\x00"  # end of track
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def fluidsynth(midi: bytes, sr: int, gain: float = 0.5) -> np.ndarray:
    """Render MIDI with fluidsynth + FluidR3_GM; returns float stereo samples (n, 2)."""
    if not SOUNDFONT.exists():
        raise SystemExit(f"soundfont not found: {SOUNDFONT} (apt install fluid-soundfont-gm)")
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi)
        subprocess.run(["fluidsynth", "-n", "-i", "-q", "-C", "0", "-R", "1", "-g", str(gain),
                        "-r", str(sr), "-O", "float", "-T", "wav", "-F", str(wav),
                        str(SOUNDFONT), str(mid)], check=True, stdout=subprocess.DEVNULL)
        x, _ = sf.read(wav, dtype="float64", always_2d=True)
    return x


def make_piano_bass(sr: int = 22050, seconds: float = 4.0) -> dict:
    """Piano chords over a bass line, C - Am - F - G, one chord a second; stereo (piano left)."""
    n = int(seconds * sr)
    chords = [(48, [60, 64, 67]), (45, [57, 60, 64]), (41, [57, 60, 65]), (43, [59, 62, 67])]
    piano, bass = [], []
    for bar, (root, triad) in enumerate(chords):
        t0 = bar * 1.0
        piano.append((t0, 0.9, triad[0] + 12, 80))
        piano.append((t0, 0.9, triad[1] + 12, 76))
        piano += [(t0 + 0.5, 0.4, triad[2] + 12, 72), (t0 + 0.25, 0.7, triad[2], 70)]
        bass += [(t0, 0.45, root - 12, 100), (t0 + 0.5, 0.2, root - 12, 90),
                 (t0 + 0.75, 0.2, root - 5, 90)]
    piano_audio = fluidsynth(midi_file(piano, program=0, channel=0, pan=36, end=seconds + 1), sr)
    bass_audio = fluidsynth(midi_file(bass, program=33, channel=1, pan=92, end=seconds + 1), sr)
    piano_audio = fade(fit_length(piano_audio, n), sr, 0.05)
    bass_audio = fade(fit_length(bass_audio, n), sr, 0.05)
    piano_audio, bass_audio = piano_audio / rms(piano_audio), bass_audio / rms(bass_audio)
    order = write_mixture("piano_bass", [piano_audio, bass_audio], sr)
    names = ["piano (GM 0 acoustic grand, panned left)",
             "bass (GM 33 electric bass finger, panned right)"]
    return {"sr": sr, "sources": [names[i] for i in order],
            "mix": "piano chords over a bass line, fluidsynth + FluidR3_GM, stereo"}


# -------------------------------------------------------------------------- README


def write_readme(made: dict[str, dict]) -> None:
    lines = ["# sample_audio", "",
             "Small mixtures with their true sources, for the demo, the tests and trying things.",
             "Generated by `make_samples.py`; do not edit the audio by hand.", "",
             "All files are 16-bit PCM WAV. `<name>_mix.wav` is exactly the sample-wise sum of",
             "`<name>_src1.wav` and `<name>_src2.wav`; sources are numbered by spectral centroid,",
             "lowest first (the order `nmfsep split` writes blind stems in).", "",
             "| file | what it is | rate | channels | duration |",
             "|---|---|---|---|---|"]
    for name, info in made.items():
        for suffix, what in [("mix", info["mix"])] + [
                (f"src{i}", s) for i, s in enumerate(info["sources"], start=1)]:
            path = HERE / f"{name}_{suffix}.wav"
            meta = sf.info(path)
            lines.append(f"| `{path.name}` | {what} | {meta.samplerate} Hz | {meta.channels} "
                         f"| {meta.frames / meta.samplerate:.2f} s |")
    lines += ["", "## Regenerate", "",
              "    .venv/bin/python sample_audio/make_samples.py", "",
              "Needs espeak-ng, fluidsynth and the FluidR3_GM soundfont (Debian: `apt install",
              "espeak-ng fluidsynth fluid-soundfont-gm`); see the top of the script. The output is",
              "deterministic for given tool versions (espeak-ng 1.51, fluidsynth 2.3.1).", ""]
    (HERE / "README.md").write_text("\n".join(lines))


def main() -> None:
    made = {"tones": make_tones(), "voices": make_voices(), "piano_bass": make_piano_bass()}
    write_readme(made)
    for path in sorted(HERE.glob("*.wav")):
        x, sr = sf.read(path, always_2d=True)
        print(f"{path.name:24s} {sr:6d} Hz {x.shape[1]} ch {len(x) / sr:5.2f} s "
              f"rms {rms(x):.4f} peak {np.max(np.abs(x)):.3f} "
              f"centroid {spectral_centroid(x, sr):7.1f} Hz")


if __name__ == "__main__":
    main()
