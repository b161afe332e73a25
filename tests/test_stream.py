"""Streaming separation of long inputs (nmfsep.stream) and the automatic switch in batch."""

import io
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from nmfsep import batch, spectrum, stream
from nmfsep.pipeline import Settings, split_sources
from nmfsep.supervised import learn

RATE = 8000


def tones(seconds, rate=RATE, seed=0):
    """Two voices: a low harmonic tone with a slow rhythm and a high one with a fast rhythm."""
    t = np.arange(int(seconds * rate)) / rate
    low = sum(np.sin(2 * np.pi * 110 * h * t) / h for h in range(1, 5)) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    high = sum(np.sin(2 * np.pi * 1320 * h * t) / h for h in range(1, 3)) * (np.sin(2 * np.pi * 2.3 * t) > 0)
    noise = np.random.default_rng(seed).normal(0, 1e-3, t.shape)
    return (0.3 * low).astype(np.float32), (0.2 * high + noise).astype(np.float32)


def streamed(samples, rate, settings, block=997):
    out = []
    stream.split_stream(stream.ArrayReader(samples, block), samples.shape[1], rate, len(samples),
                        settings, out.append)
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("n_fft,hop", [(64, 16), (64, 24), (256, 64)])
def test_streaming_stft_is_the_stft_of_the_whole_signal(n_fft, hop):
    params = spectrum.StftParams(n_fft, hop)
    signal = np.random.default_rng(1).standard_normal((1001, 2)).astype(np.float32)
    analysis = stream.StftStream(2, params)
    parts = [analysis.push(signal[i : i + 97]) for i in range(0, len(signal), 97)] + [analysis.finish()]
    spectra = np.concatenate(parts, axis=-1)
    np.testing.assert_array_equal(spectra, spectrum.stft(signal.T, params))


@pytest.mark.parametrize("n_fft,hop", [(64, 16), (64, 24)])
def test_streaming_istft_is_the_istft_of_the_whole_spectrum(n_fft, hop):
    params = spectrum.StftParams(n_fft, hop)
    signal = np.random.default_rng(2).standard_normal((2, 1001)).astype(np.float32)
    spectra = spectrum.stft(signal, params)
    synthesis = stream.IstftStream(params, signal.shape[1])
    parts = [synthesis.push(spectra[..., i : i + 7]) for i in range(0, spectra.shape[-1], 7)]
    restored = np.concatenate(parts + [synthesis.finish()], axis=-1)
    assert restored.shape == signal.shape
    np.testing.assert_allclose(restored, spectrum.istft(spectra, params, signal.shape[1]), atol=1e-6)
    np.testing.assert_allclose(restored, signal, atol=2e-6)


def test_learning_segments_spread_over_the_whole_input():
    params = spectrum.StftParams(2048, 512)
    n_frames = spectrum.n_frames(44100 * 3600, params)
    segments = stream.learning_segments(n_frames, 44100, params)
    budget = stream.LEARN_SECONDS * 44100 / 512
    assert 0.9 * budget <= sum(b - a for a, b in segments) <= budget
    assert segments[0][0] == 0 and segments[-1][1] == n_frames
    assert stream.learning_segments(100, 44100, params) == [(0, 100)]


def test_segment_spectra_are_the_frames_of_the_whole_stft():
    params = spectrum.StftParams(64, 16)
    signal = np.random.default_rng(3).standard_normal((1000, 2)).astype(np.float32)
    whole = spectrum.stft(signal.T, params)
    reader = stream.ArrayReader(signal)
    for a, b in [(0, 5), (10, 30), (whole.shape[-1] - 4, whole.shape[-1])]:
        np.testing.assert_array_equal(stream.segment_spectra(reader, 2, a, b, params), whole[..., a:b])


def test_streaming_and_in_memory_give_the_same_stems_with_the_same_fixed_bases(monkeypatch):
    low, high = tones(6)
    mixture = np.stack([low + high, 0.8 * low + 1.1 * high], axis=1)
    models = (learn(low, RATE, 6, name="low", max_iter=50), learn(high, RATE, 6, name="high", max_iter=50))
    settings = Settings(models=models, tol=0.0, max_iter=stream.STREAM_ITER)
    monkeypatch.setattr(stream, "BLOCK_FRAMES", 37)  # many blocks, falling anywhere
    in_memory = split_sources(mixture, RATE, settings).stems
    np.testing.assert_allclose(streamed(mixture, RATE, settings), in_memory, atol=1e-4)


def test_streamed_stems_add_up_to_the_input_with_the_stem_order_and_length(monkeypatch):
    low, high = tones(8)
    mixture = (low + high)[:, None]
    monkeypatch.setattr(stream, "BLOCK_FRAMES", 50)
    stems = streamed(mixture, RATE, Settings(n_sources=2, max_iter=60))
    assert stems.shape == (2,) + mixture.shape
    np.testing.assert_allclose(stems.sum(axis=0), mixture, atol=1e-5)
    # lowest centroid first: the low tone's stem correlates with the low tone
    assert np.corrcoef(stems[0, :, 0], low)[0, 1] > np.corrcoef(stems[1, :, 0], low)[0, 1]


def test_a_repeated_block_gives_stems_without_seams(monkeypatch):
    """A block repeated many times (its length a multiple of the hop, but not of the streaming
    block) gives stems that repeat too: block boundaries leave no trace in them."""
    params = spectrum.default_params(RATE)
    low, high = tones(1.0)
    period = (len(low) // params.hop_length) * params.hop_length
    piece = (low + high)[:period]
    mixture = np.tile(piece, 40)[:, None]
    monkeypatch.setattr(stream, "BLOCK_FRAMES", 45)  # not a multiple of the period's frames
    stems = streamed(mixture, RATE, Settings(n_sources=2, max_iter=60), block=1234)
    np.testing.assert_allclose(stems.sum(axis=0), mixture, atol=1e-5)
    middle = stems[:, 5 * period : 35 * period, 0].reshape(2, 30, period)
    assert np.abs(middle - middle[:, :1]).max() < 1e-4          # every period the same
    assert np.abs(np.diff(stems, axis=1)).max() <= 1.05 * np.abs(np.diff(mixture, axis=0)).max()


def test_one_stem_is_the_input():
    low, high = tones(2)
    mixture = (low + high)[:, None]
    np.testing.assert_array_equal(streamed(mixture, RATE, Settings(n_sources=1, max_iter=10))[0], mixture)


def test_digital_silence_streams_to_silent_stems():
    silence = np.zeros((3000, 2), np.float32)
    stems = streamed(silence, RATE, Settings(n_sources=2))
    assert stems.shape == (2, 3000, 2) and not stems.any()


# --- the switch in batch ------------------------------------------------------------------------

def write_mix(path, seconds=6, subtype="PCM_16"):
    low, high = tones(seconds)
    mixture = np.stack([low + high, low + 0.5 * high], axis=1)
    sf.write(str(path), mixture, RATE, subtype=subtype)
    return sf.read(str(path), dtype="float32", always_2d=True)[0]


def test_long_inputs_stream_and_say_so(tmp_path, monkeypatch):
    mixture = write_mix(tmp_path / "long.wav")
    monkeypatch.setattr(batch, "STREAM_ABOVE_BYTES", 1)
    record = batch.process(str(tmp_path / "long.wav"), Settings(max_iter=30),
                           batch.Output(str(tmp_path / "out")))
    assert record["status"] == "ok", record
    assert record["mode"] == "stream" and record["peak_memory"] > 0
    stems = np.stack([sf.read(s["path"], dtype="float32")[0] for s in record["stems"]])
    assert stems.shape == (2,) + mixture.shape
    assert sf.info(record["stems"][0]["path"]).subtype == "PCM_16"
    assert np.abs(stems.sum(axis=0) - mixture).max() < 3 * 2**-15    # the format's precision
    assert not [p for p in (tmp_path / "out" / "long").iterdir() if p.name.startswith(".")]


def test_short_inputs_stay_in_memory(tmp_path):
    write_mix(tmp_path / "short.wav", seconds=2)
    record = batch.process(str(tmp_path / "short.wav"), Settings(max_iter=10), batch.Output(str(tmp_path / "o")))
    assert record["status"] == "ok" and record["mode"] == "memory"


def test_streaming_to_stdout_writes_a_complete_wav(tmp_path, monkeypatch):
    mixture = write_mix(tmp_path / "long.wav", subtype="FLOAT")
    monkeypatch.setattr(batch, "STREAM_ABOVE_BYTES", 1)
    out = io.BytesIO()
    record = batch.process(str(tmp_path / "long.wav"), Settings(max_iter=30),
                           batch.Output(stdout_stem="source2"), stream=out)
    assert record["status"] == "ok" and record["mode"] == "stream", record
    stem, rate = sf.read(io.BytesIO(out.getvalue()), dtype="float32", always_2d=True)
    assert rate == RATE and stem.shape == mixture.shape
    monkeypatch.setattr(batch, "STREAM_ABOVE_BYTES", 2**40)
    other = io.BytesIO()
    batch.process(str(tmp_path / "long.wav"), Settings(max_iter=30), batch.Output(stdout_stem="source1"),
                  stream=other)
    assert sf.read(io.BytesIO(other.getvalue()))[0].shape == mixture.shape


def test_a_truncated_long_input_fails_before_any_stem_is_written(tmp_path, monkeypatch):
    write_mix(tmp_path / "cut.wav")
    data = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(batch, "STREAM_ABOVE_BYTES", 1)
    record = batch.process(str(tmp_path / "cut.wav"), Settings(max_iter=10), batch.Output(str(tmp_path / "out")))
    assert record["status"] == "error" and "truncated" in record["error"], record
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


# --- memory -------------------------------------------------------------------------------------

def peak_streaming_bytes(seconds):
    low, high = tones(seconds)
    mixture = np.stack([low + high, low - high], axis=1)
    block = 65536

    class Copies(stream.ArrayReader):  # each block a fresh array, as a file reader gives
        def blocks(self, n):
            return (b.copy() for b in super().blocks(n))

    sink = []
    tracemalloc.start()
    tracemalloc.reset_peak()
    stream.split_stream(Copies(mixture, block), 2, RATE, len(mixture), Settings(n_sources=2, max_iter=20),
                        lambda stems: sink.append(stems.shape[1]))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sum(sink) == len(mixture)
    return peak


@pytest.mark.slow
def test_memory_of_a_ten_minute_input_is_that_of_a_one_minute_one(monkeypatch):
    monkeypatch.setattr(stream, "LEARN_SECONDS", 30.0)
    peak_streaming_bytes(10)  # first-use allocations (compiled kernels, caches) out of the way
    one, ten = peak_streaming_bytes(60), peak_streaming_bytes(600)
    assert ten <= 1.2 * one, (one, ten)
