"""`nmfsep eval` and nmfsep.evaluate: which mixture, bss_eval in bounded windows, progress."""

import json
import warnings

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from click.testing import CliRunner

from nmfsep import evaluate
from nmfsep.cli import cli
from nmfsep.errors import NmfsepError
from nmfsep.evaluate import bss_eval, si_sdr

RATE = 8000


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def broadband(n_frames, seed, cutoff, btype="low", n_channels=None):
    """Filtered noise with a slow loudness swing: a well-conditioned reference for bss_eval."""
    rng = np.random.default_rng(seed)
    shape = (n_frames,) if n_channels is None else (n_frames, n_channels)
    noise = scipy.signal.lfilter(*scipy.signal.butter(4, cutoff, btype), rng.standard_normal(shape), axis=0)
    swing = 1 + 0.8 * np.sin(np.arange(n_frames) / (300 * (seed + 1)))
    return noise * (swing if n_channels is None else swing[:, None])


def sources_and_estimates(n_frames, n_channels=None):
    """Two references, and estimates with a short filter, a leak of the other source and noise."""
    rng = np.random.default_rng(7)
    refs = np.stack([broadband(n_frames, 1, 0.2, "low", n_channels),
                     0.5 * broadband(n_frames, 2, 0.3, "high", n_channels)])
    filtered = scipy.signal.lfilter([1.0, 0.3, -0.1], [1.0], refs[0], axis=0)
    ests = np.stack([filtered + 0.2 * refs[1] + 0.05 * rng.standard_normal(refs[0].shape),
                     refs[1] + 0.3 * refs[0] + 0.1 * rng.standard_normal(refs[0].shape)])
    return refs, ests


def mir_eval_sources(refs, ests):
    """mir_eval's bss_eval_sources (the reference implementation) on (n_sources, n_samples)."""
    from mir_eval.separation import bss_eval_sources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sdr, sir, sar, _ = bss_eval_sources(refs, ests, compute_permutation=False)
    return {"sdr": sdr, "sir": sir, "sar": sar}


@pytest.fixture
def files(tmp_path):
    refs, ests = sources_and_estimates(2 * RATE)
    paths = {}
    for name, samples in (("ref1", refs[0]), ("ref2", refs[1]), ("est1", ests[0]), ("est2", ests[1]),
                          ("mix", refs.sum(0) + 0.01)):
        paths[name] = tmp_path / f"{name}.wav"
        sf.write(paths[name], samples, RATE, subtype="FLOAT")
    return paths


def test_eval_with_one_reference_and_no_mix_is_a_usage_error(files):
    result = run("eval", "--ref", files["ref1"], files["est1"], files["est2"])
    assert result.exit_code == 2
    assert result.stderr == ("nmfsep eval: error: the mixture cannot be the sum of one reference: "
                             "give --mix MIX (see 'nmfsep eval --help')\n")
    assert result.stdout == ""


def test_eval_with_one_reference_and_a_mix_scores_the_improvement_over_that_mix(files):
    result = run("eval", "--ref", files["ref1"], files["est2"], files["est1"], "--mix", files["mix"], "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))
    assert report["mixture"] == str(files["mix"])
    [row] = report["references"]
    ref, est, mix = (sf.read(files[name])[0] for name in ("ref1", "est1", "mix"))
    assert row["estimate"] == str(files["est1"])
    assert row["si_sdr_improvement"] == pytest.approx(si_sdr(ref, est) - si_sdr(ref, mix), abs=1e-6)
    assert row["sir"] is None  # one reference: no interference, SIR infinite (as in mir_eval), null in JSON
    assert np.isfinite(row["sdr"]) and np.isfinite(row["sar"])
    assert "mixture:" not in result.stderr


def test_eval_with_two_references_says_the_mixture_is_their_sum(files):
    result = run("eval", "--ref", files["ref1"], "--ref", files["ref2"], files["est1"], files["est2"], "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == "mixture: the sum of the 2 references (give --mix for another)\n"
    report = json.loads(result.stdout)
    assert report["mixture"] == "sum of references"
    refs = [sf.read(files[name])[0] for name in ("ref1", "ref2")]
    for row, ref, name in zip(report["references"], refs, ("est1", "est2")):
        assert set(row) == {"reference", "estimate", "si_sdr", "si_sdr_improvement", "sdr", "sir", "sar"}
        est = sf.read(files[name])[0]
        assert row["si_sdr_improvement"] == pytest.approx(si_sdr(ref, est) - si_sdr(ref, refs[0] + refs[1]),
                                                          abs=1e-6)
    assert set(report["mean"]) == {"si_sdr", "si_sdr_improvement", "sdr", "sir", "sar"}


def test_eval_ordered_scores_each_estimate_in_its_place_so_a_swap_scores_low(files):
    swapped = ("--ref", files["ref1"], "--ref", files["ref2"], files["est2"], files["est1"], "--json")
    matched, ordered = (json.loads(run("eval", *swapped, *extra).stdout) for extra in ((), ("--ordered",)))
    assert [r["estimate"] for r in matched["references"]] == [str(files["est1"]), str(files["est2"])]
    assert [r["estimate"] for r in ordered["references"]] == [str(files["est2"]), str(files["est1"])]
    assert (matched["ordered"], ordered["ordered"]) == (False, True)
    refs, ests = ([sf.read(files[n])[0] for n in names] for names in (("ref1", "ref2"), ("est2", "est1")))
    expected = mir_eval_sources(np.stack(refs), np.stack(ests))
    for i, row in enumerate(ordered["references"]):
        assert row["si_sdr"] == pytest.approx(si_sdr(refs[i], ests[i]), abs=1e-6)
        assert row["sdr"] == pytest.approx(expected["sdr"][i], abs=0.05)
    assert ordered["mean"]["si_sdr"] < matched["mean"]["si_sdr"] - 10


def test_eval_ordered_needs_as_many_estimates_as_references(files):
    for args, counts in (((files["ref1"], files["est1"], files["est2"], "--mix", files["mix"]), "2 estimates and 1"),
                         ((files["ref1"], "--ref", files["ref2"], files["est1"]), "1 estimates and 2")):
        result = run("eval", "--ref", *args, "--ordered")
        assert result.exit_code == 2
        assert "--ordered pairs the i-th estimate with the i-th reference: give as many of each, " \
               f"got {counts} --ref" in result.stderr
        assert result.stdout == ""


def test_eval_quiet_prints_nothing_on_stderr(files):
    result = run("eval", "--ref", files["ref1"], "--ref", files["ref2"], files["est1"], files["est2"], "-q")
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and result.stdout == ""


def test_bss_eval_in_one_window_agrees_with_mir_eval():
    refs, ests = sources_and_estimates(6000)
    ours = bss_eval(refs, ests, window=6000)
    theirs = mir_eval_sources(refs, ests)
    for name in ("sdr", "sir", "sar"):
        # The same projections by two exact methods (Toeplitz solve of the correlations, and
        # mir_eval's Gram matrix): on well-conditioned references they differ only by rounding.
        np.testing.assert_allclose(ours[name], theirs[name], atol=1e-6)


def test_bss_eval_scores_stereo_as_the_channels_laid_end_to_end():
    refs, ests = sources_and_estimates(3000, n_channels=2)
    ours = bss_eval(refs, ests, window=3000)
    theirs = mir_eval_sources(*(x.swapaxes(1, 2).reshape(2, -1) for x in (refs, ests)))
    for name in ("sdr", "sir", "sar"):
        np.testing.assert_allclose(ours[name], theirs[name], atol=1e-6)


def test_windows_tile_the_signal_with_at_most_the_window_each():
    for n_frames, window in ((10, 3), (12, 4), (100, 100), (99, 100), (1001, 250)):
        spans = evaluate.windows(n_frames, window)
        assert spans[0][0] == 0 and spans[-1][1] == n_frames
        assert all(stop == next_start for (_, stop), (next_start, _) in zip(spans, spans[1:]))
        lengths = [stop - start for start, stop in spans]
        assert max(lengths) <= window and max(lengths) - min(lengths) <= 1
        assert len(spans) == -(-n_frames // window)


def test_bss_eval_in_windows_pools_the_energies_of_each_windows_bss_eval():
    refs, ests = sources_and_estimates(9000)
    pooled = bss_eval(refs, ests, window=3000)
    target, projected, energy = np.zeros(2), np.zeros(2), np.zeros(2)
    for start, stop in ((0, 3000), (3000, 6000), (6000, 9000)):
        scores = mir_eval_sources(refs[:, start:stop], ests[:, start:stop])
        e = np.einsum("ij,ij->i", ests[:, start:stop], ests[:, start:stop])
        sdr_ratio, sar_ratio = 10 ** (scores["sdr"] / 10), 10 ** (scores["sar"] / 10)
        target += e * sdr_ratio / (1 + sdr_ratio)  # T / (E - T) = 10^(SDR/10)
        projected += e * sar_ratio / (1 + sar_ratio)  # P / (E - P) = 10^(SAR/10)
        energy += e
    np.testing.assert_allclose(pooled["sdr"], 10 * np.log10(target / (energy - target)), atol=1e-6)
    np.testing.assert_allclose(pooled["sir"], 10 * np.log10(target / (projected - target)), atol=1e-6)
    np.testing.assert_allclose(pooled["sar"], 10 * np.log10(projected / (energy - projected)), atol=1e-6)


def test_bss_eval_reports_progress_per_window_up_to_the_total():
    refs, ests = sources_and_estimates(5000)
    calls = []
    bss_eval(refs, ests, window=2000, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_bss_eval_default_window_bounds_frames_channels_and_sources(monkeypatch):
    assert evaluate.bss_window(2, 2) * 2 * 2**2 <= evaluate.BSS_BUDGET
    assert evaluate.bss_window(4, 2) == evaluate.bss_window(2, 2) // 4
    monkeypatch.setattr(evaluate, "BSS_BUDGET", 2**16)  # 16384 frames of mono with 2 sources
    calls = []
    refs, ests = sources_and_estimates(3 * evaluate.bss_window(2, 1) - 5)
    bss_eval(refs, ests, progress=lambda done, total: calls.append(total))
    assert calls == [3, 3, 3]


def test_a_silent_window_weighs_nothing():
    refs, ests = sources_and_estimates(6000)
    with_intro = [np.concatenate([np.zeros((2, 3000)), x], axis=1) for x in (refs, ests)]
    scores, without = bss_eval(*with_intro, window=3000), bss_eval(refs, ests, window=3000)
    for name in ("sdr", "sir", "sar"):
        np.testing.assert_allclose(scores[name], without[name], atol=1e-9)


def test_an_estimate_where_its_reference_is_silent_counts_as_distortion():
    refs, ests = sources_and_estimates(6000)
    refs[0, :3000] = 0.0  # the first source starts late; its estimate leaks the other one before that
    scores = bss_eval(refs, ests, window=3000)
    assert np.isfinite(scores["sdr"]).all()
    late = bss_eval(refs[:, 3000:], ests[:, 3000:], window=3000)
    assert scores["sdr"][0] < late["sdr"][0] - 1


def test_si_sdr_sums_in_chunks_to_the_whole_signal_value(monkeypatch):
    refs, ests = sources_and_estimates(4500, n_channels=2)
    s, s_hat = refs[0].ravel(), ests[0].ravel()
    target = (s_hat @ s) / (s @ s) * s
    expected = 10 * np.log10((target @ target) / ((s_hat - target) @ (s_hat - target)))
    monkeypatch.setattr(evaluate, "CHUNK", 1000)
    assert si_sdr(refs[0].astype(np.float32), ests[0].astype(np.float32)) == pytest.approx(expected, abs=1e-4)
    assert si_sdr(refs[0], ests[0]) == pytest.approx(expected, abs=1e-9)


def test_si_sdr_is_the_same_at_any_level_and_minus_inf_for_a_silent_estimate():
    refs, ests = sources_and_estimates(4500)
    expected = si_sdr(refs[0], ests[0])
    for scale in (1e-30, 1e-15, 1e10):
        assert si_sdr(refs[0] * scale, ests[0] * scale) == pytest.approx(expected, abs=1e-6)
        assert si_sdr((refs[0] * scale).astype(np.float32), (ests[0] * scale).astype(np.float32)) == \
            pytest.approx(expected, abs=1e-3)
    assert si_sdr(refs[0] * 1e-30, refs[0] * 1e-30) == pytest.approx(200.0)  # a perfect estimate: the cap
    assert si_sdr(refs[0], np.zeros_like(refs[0])) == float("-inf")


def test_references_that_depend_on_each_other_get_one_line_and_no_bss_still_scores(tmp_path):
    refs, ests = sources_and_estimates(4000)
    sf.write(tmp_path / "a.wav", refs[0], RATE, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", ests[1], RATE, subtype="FLOAT")
    result = run("eval", "--ref", tmp_path / "a.wav", "--ref", tmp_path / "a.wav", tmp_path / "a.wav", tmp_path / "b.wav",
                 "-q")
    assert result.exit_code == 1
    assert result.stderr == ("nmfsep: error: bss_eval cannot score references that depend on each other (the same "
                             "signal twice, or scaled): --no-bss scores SI-SDR only\n")
    result = run("eval", "--ref", tmp_path / "a.wav", "--ref", tmp_path / "a.wav", tmp_path / "a.wav", tmp_path / "b.wav",
                 "--no-bss", "--json")
    assert result.exit_code == 0
    first = json.loads(result.stdout)["references"][0]
    assert first["estimate"] == str(tmp_path / "a.wav") and first["si_sdr"] > 100 and "sdr" not in first
    with pytest.raises(NmfsepError, match="depend on each other"):
        bss_eval(np.stack([refs[0], 2 * refs[0]]), ests)


def test_signals_shorter_than_the_distortion_filter_get_one_line_and_no_bss_still_scores(tmp_path):
    refs, ests = sources_and_estimates(evaluate.FILTER_LENGTH - 1)
    for i, signal in enumerate([*refs, *ests]):
        sf.write(tmp_path / f"{i}.wav", signal, RATE, subtype="FLOAT")
    args = ["eval", "--ref", tmp_path / "0.wav", "--ref", tmp_path / "1.wav", tmp_path / "2.wav", tmp_path / "3.wav"]
    result = run(*args, "-q")
    assert result.exit_code == 1
    assert result.stderr == (f"nmfsep: error: {tmp_path / '0.wav'}: 511 samples are too short for bss_eval's "
                             "512-tap distortion filter: --no-bss scores SI-SDR only\n")
    assert run(*args, "--no-bss", "-q").exit_code == 0
    with pytest.raises(NmfsepError, match="511 samples are too short for bss_eval"):
        bss_eval(refs, ests)
    assert np.isfinite(bss_eval(*sources_and_estimates(evaluate.FILTER_LENGTH))["sdr"]).all()


def test_silent_references_score_nan_improvement_without_a_warning():
    refs, ests = sources_and_estimates(4000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = evaluate.score(np.zeros_like(refs), ests, with_bss_eval=False)
    assert all(np.isnan(r["si_sdr_improvement"]) and r["si_sdr"] == -np.inf for r in rows)


def test_one_silent_reference_or_estimate_gives_no_warning(tmp_path):
    refs, ests = sources_and_estimates(4000)
    sf.write(tmp_path / "r1.wav", np.zeros_like(refs[0]), RATE, subtype="FLOAT")
    sf.write(tmp_path / "r2.wav", refs[1], RATE, subtype="FLOAT")
    sf.write(tmp_path / "e1.wav", ests[0], RATE, subtype="FLOAT")
    sf.write(tmp_path / "e2.wav", np.zeros_like(ests[1]), RATE, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run("eval", "--ref", tmp_path / "r1.wav", "--ref", tmp_path / "r2.wav", tmp_path / "e1.wav",
                     tmp_path / "e2.wav", "--json")
        assert si_sdr(refs[1], np.zeros_like(refs[1])) == -np.inf
    assert result.exit_code == 0, result.stderr
    assert "Warning" not in result.stderr
    assert len(json.loads(result.stdout)["references"]) == 2


def test_eval_names_the_file_that_does_not_match_and_counts_in_the_singular(files, tmp_path):
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((2 * RATE, 2), np.float32) + 0.1, RATE, subtype="FLOAT")
    result = run("eval", "--ref", files["ref1"], "--ref", files["ref2"], files["est1"], stereo)
    assert result.exit_code == 1
    assert result.stderr == (f"nmfsep: error: {stereo}: {RATE} Hz, {2 * RATE} frames, 2 channels does not match "
                             f"{files['ref1']} ({RATE} Hz, {2 * RATE} frames, 1 channel)\n")
