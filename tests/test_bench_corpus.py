"""benchmarks/bench_quality.py --corpus: the scoring of one mixture of a corpus (benchmarks/make_corpus.py's format)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RATE = 16000
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_quality.py"


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("bench_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pattern(f0, harmonics, period, offset, seconds=2.0):
    """Harmonics of f0, on for the first half of each period (shifted by offset), float32."""
    t = np.arange(int(seconds * RATE)) / RATE
    gate = (t / period + offset) % 1 < 0.5
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in harmonics)
    return (0.2 * gate * tone).astype(np.float32)


@pytest.fixture
def corpus(tmp_path):
    """Two 2 s, 16 kHz mono test mixtures of a low harmonic pattern and a high one that alternate."""
    mixtures = []
    for i in range(2):
        sources = [pattern(220.0 * (1 + i / 10), (1, 2, 3), 0.5, 0.0), pattern(3000.0, (1, 2), 0.4, 0.5 + i / 4)]
        folder = f"test/pitched_far/{i:04d}"
        (tmp_path / folder).mkdir(parents=True)
        sf.write(tmp_path / folder / "mix.wav", sources[0] + sources[1], RATE, subtype="FLOAT")
        for k, source in enumerate(sources, 1):
            sf.write(tmp_path / folder / f"src{k}.wav", source, RATE, subtype="FLOAT")
        mixtures.append({"id": folder, "split": "test", "class": "pitched_far", "rate": RATE, "channels": 1,
                         "seconds": 2.0, "dir": folder,
                         "sources": [{"file": f"src{k}.wav", "kind": "instrument", "material": f"program:test:{k}",
                                      "gain_db": 0.0, "detail": ""} for k in (1, 2)]})
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 1, "seed": 0, "mixtures": mixtures}))
    return tmp_path, mixtures


def test_oracle_ratio_mask_row_scores_above_10_db_on_disjoint_sources(bench, corpus):
    folder, mixtures = corpus
    for entry in mixtures:
        [record] = bench.measure_mixture(str(folder), entry, ["oracle-mask"])
        assert "error" not in record, record
        assert (record["id"], record["method"], len(record["si_sdri"])) == (entry["id"], "oracle-mask", 2)
        assert record["mean"] > 10


def test_best_permutation_scores_swapped_stems_as_ordered_ones(bench, corpus):
    folder, mixtures = corpus
    case = bench.load_mixture(str(folder), mixtures[0])
    ordered = bench.improvements(case, case["refs"])
    swapped = bench.improvements(case, case["refs"][::-1])
    np.testing.assert_allclose(swapped, ordered)
    assert ordered.min() > 20  # a perfect estimate: far above the mixture


def test_a_failing_mixture_is_recorded_as_an_error_not_raised(bench, corpus):
    folder, mixtures = corpus
    (folder / mixtures[1]["dir"] / "src2.wav").unlink()
    records = bench.measure_mixture(str(folder), mixtures[1], ["oracle-mask", "librosa"])
    assert [r["method"] for r in records] == ["oracle-mask", "librosa"]
    assert all("src2.wav" in r["error"] and "mean" not in r for r in records)
