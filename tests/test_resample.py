"""Models learned at one sample rate split inputs at another: resampled there and back."""

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import nmfsep
from nmfsep import audio, batch, discriminative, model, pipeline, spectrum, stream, synth
from nmfsep.cli import cli
from nmfsep.evaluate import si_sdr
from nmfsep.fitting import Fit
from nmfsep.pipeline import Settings, split_sources
from nmfsep.supervised import learn

MODEL_RATE = 16000


@pytest.fixture(scope="module")
def models():
    """Two small models of the synthetic sources, learned at 16 kHz, without their training
    frames (no discriminative training: it is the same at any input rate, and slow)."""
    _, training = synth.mixture(2, sample_rate=MODEL_RATE, duration=4.0, seed=7)
    learned = [learn(t, MODEL_RATE, 8, name=n) for t, n in zip(training, ("low", "mid"))]
    return tuple(model.Model(m.bases, m.sample_rate, m.n_fft, m.hop_length, m.beta, m.name) for m in learned)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_a_22050_hz_input_is_separated_with_16_khz_models_and_the_stems_add_up_to_it(models):
    mix, sources = synth.mixture(2, sample_rate=22050, duration=3.0, seed=0)
    stems = nmfsep.separate(mix, 22050, models=list(models))
    assert stems.shape == (2,) + mix.shape and stems.dtype == np.float32
    assert np.abs(stems.sum(axis=0) - mix).max() <= 1e-3
    gains = [si_sdr(s, e) - si_sdr(s, mix) for s, e in zip(sources, stems)]
    assert min(gains) >= 15, gains


def test_split_sources_says_it_resampled_and_keeps_the_models_rate_for_its_masks(models):
    mix, _ = synth.mixture(2, sample_rate=22050, duration=2.0, seed=0)
    result = split_sources(mix[:, None], 22050, Settings(models=models))
    assert result.resampled_to == MODEL_RATE
    assert result.stems.shape == (2, len(mix), 1)
    spectrogram, rate = result.spectrogram(mix[:, None], 22050)
    assert rate == MODEL_RATE and spectrogram.shape == result.masks.shape[1:]
    same_rate = split_sources(synth.mixture(2, sample_rate=MODEL_RATE, duration=2.0, seed=0)[0][:, None],
                              MODEL_RATE, Settings(models=models))
    assert same_rate.resampled_to is None


def test_highs_above_the_models_band_go_to_the_stem_that_is_bright_below_it(models):
    """Source A: the low tone with a hiss from 5 to 11 kHz, gated together; source B: the
    middle tone. The 16 kHz models see A's hiss up to 8 kHz only; its part above 8 kHz must
    follow it into A's stem (an even split would give each stem half)."""
    rate = 44100
    mix, (low, mid) = synth.mixture(2, sample_rate=rate, duration=3.0, seed=0)
    rng = np.random.default_rng(0)
    spectrum_ = np.fft.rfft(rng.standard_normal(len(mix)))
    freqs = np.fft.rfftfreq(len(mix), 1 / rate)
    spectrum_[(freqs < 5000) | (freqs > 11000)] = 0
    hiss = np.fft.irfft(spectrum_, len(mix))
    hiss = (0.05 * hiss / np.abs(hiss).std() * (np.abs(low) > 1e-3)).astype(np.float32)
    hissing_low = low + hiss
    mix = hissing_low + mid
    stems = nmfsep.separate(mix, rate, models=list(models))
    assert np.abs(stems.sum(axis=0) - mix).max() <= 1e-3

    def above_8_khz(x):
        X = np.fft.rfft(x)
        return float(np.sum(np.abs(X[freqs > 8500]) ** 2))

    highs = [above_8_khz(s) for s in stems]
    assert highs[0] >= 0.9 * sum(highs), highs
    assert si_sdr(hissing_low, stems[0]) - si_sdr(hissing_low, mix) >= 10


@pytest.mark.parametrize("input_rate, rate", [(8000, 16000), (16000, 22050), (22050, 44100)])
def test_input_band_is_what_an_input_resampled_up_holds(input_rate, rate):
    params = spectrum.default_params(rate)
    noise = np.random.default_rng(0).standard_normal((2 * input_rate, 1)).astype(np.float32)
    power = np.abs(spectrum.analyse(audio.resample(noise, input_rate, rate), params)[1]) ** 2
    band = pipeline.input_band(input_rate, rate, params)
    per_bin = power.sum(axis=1)
    nyquist = int(input_rate / 2 * params.n_fft / rate)   # the input's, at rate
    assert band < nyquist and per_bin[nyquist + 2:].sum() <= 1e-5 * per_bin.sum()   # the stopband: nothing
    assert per_bin[band - 4:band - 1].min() >= 0.5 * np.median(per_bin[:band])   # below it: the input's
    assert pipeline.input_band(rate, rate, params) is None and pipeline.input_band(2 * rate, rate, params) is None


def test_models_of_broadband_sound_are_fitted_to_the_band_an_input_from_a_lower_rate_holds():
    """A 16 kHz model of white noise predicts energy up to 8 kHz; an 8 kHz input holds none above
    4 kHz. Fitted on every bin, the noise's activations came out too small and its hiss stayed
    in the tone's stem (+6.9 dB tone, +13.8 noise); fitted to the input's band, +13.8 and +21.1."""
    _, training = synth.mixture(2, sample_rate=MODEL_RATE, duration=4.0, seed=7)
    hiss = 0.1 * np.random.default_rng(1).standard_normal(4 * MODEL_RATE).astype(np.float32)
    tone, noise = (model.Model(m.bases, m.sample_rate, m.n_fft, m.hop_length, m.beta, m.name)
                   for m in (learn(training[0], MODEL_RATE, 8, name="tone"), learn(hiss, MODEL_RATE, 8, name="noise")))
    mix, (low, _) = synth.mixture(2, sample_rate=8000, duration=3.0, seed=0)
    white = (0.05 * np.random.default_rng(2).standard_normal(len(mix))).astype(np.float32)
    mix = low + white
    stems = nmfsep.separate(mix, 8000, models=[tone, noise])
    gains = [si_sdr(s, e) - si_sdr(s, mix) for s, e in zip((low, white), stems)]
    assert min(gains) >= 12, gains


def test_trained_layers_of_a_banded_fit_see_only_its_band():
    rng = np.random.default_rng(0)
    W, H, magnitude = rng.random((40, 6), np.float32), rng.random((6, 30), np.float32), rng.random((40, 30), np.float32)
    trained = discriminative.Trained([rng.random((40, 6), np.float32) for _ in range(3)], rng.random((40, 6), np.float32))
    fit = Fit(W, H, [np.arange(3), np.arange(3, 6)], 1, None, np.zeros(1), trained=trained, band=25)
    louder = magnitude.copy()
    louder[25:] *= 100   # what lies above the band is not evidence
    assert np.allclose(fit.masks(H, 2.0, magnitude), fit.masks(H, 2.0, louder))
    fit.band = None
    assert not np.allclose(fit.masks(H, 2.0, magnitude), fit.masks(H, 2.0, louder))


def test_cli_splits_a_44100_hz_stereo_file_with_16_khz_models_and_says_so(models, tmp_path):
    for m in models:
        model.save(m, str(tmp_path / f"{m.name}.npz"))
    mix, _ = synth.mixture(2, sample_rate=44100, duration=2.0, seed=0)
    stereo = np.stack([mix, 0.6 * mix[::-1]], axis=1)
    sf.write(tmp_path / "mix.wav", stereo, 44100, subtype="FLOAT")
    result = run("split", tmp_path / "mix.wav", "--model", tmp_path / "low.npz", "--model", tmp_path / "mid.npz",
                 "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["resampled"] == {"from": 44100, "to": MODEL_RATE}
    assert record["sample_rate"] == 44100 and record["frames"] == len(mix)
    assert result.stderr.splitlines()[0] == (f"nmfsep: note: {tmp_path / 'mix.wav'}: 44100 Hz resampled to the "
                                             f"models' {MODEL_RATE} Hz and the stems back to 44100 Hz")
    stems = []
    for stem in ("low", "mid"):
        samples, rate = sf.read(tmp_path / "out" / "mix" / f"{stem}.wav", dtype="float32")
        assert rate == 44100 and samples.shape == stereo.shape
        stems.append(samples)
    assert np.abs(sum(stems) - stereo).max() <= 1e-3


def test_an_input_at_the_models_rate_is_not_resampled(models, tmp_path):
    for m in models:
        model.save(m, str(tmp_path / f"{m.name}.npz"))
    sf.write(tmp_path / "mix.wav", synth.mixture(2, sample_rate=MODEL_RATE, duration=2.0)[0], MODEL_RATE)
    result = run("split", tmp_path / "mix.wav", "--model", tmp_path / "low.npz", "--model", tmp_path / "mid.npz",
                 "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resampled"] is None
    assert "note:" not in result.stderr


def test_models_learned_at_different_rates_are_refused(models):
    other = learn(synth.mixture(2, sample_rate=22050, duration=2.0, seed=7)[1][1], 22050, 4, name="other")
    with pytest.raises(nmfsep.NmfsepError, match="models 'low' and 'other' were learned at different sample "
                                                 "rates \\(16000 and 22050 Hz\\): learn them at one rate"):
        nmfsep.separate(np.zeros(22050, np.float32), 22050, models=[models[0], other])


def test_a_streamed_input_at_another_rate_is_refused_with_the_fix(models, tmp_path, monkeypatch):
    mix, _ = synth.mixture(2, sample_rate=22050, duration=2.0, seed=0)
    with pytest.raises(nmfsep.NmfsepError, match="a streamed separation cannot resample 22050 Hz to the "
                                                 "models' 16000 Hz: resample it first"):
        stream.split_stream(stream.ArrayReader(mix[:, None]), 1, 22050, len(mix), Settings(models=models),
                            lambda stems: None)
    for m in models:
        model.save(m, str(tmp_path / f"{m.name}.npz"))
    sf.write(tmp_path / "mix.wav", mix, 22050)
    monkeypatch.setattr(batch, "STREAM_ABOVE_BYTES", 0)
    in_memory = run("split", tmp_path / "mix.wav", "--model", tmp_path / "low.npz", "--model", tmp_path / "mid.npz",
                    "-o", tmp_path / "kept", "--json")   # it cannot be streamed: in memory while it fits in half
    assert in_memory.exit_code == 0 and json.loads(in_memory.stdout)["mode"] == "memory", in_memory.output
    monkeypatch.setattr(audio, "memory_limit", lambda: 2**20)   # as if the input were too long for memory
    result = run("split", tmp_path / "mix.wav", "--model", tmp_path / "low.npz", "--model", tmp_path / "mid.npz",
                 "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == (f"nmfsep: error: {tmp_path / 'mix.wav'}: too long to separate in memory, and a "
                             "streamed separation cannot resample 22050 Hz to the models' 16000 Hz: resample it "
                             "first (e.g. sox IN -r 16000 OUT), or learn the models at 22050 Hz\n")
    assert not (tmp_path / "out" / "mix").exists()


def test_a_streamed_input_with_built_ins_at_another_rate_is_told_to_resample_only(models):
    builtins = Settings(models=tuple(replace(m, builtin=True) for m in models))
    assert stream.cannot_resample(22050, builtins) == ("a streamed separation cannot resample 22050 Hz to the "
                                                       "models' 16000 Hz: resample it first (e.g. sox IN -r 16000 OUT)")
    assert stream.cannot_resample(22050, Settings(models=models)).endswith(", or learn the models at 22050 Hz")


@pytest.mark.parametrize("n_stems", [2, 4])
def test_the_memory_counted_for_bringing_stems_back_to_the_input_rate_bounds_its_peak(n_stems):
    import tracemalloc

    rate, model_rate, n_channels = 44100, 22050, 2
    samples = np.random.default_rng(0).standard_normal((20 * rate, n_channels)).astype(np.float32)
    stems = np.random.default_rng(1).random((n_stems, 20 * model_rate, n_channels), dtype=np.float32)
    params = spectrum.default_params(rate)
    framed = spectrum.n_frames(len(samples), params) * params.n_fft * n_channels
    counted = framed * (pipeline.BYTES_PER_FRAMED_SAMPLE_BACK + pipeline.BYTES_PER_FRAMED_SAMPLE_BACK_PER_STEM * n_stems)
    tracemalloc.start()
    pipeline.back_to_rate(stems, samples, model_rate, rate)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= counted, (peak, counted)
