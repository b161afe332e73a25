import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from nmfsep import synth
from nmfsep.cli import cli
from nmfsep.errors import NmfsepError
from nmfsep.rank import KNEE_RULE, knee, loss_by_rank
from nmfsep.spectrum import analyse, default_params


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def tones_spectrogram(n_sources=3):
    mix, _ = synth.mixture(n_sources, 22050, 1.0, seed=0)
    V = analyse(mix[:, None], default_params(22050))[1]
    return V / V.mean()


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_losses_never_rise_with_k(beta):
    rows = loss_by_rank(tones_spectrogram(), 5, beta=beta, max_iter=20)
    losses = [r.loss for r in rows]
    assert [r.k for r in rows] == [1, 2, 3, 4, 5]
    assert all(b <= a for a, b in zip(losses, losses[1:])), losses


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_on_fit_gets_the_rank_k_factors_whose_loss_is_reported(beta):
    from nmfsep.nmf import beta_divergence

    V = np.random.default_rng(1).random((40, 30)).astype(np.float32)    # noise: some k keep k - 1's fit
    factors = {}
    rows = loss_by_rank(V, 8, beta=beta, max_iter=15, on_fit=lambda k, W, H: factors.setdefault(k, (W, H)))
    assert sorted(factors) == list(range(1, 9))
    for row in rows:
        W, H = factors[row.k]
        assert (W.shape, H.shape) == ((40, row.k), (row.k, 30))
        # the losses are the solver's (float32 products), the reference recomputes them in float64
        assert beta_divergence(V, W, H, beta) == pytest.approx(row.loss, rel=1e-4)


def test_losses_never_rise_on_noise():
    V = np.random.default_rng(0).random((40, 30)).astype(np.float32)
    losses = [r.loss for r in loss_by_rank(V, 8, max_iter=15)]
    assert all(b <= a for a, b in zip(losses, losses[1:])), losses


def test_rank_loss_is_that_of_a_real_factorization():
    """k = 1 is plain NMF: its loss is what factorize reaches from the same start."""
    from nmfsep.nmf import factorize

    V = tones_spectrogram(2)
    rows = loss_by_rank(V, 3, max_iter=40)
    assert rows[0].loss == pytest.approx(float(factorize(V, 1, max_iter=40, seed=0).losses[-1]))


def test_knee_is_where_the_curve_bends():
    assert knee([1, 2, 3, 4, 5, 6], [100, 20, 12, 10, 9, 8.5]) == 2
    assert knee([1, 2, 3, 4, 5, 6], [100, 90, 80, 20, 15, 12]) == 4
    assert knee([1, 2], [5, 1]) is None
    assert knee([1, 2, 3], [5, 5, 5]) is None


def test_too_many_components_for_the_input_is_refused():
    with pytest.raises(NmfsepError, match="lower --max-k"):
        loss_by_rank(np.ones((5, 4)), 6)


def test_rank_json_has_the_contract_fields(wav_file, tmp_path):
    result = run("rank", wav_file("song.wav"), "--max-k", 4, "--iter", 20, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert set(record) == {"input", "ranks", "suggested_k", "rule"}
    assert [r["k"] for r in record["ranks"]] == [1, 2, 3, 4]
    losses = [r["loss"] for r in record["ranks"]]
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    assert record["suggested_k"] in (1, 2, 3, 4) and record["rule"] == KNEE_RULE
    assert "suggested k" in result.stderr and "loss" in result.stderr


def test_rank_draws_the_curve(wav_file, tmp_path):
    figure = tmp_path / "rank.png"
    result = run("rank", wav_file("song.wav"), "--max-k", 3, "--iter", 10, "-o", figure, "-q", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["figure"] == str(figure)
    assert result.stderr == ""
    with open(figure, "rb") as f:
        assert struct.unpack(">I", f.read(24)[16:20])[0] >= 1200


def test_rank_of_silence_is_one_line_error(wav_file):
    result = run("rank", wav_file("quiet.wav", samples=np.zeros(22050, np.float32)), "--max-k", 3)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "silent" in result.stderr


def test_rank_max_k_below_three_is_a_usage_error(wav_file):
    result = run("rank", wav_file("song.wav"), "--max-k", 2)
    assert result.exit_code == 2 and "--max-k" in result.stderr


def test_an_input_too_short_for_max_k_is_named(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "short.wav", np.random.default_rng(0).standard_normal(300).astype(np.float32) * 0.1, 8000)
    result = run("rank", tmp_path / "short.wav")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"nmfsep: error: {tmp_path / 'short.wav'}: max-k 10 is more than this input "
                                    "supports"), result.stderr


def test_a_figure_under_a_file_is_refused_as_not_a_folder(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "x.wav", np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1, 8000)
    (tmp_path / "afile").write_text("")
    result = run("rank", tmp_path / "x.wav", "-o", tmp_path / "afile" / "x.png")
    assert result.exit_code == 1
    assert result.stderr == f"nmfsep: error: {tmp_path / 'afile'}: not a folder, cannot write the figure there\n"


def test_an_input_too_short_for_three_ranks_is_named_without_lower_max_k(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "tiny.wav", np.random.default_rng(0).standard_normal(100).astype(np.float32) * 0.1, 8000)
    result = run("rank", tmp_path / "tiny.wav", "--max-k", 3)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"nmfsep: error: {tmp_path / 'tiny.wav'}: too short to rank (2 frames"), result.stderr
    assert "--max-k" not in result.stderr
