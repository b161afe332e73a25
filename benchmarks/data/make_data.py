#!/usr/bin/env python3
"""Regenerate the quality-benchmark data in benchmarks/data/, deterministically.

    .venv/bin/python benchmarks/data/make_data.py

Tools needed to regenerate (NOT needed to run the benchmark on the committed files):
  - Python with numpy, scipy and soundfile (the project's venv has them)
  - espeak-ng            (Debian package `espeak-ng`, tested with 1.51)
  - fluidsynth           (Debian package `fluidsynth`, tested with 2.3.1)
  - FluidR3_GM soundfont (Debian package `fluid-soundfont-gm`,
                          /usr/share/sounds/sf2/FluidR3_GM.sf2; override with NMFSEP_SOUNDFONT)
MIDI files are written by hand below (no mido needed). Every random choice uses a fixed seed and
the external tools are deterministic, so a rerun reproduces the same bytes on the same versions.

Layout, one folder per case:
    <case>/mix.wav             the mixture, exactly the sample-wise sum of the refs
    <case>/ref_<source>.wav    each true source of the mixture
    <case>/train_<source>.wav  separate clean material of the same source (other sentences,
                               other notes, another stretch of the same noise process)
    cases.json                 {case: [source, ...]}

Everything is 16 kHz mono 16-bit PCM WAV. Refs are rounded to int16 first and the mixture is
written as their integer sum, so mix == sum(refs) holds exactly when read back as floats (this
keeps the folder under 8 MB, which 32-bit float files would not). Sources in a mixture have
equal RMS (0 dB between them); each training file has the RMS of its source's ref.
"""

from __future__ import annotations

import json
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
SR = 16000
MIX_SECONDS = 6.0
TRAIN_SECONDS = 10.0
PEAK = 0.9  # peak of each mixture (full scale = 1.0)


# --------------------------------------------------------------------------- helpers


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def fit(x: np.ndarray, seconds: float, fade_s: float = 0.02) -> np.ndarray:
    """Trim or zero-pad to exactly `seconds`, with short raised-cosine fades at both ends."""
    n = int(round(seconds * SR))
    x = np.pad(x, (0, max(0, n - len(x))))[:n].astype(np.float64)
    k = int(fade_s * SR)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, k))
    x[:k] *= ramp
    x[-k:] *= ramp[::-1]
    return x


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SR)))


def write_case(case: str, refs: dict[str, np.ndarray], train: dict[str, np.ndarray]) -> None:
    """Equalize the refs to 0 dB, scale jointly, quantize, write refs, mix and training files."""
    folder = HERE / case
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.wav"):
        old.unlink()
    refs = {name: x / rms(x) for name, x in refs.items()}
    gain = PEAK / np.max(np.abs(np.sum(list(refs.values()), axis=0)))
    ints = {name: np.round(x * gain * 32768.0).astype(np.int32) for name, x in refs.items()}
    mix = np.sum(list(ints.values()), axis=0)
    assert np.max(np.abs(mix)) <= 32767
    for name, x in ints.items():
        sf.write(folder / f"ref_{name}.wav", x.astype(np.int16), SR, subtype="PCM_16")
    sf.write(folder / "mix.wav", mix.astype(np.int16), SR, subtype="PCM_16")
    for name, x in train.items():
        target = rms(ints[name] / 32768.0)
        x = x * (target / rms(x))
        x = x * min(1.0, 0.98 / np.max(np.abs(x)))  # never clip
        sf.write(folder / f"train_{name}.wav", np.round(x * 32768.0).astype(np.int16), SR,
                 subtype="PCM_16")


# ------------------------------------------------------------------------------ speech


def espeak(text: str, voice: str, pitch: int, speed: int) -> np.ndarray:
    """Speak text with espeak-ng; float samples resampled from 22050 Hz to SR."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed),
                        "-w", str(path), text], check=True)
        x, native = sf.read(path, dtype="float64")
    g = np.gcd(native, SR)
    return resample_poly(x, SR // g, native // g)


def speech(sentences: list[str], voice: str, pitch: int, speed: int, lead: float = 0.0,
           pause: float = 0.25) -> np.ndarray:
    parts = [silence(lead)]
    for s in sentences:
        parts += [espeak(s, voice, pitch, speed), silence(pause)]
    return np.concatenate(parts)


MALE = ("en+m3", 35, 165)    # espeak-ng voice, pitch (0-99), speed (words per minute)
FEMALE = ("en+f3", 72, 170)
NOISY_SPEAKER = ("en-us+f2", 60, 175)


def case_voices() -> None:
    refs = {
        "male": speech(["The old lighthouse keeper walked slowly down the winding path, "
                        "carrying a lantern and a basket of fresh bread."], *MALE),
        "female": speech(["Yesterday afternoon my sister painted the kitchen a bright shade "
                          "of yellow, and then we ate dinner outside."], *FEMALE, lead=0.3),
    }
    train = {
        "male": speech(["A gentle breeze moved through the tall grass beside the farm.",
                        "Please remember to close the window before you leave the office.",
                        "Seven ships sailed north in search of whales."],
                       *MALE),
        "female": speech(["The children counted the stars until they fell asleep on the porch.",
                          "Could you bring me the blue folder from the top shelf, please?",
                          "Music drifted across the quiet square."],
                         *FEMALE),
    }
    write_case("voices", {k: fit(v, MIX_SECONDS) for k, v in refs.items()},
               {k: fit(v, TRAIN_SECONDS) for k, v in train.items()})


def pink_noise(seconds: float, seed: int) -> np.ndarray:
    """Gaussian noise with a 1/f power spectrum (flat below 50 Hz), from a fixed seed."""
    n = int(round(seconds * SR))
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SR)
    spectrum /= np.sqrt(np.maximum(freqs, 50.0))
    return np.fft.irfft(spectrum, n)


def case_voice_noise() -> None:
    voice = speech(["Attention passengers, the train to the airport will now depart from "
                    "platform number four."], *NOISY_SPEAKER, lead=0.2)
    train_voice = speech(["Every morning the baker opens his shop before the sun comes up.",
                          "We should meet at the library on Thursday to finish the project.",
                          "Tomorrow will be cloudy and cold."],
                         *NOISY_SPEAKER)
    write_case("voice_noise",
               {"speech": fit(voice, MIX_SECONDS), "noise": fit(pink_noise(MIX_SECONDS, 101),
                                                                MIX_SECONDS)},
               {"speech": fit(train_voice, TRAIN_SECONDS),
                "noise": fit(pink_noise(TRAIN_SECONDS, 202), TRAIN_SECONDS)})


# ------------------------------------------------------------------------------- MIDI


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_file(notes: list[tuple[float, float, int, int]], program: int, channel: int,
              end: float) -> bytes:
    """A minimal format-0 standard MIDI file for one instrument.

    notes: (start_seconds, duration_seconds, pitch, velocity). Tempo 120 bpm, 480 ticks per
    beat, so one second is 960 ticks. The track ends at `end` seconds so release tails render.
    Channel 9 is the General MIDI percussion channel (program 0 = standard kit).
    """
    tps = 960
    events = []  # (tick, order, bytes): note-offs sort before note-ons at the same tick
    for start, dur, pitch, vel in notes:
        events.append((round(start * tps), 1, bytes([0x90 | channel, pitch, vel])))
        events.append((round((start + dur) * tps), 0, bytes([0x80 | channel, pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray(b"\x00\xff\x51\x03" + (500000).to_bytes(3, "big"))  # 120 bpm
    track += bytes([0x00, 0xC0 | channel, program, 0x00, 0xB0 | channel, 7, 100])
    tick = 0
    for t, _, data in events:
        track += _varlen(t - tick) + data
        tick = t
    track += _varlen(max(0, round(end * tps) - tick)) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def render(notes: list[tuple[float, float, int, int]], program: int, seconds: float,
           channel: int = 0) -> np.ndarray:
    """Render one instrument with fluidsynth + FluidR3_GM (reverb on, chorus off), mono, SR."""
    if not SOUNDFONT.exists():
        raise SystemExit(f"soundfont not found: {SOUNDFONT} (apt install fluid-soundfont-gm)")
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi_file(notes, program, channel, end=seconds + 1.0))
        subprocess.run(["fluidsynth", "-n", "-i", "-q", "-C", "0", "-R", "1", "-g", "0.5",
                        "-r", str(SR), "-O", "float", "-T", "wav", "-F", str(wav),
                        str(SOUNDFONT), str(mid)], check=True, stdout=subprocess.DEVNULL)
        x, _ = sf.read(wav, dtype="float64", always_2d=True)
    return fit(x.mean(axis=1), seconds, fade_s=0.05)


# GM programs
PIANO, GUITAR, BASS, VIOLIN, CELLO, CLARINET, FLUTE = 0, 24, 33, 40, 42, 71, 73
DRUMS = "drums"

# The mixtures' progression (A minor: Am F C G, 1.5 s a chord) and the training material's
# (other chords: Dm G Em A7 Bb C7, 1.25 s a chord, then repeated).
MIX_CHORDS = [[57, 60, 64], [53, 57, 60], [48, 52, 55], [55, 59, 62]]
TRAIN_CHORDS = [[50, 53, 57], [55, 59, 62], [52, 55, 59], [57, 61, 64, 67], [58, 62, 65],
                [48, 52, 55, 58]]


def chord_tones(chord: list[int], low: int, high: int) -> list[int]:
    """All pitches in [low, high] whose pitch class is in the chord."""
    classes = {p % 12 for p in chord}
    return [p for p in range(low, high + 1) if p % 12 in classes]


def melody(rng, chords, chord_len, low, high, steps, seconds, vel=(70, 100), legato=0.95,
           passing=0.3):
    """A melody that moves by small steps between chord tones (with some scale passing notes).

    steps: note lengths to choose from (seconds). Returns notes (start, dur, pitch, velocity).
    """
    scale = [p for p in range(low, high + 1) if p % 12 in {0, 2, 4, 5, 7, 9, 11}]
    notes, t, pitch = [], 0.0, None
    while t < seconds - 0.1:
        chord = chords[int(t // chord_len) % len(chords)]
        pool = chord_tones(chord, low, high)
        if rng.random() < passing:
            pool = scale
        if pitch is not None:  # prefer close pitches
            near = [p for p in pool if 0 < abs(p - pitch) <= 5]
            pool = near or pool
        pitch = int(rng.choice(pool))
        dur = float(rng.choice(steps))
        notes.append((t, dur * legato, pitch, int(rng.integers(*vel))))
        t += dur
    return notes


def bass_line(rng, chords, chord_len, low, high, step, seconds, vel=(85, 110)):
    """Roots on the downbeat, then roots / fifths / octaves on the other beats."""
    notes, t = [], 0.0
    while t < seconds - 0.1:
        bar_pos = t % chord_len
        root = chords[int(t // chord_len) % len(chords)][0]
        options = [p for p in chord_tones([root, root + 7], low, high)]
        roots = [p for p in options if p % 12 == root % 12]
        pitch = roots[0] if bar_pos < 1e-6 else int(rng.choice(options))
        notes.append((t, step * 0.9, pitch, int(rng.integers(*vel))))
        t += step
    return notes


def block_chords(rng, chords, chord_len, low, seconds, rhythm, vel=(60, 85)):
    """Chords voiced from `low` upwards, struck on the given offsets within each chord."""
    notes, t0, i = [], 0.0, 0
    while t0 < seconds - 0.1:
        chord = chords[i % len(chords)]
        voicing = sorted(chord_tones(chord, low, low + 12))[:4]
        for k, offset in enumerate(rhythm):
            end = rhythm[k + 1] if k + 1 < len(rhythm) else chord_len
            for p in voicing:
                notes.append((t0 + offset, (end - offset) * 0.95, p, int(rng.integers(*vel))))
        t0 += chord_len
        i += 1
    return notes


def arpeggio(rng, chords, chord_len, low, high, step, seconds, vel=(65, 95)):
    """Broken chords up and down (a fingerpicked guitar), each note ringing for 3 steps."""
    notes, t = [], 0.0
    while t < seconds - 0.1:
        chord = chords[int(t // chord_len) % len(chords)]
        tones = chord_tones(chord, low, high)
        pattern = tones[:4] + tones[1:4][::-1][1:]
        for k in range(int(round(chord_len / step))):
            notes.append((t + k * step, step * 3, pattern[k % len(pattern)],
                          int(rng.integers(*vel))))
        t += chord_len
    return notes


def drum_pattern(rng, seconds, beat, variant):
    """General MIDI kit (channel 10): kick 36, snare 38, closed/open hat 42/46, crash 49,
    ride 51, toms 45/47/50. variant 0: rock groove for the mixture; 1: other grooves and fills
    (ride, toms, open hats) for training."""
    notes, t, bar = [], 0.0, 0
    eighth = beat / 2
    while t < seconds - 0.1:
        for k in range(8):  # one 4/4 bar in eighths
            s = t + k * eighth
            if s >= seconds - 0.05:
                break
            hat = 51 if (variant and bar % 2) else (46 if variant and k == 7 else 42)
            notes.append((s, eighth * 0.9, hat, int(rng.integers(60, 90))))
            if k in (0, 4) or (variant and k == 5 and bar % 2) or (not variant and k == 3 and
                                                                   bar % 2):
                notes.append((s, eighth, 36, int(rng.integers(95, 120))))
            if k in (2, 6):
                notes.append((s, eighth, 38, int(rng.integers(90, 115))))
            if variant and bar % 3 == 2 and k >= 4:  # tom fill
                notes.append((s + eighth / 2, eighth / 2, [50, 47, 45, 45][k - 4], 100))
            if k == 0 and bar % (2 if variant else 4) == 0:
                notes.append((s, beat * 2, 49, int(rng.integers(80, 100))))
        t += 8 * eighth
        bar += 1
    return notes


def music_case(case: str, parts: dict[str, tuple], seed: int) -> None:
    """parts: source name -> (program, mixture notes fn, training notes fn); fns take an rng."""
    rng = np.random.default_rng(seed)
    refs, train = {}, {}
    for name, (program, mix_fn, train_fn) in parts.items():
        channel = 9 if program == DRUMS else 0
        prog = 0 if program == DRUMS else program
        refs[name] = render(mix_fn(rng), prog, MIX_SECONDS, channel)
        train[name] = render(train_fn(rng), prog, TRAIN_SECONDS, channel)
    write_case(case, refs, train)


M, T = MIX_SECONDS, TRAIN_SECONDS


def case_flute_cello() -> None:
    music_case("flute_cello", {
        "flute": (FLUTE,
                  lambda r: melody(r, MIX_CHORDS, 1.5, 72, 88, [0.375, 0.375, 0.75], M),
                  lambda r: melody(r, TRAIN_CHORDS, 1.25, 70, 91, [0.25, 0.5, 0.75], T)),
        "cello": (CELLO,
                  lambda r: melody(r, [c[:1] + [c[0] - 12] for c in MIX_CHORDS], 1.5, 40, 57,
                                   [0.75, 0.75, 1.5], M, vel=(80, 105), passing=0.2),
                  lambda r: melody(r, TRAIN_CHORDS, 1.25, 36, 62, [0.5, 0.75, 1.0], T,
                                   vel=(75, 105))),
    }, seed=3)


def case_piano_bass_clarinet() -> None:
    music_case("piano_bass_clarinet", {
        "piano": (PIANO,
                  lambda r: block_chords(r, MIX_CHORDS, 1.5, 55, M, [0.0, 0.75, 1.125]),
                  lambda r: block_chords(r, TRAIN_CHORDS, 1.25, 50, T, [0.0, 0.5])
                  + melody(r, TRAIN_CHORDS, 1.25, 67, 84, [0.25, 0.5], T, vel=(60, 90))),
        "bass": (BASS,
                 lambda r: bass_line(r, [[c[0] - 24] for c in MIX_CHORDS], 1.5, 28, 48, 0.375, M),
                 lambda r: bass_line(r, [[c[0] - 24] for c in TRAIN_CHORDS], 1.25, 28, 52, 0.3125,
                                     T)),
        "clarinet": (CLARINET,
                     lambda r: melody(r, MIX_CHORDS, 1.5, 62, 79, [0.375, 0.75, 0.75], M),
                     lambda r: melody(r, TRAIN_CHORDS, 1.25, 55, 84, [0.25, 0.5, 0.75], T)),
    }, seed=4)


def case_drums_guitar() -> None:
    music_case("drums_guitar", {
        "drums": (DRUMS,
                  lambda r: drum_pattern(r, M, 0.6, variant=0),
                  lambda r: drum_pattern(r, T, 0.5, variant=1)),
        "guitar": (GUITAR,
                   lambda r: arpeggio(r, MIX_CHORDS, 1.2, 52, 76, 0.15, M),
                   lambda r: arpeggio(r, TRAIN_CHORDS, 1.25, 45, 72, 0.3125 / 2, T)
                   + melody(r, TRAIN_CHORDS, 1.25, 64, 79, [0.625, 1.25], T, vel=(60, 80))),
    }, seed=5)


# -------------------------------------------------------------------- synthetic (demo)


def harmonic_tone(f0: float, amplitudes: list[float], seconds: float) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return sum(a * np.sin(2 * np.pi * h * f0 * t)
               for h, a in enumerate(amplitudes, start=1) if h * f0 < SR / 2 - 500)


def pulses(period: float, on: float, offset: float, seconds: float,
           decay: float | None = None) -> np.ndarray:
    """A note of length `on` every `period` s from `offset`, 15 ms ramps, optional decay."""
    n, n_on, n_ramp = int(round(seconds * SR)), int(on * SR), int(0.015 * SR)
    shape = np.ones(n_on)
    r = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n_ramp))
    shape[:n_ramp] *= r
    shape[-n_ramp:] *= r[::-1]
    if decay is not None:
        shape *= np.exp(-np.arange(n_on) / (decay * SR))
    env, start = np.zeros(n), offset
    while start < seconds:
        i = int(round(start * SR))
        seg = shape[: max(0, min(n_on, n - i))]
        env[i: i + len(seg)] += seg
        start += period
    return env


LOW_TONE = [0.8 ** (h - 1) for h in range(1, 16)]                     # 220 Hz, all harmonics
HIGH_TONE = [(1.0 if h % 2 else 0.05) / h for h in range(1, 14)]       # 587.33 Hz, odd ones


def case_tones() -> None:
    """The demo's sources (as in sample_audio/tones_*.wav): fixed spectra, own rhythms.

    Training material: the same two tones with other rhythms, note lengths and offsets.
    """
    refs = {"low": harmonic_tone(220.0, LOW_TONE, M) * pulses(0.5, 0.32, 0.0, M, decay=0.25),
            "high": harmonic_tone(587.33, HIGH_TONE, M) * pulses(0.7, 0.45, 0.15, M)}
    train = {"low": harmonic_tone(220.0, LOW_TONE, T) * pulses(0.8, 0.5, 0.1, T, decay=0.3),
             "high": harmonic_tone(587.33, HIGH_TONE, T) * pulses(0.6, 0.3, 0.0, T)}
    write_case("tones", {k: fit(v, M) for k, v in refs.items()},
               {k: fit(v, T) for k, v in train.items()})


# ------------------------------------------------------------------------------- main

CASES = {
    "voices": (case_voices, ["male", "female"]),
    "voice_noise": (case_voice_noise, ["speech", "noise"]),
    "flute_cello": (case_flute_cello, ["flute", "cello"]),
    "piano_bass_clarinet": (case_piano_bass_clarinet, ["piano", "bass", "clarinet"]),
    "drums_guitar": (case_drums_guitar, ["drums", "guitar"]),
    "tones": (case_tones, ["low", "high"]),
}


def main() -> None:
    for case, (make, _) in CASES.items():
        make()
    (HERE / "cases.json").write_text(
        json.dumps({case: sources for case, (_, sources) in CASES.items()}, indent=2) + "\n")
    for case, (_, sources) in CASES.items():
        mix, _ = sf.read(HERE / case / "mix.wav")
        refs = [sf.read(HERE / case / f"ref_{s}.wav")[0] for s in sources]
        error = np.max(np.abs(mix - np.sum(refs, axis=0)))
        assert error < 1e-9, (case, error)
        for path in sorted((HERE / case).glob("*.wav")):
            x, sr = sf.read(path)
            print(f"{case}/{path.name:22s} {sr} Hz {len(x) / sr:5.2f} s rms {rms(x):.4f} "
                  f"peak {np.max(np.abs(x)):.3f}")
        print(f"{case}: max |mix - sum(refs)| = {error:g}")


if __name__ == "__main__":
    main()
