"""nmfsep.register: a voice beside music split with speech_high where its pitch is high."""

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from nmfsep import register
from nmfsep.cli import cli
from nmfsep.models import load, load_set
from nmfsep.pipeline import Settings, split_sources
from nmfsep.supervised import train_models

RATE = 22050


def voice_like(f0, seconds=2.0, rate=RATE, seed=0):
    """Harmonics of f0 (with a slow vibrato) in syllables of 0.2 s on, 0.1 s off, float32."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))) / rate
    tone = sum(np.sin(h * phase) / h for h in range(1, 12))
    gate = (t % 0.3) < 0.2
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.2 * gate * tone + noise).astype(np.float32)


def settings_of(names, max_iter=30):
    return train_models(Settings(n_sources=len(names), models=tuple(load_set(names)[0]), max_iter=max_iter).check())


@pytest.mark.parametrize("f0", [110.0, 220.0, 300.0])
def test_median_pitch_finds_the_pitch_of_a_voice_like_tone(f0):
    assert register.median_pitch(voice_like(f0), RATE) == pytest.approx(f0, rel=0.03)


def test_median_pitch_is_none_without_a_pitch_to_go_by():
    assert register.median_pitch(np.zeros(RATE, np.float32), RATE) is None
    assert register.median_pitch(voice_like(220.0)[:100], RATE) is None  # shorter than a frame


def test_a_silent_input_keeps_speech_and_says_it_found_no_pitch():
    result = split_sources(np.zeros((RATE, 1), np.float32), RATE, settings_of(["speech", "music"]))
    assert result.register == {"stem": "speech", "pitch_hz": None, "model": "speech"}
    assert not result.stems.any()


def test_only_the_builtins_speech_and_music_together_are_a_voice_beside_music():
    speech, music, noise = load("speech"), load("music"), load("noise")

    def voice(*models, n_free=0):
        return register.voice_beside_music(Settings(n_sources=len(models) + (n_free > 0), models=models, n_free=n_free))

    assert voice(speech, music) == 0
    assert voice(music, speech) == 1
    assert voice(speech, noise) is None
    assert voice(speech, music, noise) is None
    assert voice(load("speech_high"), music) is None  # named by the user: kept
    assert voice(replace(speech, builtin=False), music) is None  # one's own "speech"
    assert voice(speech, music, n_free=4) is None


@pytest.mark.parametrize("names, pitch, model, same_as", [
    (["music", "speech"], 230.0, "speech_high", ["music", "speech_high"]),  # split again with speech_high
    (["speech", "music"], 120.0, "speech", ["speech", "music"]),            # kept: as with no pick at all
])
def test_a_voice_beside_music_is_split_with_the_register_its_pitch_picks_and_keeps_its_stem_name(
        monkeypatch, names, pitch, model, same_as):
    mix = (voice_like(220.0) + 0.5 * voice_like(98.0, seed=1))[:, None]
    with monkeypatch.context() as patch:
        patch.setattr(register, "voice_beside_music", lambda settings: None)
        reference = split_sources(mix, RATE, settings_of(same_as))
    monkeypatch.setattr(register, "median_pitch", lambda samples, rate: pitch)
    progress = []
    result = split_sources(mix, RATE, settings_of(names), lambda done, total: progress.append((done, total)))
    assert result.names == names
    assert result.register == {"stem": "speech", "pitch_hz": pitch, "model": model}
    np.testing.assert_allclose(result.stems, reference.stems, atol=1e-6)
    np.testing.assert_allclose(result.stems.sum(axis=0), mix, atol=1e-4)
    done, total = progress[-1]  # the refit planned for a high voice is given back where it is not made
    assert done == total == result.iterations_run


def test_the_pitch_is_measured_on_the_speech_stem(monkeypatch):
    mix = (voice_like(220.0) + 0.5 * voice_like(98.0, seed=1))[:, None]
    seen = []
    monkeypatch.setattr(register, "median_pitch", lambda samples, rate: seen.append(samples) or 0.0)
    result = split_sources(mix, RATE, settings_of(["music", "speech"]))
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], result.stems[1][:, 0])


def test_other_models_are_not_checked(monkeypatch):
    monkeypatch.setattr(register, "median_pitch", lambda samples, rate: pytest.fail("no pitch to measure"))
    result = split_sources(voice_like(220.0)[:, None], RATE, settings_of(["speech", "noise"]))
    assert result.register is None


def test_split_json_and_note_say_a_high_voice_was_split_with_speech_high(tmp_path, monkeypatch):
    import soundfile as sf

    path = tmp_path / "show.wav"
    sf.write(path, voice_like(220.0) + 0.5 * voice_like(98.0, seed=1), RATE)
    monkeypatch.setattr(register, "median_pitch", lambda samples, rate: 231.4)
    result = CliRunner().invoke(cli, ["split", str(path), "--model", "speech", "--model", "music", "-o",
                                      str(tmp_path / "out"), "--iter", "20", "--json", "--report"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["register"] == {"stem": "speech", "pitch_hz": 231.4, "model": "speech_high"}
    assert [s["name"] for s in record["stems"]] == ["speech", "music"]
    assert "show.wav: a high voice (median pitch 231 Hz): stem speech split with the built-in speech_high" in result.stderr
    report = (tmp_path / "out" / "show" / "report.html").read_text()
    assert "speech: median pitch 231 Hz, above 165 Hz: split with the built-in speech_high" in report


def test_a_streamed_voice_beside_music_keeps_speech_and_says_so(tmp_path, monkeypatch):
    import soundfile as sf

    from nmfsep import batch

    path = tmp_path / "long.wav"
    sf.write(path, voice_like(220.0, seconds=3.0) + 0.5 * voice_like(98.0, seconds=3.0, seed=1), RATE)
    monkeypatch.setattr(batch, "STREAM_ABOVE_BYTES", 1)
    result = CliRunner().invoke(cli, ["split", str(path), "--model", "speech", "--model", "music", "-o",
                                      str(tmp_path / "out"), "--iter", "20", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["mode"] == "stream" and record["register"] is None
    assert "long.wav: streamed, so a high voice is not split with speech_high" in result.stderr
