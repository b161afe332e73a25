import struct

import numpy as np
import pytest
from click.testing import CliRunner

from nmfsep import figures
from nmfsep.cli import cli
from nmfsep.errors import NmfsepError
from nmfsep.pipeline import Settings, split_sources
from nmfsep.spectrum import analyse


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def png_size(path):
    """(width, height) from a PNG's IHDR chunk."""
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def panels(fig):
    """The labelled axes of a figure (colorbars have no label of ours), by label."""
    return {ax.get_label(): ax for ax in fig.axes if ax.get_label() and ax.get_label() != "<colorbar>"}


@pytest.fixture(scope="module")
def separated():
    """(spectrogram, sample_rate, separation) of the demo tones, 3 sources, few iterations."""
    from nmfsep import synth

    mix, _ = synth.mixture(3, 22050, 2.0, seed=3)
    separation = split_sources(mix[:, None], 22050, Settings(n_sources=3, max_iter=30, n_components=9))
    return analyse(mix[:, None], separation.params)[1], 22050, separation


def test_separation_figure_has_spectrogram_bases_activations_masks_and_loss(separated):
    spectrogram, rate, separation = separated
    fig = figures.separation_figure(spectrogram, rate, separation)
    found = panels(fig)
    assert set(found) == {"spectrogram", "loss", "bases", "activations",
                          "mask source1", "mask source2", "mask source3"}
    for label, ax in found.items():
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title(), label
    assert "Hz" in found["spectrogram"].get_ylabel() and "log" in found["spectrogram"].get_ylabel()
    assert found["spectrogram"].get_xlabel() == "time (s)"
    assert found["activations"].get_xlabel() == "time (s)"
    assert found["loss"].get_xlabel() == "iteration"
    assert len(found["loss"].lines[0].get_ydata()) == separation.n_iter + 1


def test_separation_figure_colorbars_name_their_units(separated):
    fig = figures.separation_figure(*separated)
    units = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert any("dB" in u for u in units) and any("mask" in u for u in units)


def test_spectrogram_is_drawn_in_db_over_log_spaced_bands(separated):
    spectrogram, rate, separation = separated
    fig = figures.separation_figure(spectrogram, rate, separation)
    image = panels(fig)["spectrogram"].images[0].get_array()
    assert image.max() == pytest.approx(0) and image.min() >= -figures.DB_RANGE
    assert image.shape[0] == figures.N_BANDS


def test_pca_components_are_signed_and_nmf_parts_are_not(separated):
    spectrogram, rate, separation = separated
    fig = figures.pca_figure(spectrogram, rate, separation.params, separation.bases, separation.activations)
    found = panels(fig)
    assert set(found) == {"pca components", "nmf bases", "pca scores", "nmf activations"}
    assert found["pca components"].images[0].get_array().min() < 0
    assert found["pca scores"].images[0].get_array().min() < 0
    assert found["nmf bases"].images[0].get_array().min() >= 0
    assert found["nmf activations"].images[0].get_array().min() >= 0
    for ax in found.values():
        assert ax.get_xlabel() and ax.get_ylabel()


def test_log_bands_average_bins_and_keep_the_scale():
    pool, edges = figures.log_bands(22050, 1024)
    assert pool.shape == (figures.N_BANDS, 513)
    assert np.allclose(pool.sum(axis=1), 1)
    assert np.all(np.diff(edges) > 0) and edges[-1] == pytest.approx(11025)


def test_pool_time_keeps_at_most_max_columns():
    matrix = np.arange(2 * 3001, dtype=float).reshape(2, 3001)
    pooled = figures.pool_time(matrix, 1000)
    assert pooled.shape[1] <= 1000
    assert pooled[0, 0] == pytest.approx(matrix[0, :4].mean())


def test_plot_writes_a_png_at_least_1200_px_wide(wav_file, tmp_path):
    figure = tmp_path / "fig.png"
    result = run("plot", wav_file("song.wav"), "-o", figure, "--iter", 20, "-k", 2)
    assert result.exit_code == 0, result.output
    width, height = png_size(figure)
    assert width >= 1200 and height >= 600
    assert "fig.png" in result.stderr


def test_plot_compare_pca_replaces_a_figure_with_force(wav_file, tmp_path):
    figure = tmp_path / "pca.png"
    figure.write_bytes(b"old")
    result = run("plot", wav_file("song.wav", channels=2), "--compare", "pca", "-o", figure, "--iter", 10,
                 "--components", 6, "--force", "-q")
    assert result.exit_code == 0, result.output
    assert png_size(figure)[0] >= 1200
    assert result.stderr == ""


def test_plot_never_overwrites_without_force(wav_file, tmp_path):
    figure = tmp_path / "fig.png"
    figure.write_bytes(b"mine")
    result = run("plot", wav_file("song.wav"), "-o", figure, "--iter", 5)
    assert result.exit_code == 1
    assert result.stderr == f"nmfsep: error: {figure} already exists (use --force to overwrite)\n"
    assert figure.read_bytes() == b"mine"


def test_plot_unknown_figure_format_is_one_line_error(wav_file, tmp_path):
    result = run("plot", wav_file("song.wav"), "-o", tmp_path / "fig.gif")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "must end in .png" in result.stderr


def test_plot_missing_input_is_one_line_error(tmp_path):
    result = run("plot", tmp_path / "nope.wav", "-o", tmp_path / "fig.png")
    assert result.exit_code == 1
    assert result.stderr == f"nmfsep: error: {tmp_path / 'nope.wav'}: no such file\n"
    assert not (tmp_path / "fig.png").exists()


def test_plot_bad_option_is_a_usage_error(wav_file, tmp_path):
    result = run("plot", wav_file("song.wav"), "-o", tmp_path / "f.png", "--free", 2)
    assert result.exit_code == 2 and "--free" in result.stderr


def test_save_refuses_existing_and_writes_atomically(tmp_path, separated):
    fig = figures.rank_figure([1, 2, 3], [3.0, 1.0, 0.5], 2, "rule")
    path = tmp_path / "sub" / "r.png"
    figures.save(fig, str(path))
    with pytest.raises(NmfsepError, match="already exists"):
        figures.save(fig, str(path))
    assert [p.name for p in path.parent.iterdir()] == ["r.png"]


def test_write_atomic_gives_a_new_file_the_mode_a_stem_gets_and_keeps_a_file_that_exists(tmp_path):
    import os

    from nmfsep import audio

    path = tmp_path / "sub" / "f.png"
    figures.write_atomic(str(path), b"first")
    assert path.read_bytes() == b"first"
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~audio._UMASK)   # not mkstemp's 0o600
    with pytest.raises(NmfsepError, match="already exists"):
        figures.write_atomic(str(path), b"second", overwrite=False)
    assert path.read_bytes() == b"first"
    assert [p.name for p in path.parent.iterdir()] == ["f.png"]   # no temporary file left
