"""nmfsep.register: a voice beside music split with speech_high where its pitch is high."""

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from nmfsep import register, spectrum
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


def track_of(samples, hop=256):
    n_frames = 1 + -(-samples.shape[0] // hop)
    return register.pitch_track(samples, RATE, hop, n_frames)


@pytest.mark.parametrize("f0", [110.0, 220.0, 300.0])
def test_median_pitch_finds_the_pitch_of_a_voice_like_tone(f0):
    assert register.median_pitch(track_of(voice_like(f0))) == pytest.approx(f0, rel=0.03)


def test_the_pitch_track_has_the_stft_frames_and_voices_the_syllables():
    samples = voice_like(220.0)
    f0, level = track_of(samples)
    frames = spectrum.n_frames(samples.shape[0], spectrum.StftParams(1024, 256))
    assert f0.shape == level.shape == (frames,)
    voiced = level > np.quantile(level, register.VOICED_QUANTILE)
    centres = np.arange(frames) * 256 / RATE
    syllable = (centres % 0.3 > 0.05) & (centres % 0.3 < 0.15)  # well inside a syllable: voiced
    assert voiced[syllable].all()
    assert np.allclose(f0[syllable], 220.0, rtol=0.05)


def two_voices(f0, seconds):
    noise = np.random.default_rng(2).standard_normal(int(seconds * RATE)).astype(np.float32)
    return voice_like(f0, seconds) + 0.5 * voice_like(131.0, seconds, seed=1)[::-1] + 0.05 * noise


def sine_in_noise(f0, seconds):  # troughs above YIN's threshold: where it decides
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(3).standard_normal(t.size)
    return (0.2 * np.sin(2 * np.pi * f0 * t) + 0.05 * noise).astype(np.float32)


@pytest.mark.parametrize("make, seconds, f0", [(two_voices, 2.0, 98.0), (two_voices, 2.0, 300.0),
                                              (two_voices, 0.5, 180.0), (sine_in_noise, 1.0, 150.0)])
def test_yin_agrees_with_librosa_yin_and_the_level_with_librosa_rms(make, seconds, f0):
    import librosa

    samples = make(f0, seconds)
    hop, frame = 256, 2048
    track = register.pitch_track(samples, RATE, hop, 1 + -(-samples.shape[0] // hop))
    padded = np.pad(samples - samples.mean(), (frame // 2, frame // 2 + hop))  # pitch_track takes the mean out
    expected = librosa.yin(padded, fmin=60.0, fmax=450.0, sr=RATE, frame_length=frame, hop_length=hop, center=False)
    level = librosa.feature.rms(y=padded, frame_length=frame, hop_length=hop, center=False)[0]
    np.testing.assert_allclose(track[0], expected[:track[0].shape[0]], rtol=1e-5)
    np.testing.assert_allclose(track[1], level[:track[1].shape[0]], rtol=1e-4, atol=1e-7)


def test_silent_stretches_give_no_warning_and_no_pitch_there():
    import warnings

    samples = np.concatenate([np.zeros(RATE // 2, np.float32), voice_like(220.0), np.zeros(RATE // 2, np.float32)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f0, level = track_of(samples)
    assert np.all(np.isfinite(f0)) and np.all(level[:10] < 1.01 * abs(samples.mean()))  # the offset taken out
    assert register.median_pitch((f0, level)) == pytest.approx(220.0, rel=0.03)


def test_the_principal_channel_is_the_mean_in_phase_and_keeps_a_voice_in_opposite_phase():
    voice = voice_like(220.0)
    other = 0.3 * voice_like(131.0, seed=1)
    np.testing.assert_array_equal(register.principal_channel(voice[:, None]), voice)
    np.testing.assert_allclose(register.principal_channel(np.stack([voice, voice], axis=1)), voice, atol=1e-6)
    opposite = register.principal_channel(np.stack([voice + other, -voice + other], axis=1))
    assert abs(np.corrcoef(opposite, voice)[0, 1]) > 0.99  # the mean would hold only the other source
    assert register.median_pitch(track_of(opposite)) == pytest.approx(220.0, rel=0.03)


def test_no_pitch_to_go_by_gives_no_track_and_no_median():
    assert track_of(np.zeros(RATE, np.float32)) is None
    assert track_of(voice_like(220.0)[:100]) is None  # shorter than a frame
    assert register.median_pitch(None) is None


def test_the_pitch_is_the_same_at_any_level_and_offset():
    samples = voice_like(220.0)
    f0, level = track_of(samples)
    for scale in (1e-30, 1e-12, 1e6):  # float32: squares of 1e-30 underflow to 0
        quiet_f0, quiet_level = track_of(samples * np.float32(scale))
        np.testing.assert_allclose(quiet_f0, f0, rtol=1e-4)
        np.testing.assert_allclose(quiet_level, scale * level, rtol=1e-4)
    for offset in (0.05, 0.3):  # YIN's difference function as librosa computes it: 450 Hz at 0.3 with the offset in
        shifted_f0, shifted_level = track_of(samples + np.float32(offset))
        np.testing.assert_allclose(shifted_f0, f0, rtol=1e-3)
        np.testing.assert_allclose(shifted_level, level, rtol=1e-3)


def test_the_principal_channel_is_the_same_at_any_level():
    voice, other = voice_like(220.0), 0.3 * voice_like(131.0, seed=1)
    stereo = np.stack([voice + other, -voice + other], axis=1)
    expected = register.principal_channel(stereo)
    quiet = register.principal_channel(stereo * np.float32(1e-30))  # float32 squares underflow
    np.testing.assert_allclose(quiet, 1e-30 * expected, rtol=1e-4, atol=1e-36)


def test_a_constant_offset_has_no_pitch():
    offset = np.full(RATE, 0.5, np.float32)
    assert track_of(offset) is None
    assert track_of(offset + np.float32(1e-5) * voice_like(220.0)[:RATE]) is None  # 1e-4 of its peak: still DC
    assert register.median_pitch(track_of(offset + voice_like(220.0)[:RATE])) == pytest.approx(220.0, rel=0.03)


def test_harmonic_masks_are_high_on_the_harmonics_low_between_and_low_on_unvoiced_frames():
    n_fft, f0 = 2048, 200.0
    track = (np.array([f0, f0, f0]), np.array([1.0, 1.0, 0.01]))  # the last frame quiet
    mask = register.harmonic_masks(track, n_fft // 2 + 1, n_fft, RATE)
    bin_of = lambda hz: int(round(hz * n_fft / RATE))  # noqa: E731
    assert mask.shape == (n_fft // 2 + 1, 3) and mask.dtype == np.float32
    assert all(mask[bin_of(k * f0), 0] > 0.8 for k in (1, 2, 5, 20))
    assert all(mask[bin_of((k + 0.5) * f0), 0] < 0.1 for k in (1, 2, 5))
    assert mask[bin_of(0.5 * f0), 0] == pytest.approx(0.05)  # below the fundamental
    assert np.all(mask[:, 2] == register.UNVOICED_MASK)  # a quiet frame of the voice's stem: music


def test_harmonic_masks_move_an_octave_error_to_the_voices_pitch():
    n_fft, f0 = 2048, 200.0
    bin_of = lambda hz: int(round(hz * n_fft / RATE))  # noqa: E731
    level = np.array([1.0, 0.9, 1.0, 0.9, 1.0, 0.0, 0.0, 0.0])  # voiced but the last three
    right = register.harmonic_masks((np.full(8, f0), level), n_fft // 2 + 1, n_fft, RATE)
    f0s = np.array([f0, f0 / 2, f0, 2 * f0, f0 * 1.02, f0, f0, f0])  # YIN an octave low, then high
    mask = register.harmonic_masks((f0s, level), n_fft // 2 + 1, n_fft, RATE)
    assert mask[bin_of(f0), :5].min() > 0.8 and mask[bin_of(f0), 5:].max() == register.UNVOICED_MASK
    np.testing.assert_array_equal(mask[:, :4], right[:, :4])
    assert mask[bin_of(1.5 * f0), 1] < 0.1 and mask[bin_of(3 * f0), 3] > 0.8  # not f0/2's, not 2 f0's
    assert not np.array_equal(mask[:, 4], right[:, 4])  # within half an octave: kept
    # the caller's median pitch (here an octave above the track's) is the one the octaves move to
    given = register.harmonic_masks((f0s, level), n_fft // 2 + 1, n_fft, RATE, pitch=2 * f0)
    assert given[bin_of(2 * f0), 1] > 0.8 and given[bin_of(f0), 1] == pytest.approx(0.05)


def test_with_harmonics_keeps_the_masks_summing_to_one_and_moves_the_voice_toward_its_harmonics():
    rng = np.random.default_rng(0)
    masks = rng.uniform(0.2, 0.8, (1025, 3)).astype(np.float32)
    masks = np.stack([masks, 1 - masks])
    track = (np.full(3, 200.0), np.array([1.0, 1.0, 0.01]))
    harmonic = register.harmonic_masks(track, 1025, 2048, RATE)
    mixed = register.with_harmonics(masks, 1, track, 2048, RATE, register.median_pitch(track))
    np.testing.assert_allclose(mixed.sum(axis=0), 1.0, atol=1e-5)
    voiced = harmonic[:, :2]
    assert np.all((mixed[1, :, :2] - masks[1, :, :2])[voiced > 0.9] > 0)  # on a harmonic: more voice
    assert np.all((mixed[1, :, :2] - masks[1, :, :2])[voiced < 0.1] < 0)  # between: less
    assert np.all(mixed[1, :, 2] < masks[1, :, 2])  # unvoiced (quiet): toward the music
    share = register.HARMONIC_SHARE
    expert = np.stack([1 - harmonic[:, 2], harmonic[:, 2]])
    pooled = masks[:, :, 2] ** (1 - share) * expert ** share
    np.testing.assert_allclose(mixed[:, :, 2], pooled / pooled.sum(axis=0), atol=1e-5)


def test_a_silent_input_keeps_speech_and_says_it_found_no_pitch():
    result = split_sources(np.zeros((RATE, 1), np.float32), RATE, settings_of(["speech", "music"]))
    assert result.register == {"stem": "speech", "pitch_hz": None, "model": "speech", "harmonics": None}
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
    monkeypatch.setattr(register, "median_pitch", lambda track: pitch)
    monkeypatch.setattr(register, "with_harmonics", lambda masks, *args: masks)  # the pick alone
    progress = []
    result = split_sources(mix, RATE, settings_of(names), lambda done, total: progress.append((done, total)))
    assert result.names == names
    assert result.register == {"stem": "speech", "pitch_hz": pitch, "model": model,
                               "harmonics": register.HARMONIC_SHARE}
    np.testing.assert_allclose(result.stems, reference.stems, atol=1e-6)
    np.testing.assert_allclose(result.stems.sum(axis=0), mix, atol=1e-4)
    done, total = progress[-1]  # the refit planned for a high voice is given back where it is not made
    assert done == total == result.iterations_run


def test_the_pitch_is_tracked_on_the_speech_stem(monkeypatch):
    mix = (voice_like(220.0) + 0.5 * voice_like(98.0, seed=1))[:, None]
    seen = []
    monkeypatch.setattr(register, "pitch_track", lambda samples, *args: seen.append((samples, args)))
    result = split_sources(mix, RATE, settings_of(["music", "speech"]))
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0][0], result.stems[1][:, 0])  # no track: the first split's stems
    assert seen[0][1] == (RATE, result.params.hop_length, result.masks.shape[2])
    assert result.register == {"stem": "speech", "pitch_hz": None, "model": "speech", "harmonics": None}


def unchecked_split(mix, monkeypatch):
    """The split of mix with the built-ins speech + music as if the voice were not checked."""
    with monkeypatch.context() as patch:
        patch.setattr(register, "voice_beside_music", lambda settings: None)
        return split_sources(mix, RATE, settings_of(["speech", "music"]))


def test_the_voices_harmonics_weigh_in_the_masks_of_the_split(monkeypatch):
    mix = (voice_like(98.0) + 0.5 * voice_like(220.0, seed=1))[:, None]
    reference = unchecked_split(mix, monkeypatch)
    frames = reference.masks.shape[2]
    track = (np.full(frames, 98.0), (np.arange(frames) % 2 == 0).astype(float))
    monkeypatch.setattr(register, "pitch_track", lambda *args: track)
    result = split_sources(mix, RATE, settings_of(["speech", "music"]))
    assert result.register == {"stem": "speech", "pitch_hz": 98.0, "model": "speech", "harmonics": register.HARMONIC_SHARE}
    expected = register.with_harmonics(reference.masks, 0, track, reference.params.n_fft, RATE, 98.0)
    np.testing.assert_allclose(result.masks, expected, atol=1e-6)
    assert not np.allclose(result.masks, reference.masks, atol=1e-3)
    np.testing.assert_allclose(result.stems.sum(axis=0), mix, atol=1e-4)


def test_a_track_with_no_louder_frames_gives_no_pitch_and_no_harmonics(monkeypatch):
    mix = (voice_like(98.0) + 0.5 * voice_like(220.0, seed=1))[:, None]
    reference = unchecked_split(mix, monkeypatch)
    frames = reference.masks.shape[2]
    monkeypatch.setattr(register, "pitch_track", lambda *args: (np.full(frames, 98.0), np.ones(frames)))
    result = split_sources(mix, RATE, settings_of(["speech", "music"]))
    assert result.register == {"stem": "speech", "pitch_hz": None, "model": "speech", "harmonics": None}
    np.testing.assert_allclose(result.masks, reference.masks, atol=1e-6)


def test_other_models_are_not_checked(monkeypatch):
    monkeypatch.setattr(register, "pitch_track", lambda *args: pytest.fail("no pitch to track"))
    result = split_sources(voice_like(220.0)[:, None], RATE, settings_of(["speech", "noise"]))
    assert result.register is None


def test_split_json_and_note_say_a_high_voice_was_split_with_speech_high(tmp_path, monkeypatch):
    import soundfile as sf

    path = tmp_path / "show.wav"
    sf.write(path, voice_like(220.0) + 0.5 * voice_like(98.0, seed=1), RATE)
    monkeypatch.setattr(register, "median_pitch", lambda track: 231.4)
    result = CliRunner().invoke(cli, ["split", str(path), "--model", "speech", "--model", "music", "-o",
                                      str(tmp_path / "out"), "--iter", "20", "--json", "--report"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["register"] == {"stem": "speech", "pitch_hz": 231.4, "model": "speech_high",
                                 "harmonics": register.HARMONIC_SHARE}
    assert [s["name"] for s in record["stems"]] == ["speech", "music"]
    assert "show.wav: a high voice (median pitch 231 Hz): stem speech split with the built-in speech_high" in result.stderr
    report = (tmp_path / "out" / "show" / "report.html").read_text()
    assert ("speech: median pitch 231 Hz, above 165 Hz: split with the built-in speech_high; its harmonic masks "
            f"weigh {register.HARMONIC_SHARE:g} in the masks") in report


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
