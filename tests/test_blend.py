"""Blending a split with models and the blind split of the same input (nmfsep.blend), the
default with built-ins only (Settings.blind_share), in memory, streamed and from the CLI."""

from dataclasses import replace
import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from nmfsep import batch, blend, cli as cli_module, model, spectrum, stream
from nmfsep.cli import cli
from nmfsep.errors import BadValueError
from nmfsep.pipeline import Settings, split_sources
from nmfsep.supervised import learn

RATE = 8000


def tones(seconds=4.0):
    """A low harmonic tone and a high one, each switched on and off at its own rhythm."""
    t = np.arange(int(seconds * RATE)) / RATE
    low = sum(np.sin(2 * np.pi * 110 * h * t) / h for h in range(1, 5)) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    high = sum(np.sin(2 * np.pi * 1320 * h * t) / h for h in range(1, 3)) * (np.sin(2 * np.pi * 2.3 * t) > 0)
    return (0.3 * low).astype(np.float32), (0.2 * high).astype(np.float32)


@pytest.fixture(scope="module")
def own():
    """Two models of one's own (learned here): low, high; and the mixture (n, 1) they model."""
    low, high = tones()
    models = (learn(low, RATE, 6, name="low", max_iter=60), learn(high, RATE, 6, name="high", max_iter=60))
    return models, (low + high)[:, None]


def as_builtins(models):
    return tuple(replace(m, builtin=True) for m in models)


def random_masks(rng, n, shape=(9, 7)):
    values = rng.random((n, *shape)).astype(np.float32) ** 3 + 1e-3
    return values / values.sum(axis=0)


# --- match and combine ---------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 4])
def test_match_names_each_blind_stem_after_the_model_stem_it_overlaps(n):
    rng = np.random.default_rng(n)
    model_masks = random_masks(rng, n)
    shuffled = rng.permutation(n)
    blind_masks = 0.8 * model_masks[shuffled] + 0.2 * random_masks(rng, n)
    order = blend.match(model_masks, blind_masks, rng.random((9, 7)).astype(np.float32) + 0.1)
    np.testing.assert_array_equal(shuffled[order], np.arange(n))


def test_match_weighs_the_overlap_by_the_magnitude():
    """Two bins agree on one order, two on the other; the loud ones decide."""
    model_masks = np.array([1.0, 0.0, 1.0, 0.0], np.float32)[:, None]    # stem 0 holds bins 0 and 2
    blind_masks = np.array([1.0, 0.0, 0.0, 1.0], np.float32)[:, None]    # blind stem 0: bins 0 and 3
    model_masks, blind_masks = (np.stack([m, 1 - m]) for m in (model_masks, blind_masks))
    assert blend.match(model_masks, blind_masks, np.array([[10.0], [10.0], [1.0], [1.0]], np.float32)) == [0, 1]
    assert blend.match(model_masks, blind_masks, np.array([[1.0], [1.0], [10.0], [10.0]], np.float32)) == [1, 0]


def test_match_names_by_where_a_model_stem_is_higher_not_by_how_much_it_takes():
    """A model stem that takes nearly everything (90-99%) goes with the blind stem where it is
    highest, not with the louder blind stem: the plain overlap would pair them (18.02 against 3.98)."""
    model_masks = np.array([0.9, 0.9, 0.99, 0.99], np.float32)[:, None]
    model_masks = np.stack([model_masks, 1 - model_masks])
    blind_masks = np.array([1.0, 1.0, 0.0, 0.0], np.float32)[:, None]     # the loud bins 0, 1
    blind_masks = np.stack([blind_masks, 1 - blind_masks])
    magnitude = np.array([[10.0], [10.0], [1.0], [1.0]], np.float32)
    assert blend.match(model_masks, blind_masks, magnitude) == [1, 0]


def test_match_of_a_silent_input_keeps_the_order():
    rng = np.random.default_rng(2)
    masks = random_masks(rng, 3)
    assert blend.match(masks, masks[::-1], np.zeros((9, 7), np.float32)) == [0, 1, 2]


def test_match_refuses_masks_of_other_shapes_and_too_many_stems():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="cannot match"):
        blend.match(random_masks(rng, 2), random_masks(rng, 3), np.ones((9, 7), np.float32))
    many = random_masks(rng, blend.MAX_STEMS + 1)
    with pytest.raises(ValueError, match="at most"):
        blend.match(many, many, np.ones((9, 7), np.float32))


@pytest.mark.parametrize("share", [0.0, 0.3, 0.5, 1.0])
def test_combine_is_the_weighted_geometric_mean_and_its_masks_sum_to_one(share):
    rng = np.random.default_rng(1)
    a, b = random_masks(rng, 3), random_masks(rng, 3)
    combined = blend.combine(a, b, share)
    product = (a.astype(np.float64) + blend.FLOOR) ** (1 - share) * (b.astype(np.float64) + blend.FLOOR) ** share
    np.testing.assert_allclose(combined, product / product.sum(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(combined.sum(axis=0), 1, atol=1e-6)
    assert combined.dtype == np.float32
    if share in (0.0, 1.0):
        np.testing.assert_allclose(combined, a if share == 0 else b, atol=1e-5)


def test_combine_keeps_out_what_either_split_is_sure_of_and_halves_a_disagreement():
    """Stem 0 holds bin 0 in one split and shares it in the other: the product gives it more
    than the arithmetic mean (0.75); where the splits are sure of different stems, each gets half."""
    models = np.array([[[1.0], [1.0]], [[0.0], [0.0]]], np.float32)
    blind = np.array([[[0.5], [0.0]], [[0.5], [1.0]]], np.float32)
    combined = blend.combine(models, blind, 0.5)
    assert combined[0, 0, 0] > 0.99
    np.testing.assert_allclose(combined[:, 1, 0], [0.5, 0.5], atol=1e-6)


def test_the_blind_share_is_lower_beside_the_builtin_noise_only(own):
    from nmfsep.models import load_set
    models, _ = own
    assert Settings(models=tuple(load_set(["speech", "noise"])[0])).blind_share == blend.NOISE_SHARE
    assert Settings(models=tuple(load_set(["speech", "music", "noise"])[0])).blind_share == blend.NOISE_SHARE
    assert Settings(models=tuple(load_set(["speech", "music"])[0])).blind_share == blend.BUILTIN_SHARE
    assert Settings(models=as_builtins(models)).blind_share == blend.BUILTIN_SHARE
    assert blend.NOISE_SHARE < blend.BUILTIN_SHARE
    noise_of_ones_own = replace(models[0], name="noise")   # only the built-in noise counts
    assert blend.default_share((noise_of_ones_own, as_builtins(models)[1])) == blend.BUILTIN_SHARE
    assert Settings(models=(noise_of_ones_own, models[1])).blind_share == 0.0   # own models: no blend
    assert Settings(models=(models[0], *load_set(["noise"])[0])).blind_share == 0.0   # yours beside noise: none
    assert Settings(models=(models[0], *load_set(["music"])[0])).blind_share == blend.BUILTIN_SHARE  # beside music
    assert Settings(models=tuple(load_set(["speech", "noise"])[0]), blend=0.5).blind_share == 0.5


def test_clash_is_the_share_of_the_magnitude_where_the_splits_are_sure_of_different_stems():
    magnitude = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    model_stem0 = np.array([[0.9, 0.9, 0.5, 0.1]], np.float32)   # sure: stem 0, stem 0, neither, stem 1
    blind_stem0 = np.array([[0.1, 0.9, 0.1, 0.95]], np.float32)  # sure: stem 1, stem 0, stem 1, stem 0
    models, blind = np.stack([model_stem0, 1 - model_stem0]), np.stack([blind_stem0, 1 - blind_stem0])
    assert blend.clash(models, blind, magnitude) == pytest.approx((1 + 4) / 10)
    assert blend.clash(models, models, magnitude) == 0.0
    assert blend.clash(models, blind, np.zeros_like(magnitude)) == 0.0
    three = np.array([[[0.85]], [[0.1]], [[0.05]]], np.float32)
    unsure = np.array([[[0.4]], [[0.5]], [[0.1]]], np.float32)
    assert blend.clash(three, unsure, np.ones((1, 1), np.float32)) == 0.0   # the blind split is not sure
    assert blend.clash(three, three[[1, 0, 2]], np.ones((1, 1), np.float32)) == 1.0   # sure of stem 1
    assert 0 < blend.CLASH < 1 and 0.5 < blend.SURE < 1


def test_combine_is_finite_for_masks_of_zeros():
    zeros = np.zeros((2, 3, 4), np.float32)
    combined = blend.combine(zeros, zeros, 0.5)
    np.testing.assert_allclose(combined, 0.5)


def test_the_cli_bound_is_blends():
    assert cli_module.MAX_BLENDED == blend.MAX_STEMS


def test_the_blend_help_gives_the_shares_blend_uses():
    # the CLI does not import nmfsep.blend (numpy) to build its help, so the shares are written out there
    help_text = " ".join(CliRunner().invoke(cli_module.cli, ["split", "--help"]).output.split())
    assert f"[default: {blend.BUILTIN_SHARE:g} where" in help_text
    assert f"({blend.NOISE_SHARE:g} with the built-in noise among them; 0 with it beside a model of your own)" \
        in help_text


# --- the default and its checks --------------------------------------------------------------

def test_sets_with_a_builtin_blend_by_default_and_own_models_alone_or_free_bases_do_not(own):
    models, _ = own
    assert Settings(models=as_builtins(models)).blind_share == blend.BUILTIN_SHARE
    assert Settings(models=models).blind_share == 0
    assert Settings(models=(as_builtins(models)[0], models[1])).blind_share == blend.BUILTIN_SHARE  # one's own beside
    assert Settings(models=(models[0], as_builtins(models)[1])).blind_share == blend.BUILTIN_SHARE
    assert Settings(models=(as_builtins(models)[0], models[1]), n_free=2).blind_share == 0
    assert Settings(models=as_builtins(models), n_free=2).blind_share == 0
    assert Settings(models=as_builtins(models)[:1], n_free=2).blind_share == 0
    assert Settings(models=models, blend=0.3).blind_share == 0.3
    assert Settings(models=as_builtins(models), blend=0.0).blind_share == 0


@pytest.mark.parametrize("settings,message", [
    (dict(blend=1.5), "between 0 and 1"),
    (dict(blend=float("nan")), "between 0 and 1"),
    (dict(blend=0.5, n_free=2), "no --free"),
    (dict(blend=0.5, one_model=True), "2 to 6 models"),
])
def test_a_blend_that_cannot_apply_is_refused(own, settings, message):
    models, _ = own
    if settings.pop("one_model", False):
        models = models[:1]
    with pytest.raises(BadValueError, match=message):
        Settings(models=models, **settings).check()


def test_model_load_reads_no_builtin_flag_and_conform_keeps_it(own, tmp_path):
    models, _ = own
    model.save(models[0], str(tmp_path / "low.npz"))
    assert model.load(str(tmp_path / "low.npz")).builtin is False
    assert model.conform(as_builtins(models)[0], 16000, 1024, 256).builtin is True


# --- in memory, streamed ------------------------------------------------------------------------

def test_a_blended_split_masks_with_the_mean_of_the_model_and_blind_masks(own):
    models, mixture = own
    builtins = as_builtins(models)
    blended = split_sources(mixture, RATE, Settings(models=builtins))
    alone = split_sources(mixture, RATE, Settings(models=builtins, blend=0.0))
    blind = split_sources(mixture, RATE, Settings(models=builtins).blind_counterpart())
    magnitude = spectrum.analyse(mixture, blended.params)[1]
    order = blend.match(alone.masks, blind.masks, magnitude)
    np.testing.assert_allclose(blended.masks, blend.combine(alone.masks, blind.masks[order], 0.5), atol=1e-5)
    np.testing.assert_allclose(blended.stems.sum(axis=0), mixture, atol=1e-5)
    assert blended.names == ["low", "high"]
    assert not np.allclose(blended.masks, alone.masks, atol=1e-3)


def test_a_blind_split_that_clashes_with_the_models_is_left_out_of_the_masks(own, monkeypatch):
    """Where the two splits are sure of different stems over more than CLASH of the input, the
    masks are the models' alone, and the Separation says so (blend 0)."""
    models, mixture = own
    builtins = as_builtins(models)
    alone = split_sources(mixture, RATE, Settings(models=builtins, blend=0.0))
    blended = split_sources(mixture, RATE, Settings(models=builtins))
    blind = split_sources(mixture, RATE, Settings(models=builtins).blind_counterpart())
    magnitude = spectrum.analyse(mixture, blended.params)[1]
    order = blend.match(alone.masks, blind.masks, magnitude)
    assert blend.clash(alone.masks, blind.masks[order], magnitude) <= blend.CLASH   # these two agree
    assert blended.blend == 0.5 and alone.blend == 0.0
    monkeypatch.setattr(blend, "CLASH", -1.0)
    clashed = split_sources(mixture, RATE, Settings(models=builtins))
    assert clashed.blend == 0.0
    np.testing.assert_allclose(clashed.masks, alone.masks, atol=1e-6)
    assert clashed.iterations_run > alone.iterations_run   # the blind split was run, then left out


def test_a_blended_split_keeps_each_source_in_its_models_stem(own):
    """The blind split names its stems after the models: low stays low whatever the blind order."""
    models, mixture = own
    low, high = tones()
    stems = split_sources(mixture, RATE, Settings(models=as_builtins(models)[::-1])).stems[:, :, 0]
    assert np.corrcoef(stems[0], high)[0, 1] > 0.9 and np.corrcoef(stems[1], low)[0, 1] > 0.9


def test_the_progress_of_a_blended_split_ends_on_its_total(own):
    models, mixture = own
    seen = []
    result = split_sources(mixture, RATE, Settings(models=as_builtins(models), max_iter=30),
                           progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] == result.iterations_run
    assert result.iterations_run > 30  # the blind split's iterations are counted too


def streamed(samples, settings, block=997):
    out = []
    stream.split_stream(stream.ArrayReader(samples, block), samples.shape[1], RATE, len(samples), settings,
                        out.append)
    return np.concatenate(out, axis=1)


def test_a_streamed_blended_split_adds_up_to_the_input_and_blends(own, monkeypatch):
    models, mixture = own
    monkeypatch.setattr(stream, "BLOCK_FRAMES", 40)
    builtins = as_builtins(models)
    blended = streamed(mixture, Settings(models=builtins))
    alone = streamed(mixture, Settings(models=builtins, blend=0.0))
    np.testing.assert_allclose(blended.sum(axis=0), mixture, atol=1e-5)
    assert not np.allclose(blended, alone, atol=1e-3)
    low, _ = tones()
    assert np.corrcoef(blended[0, :, 0], low)[0, 1] > 0.9


def test_a_streamed_split_leaves_out_a_blind_split_that_clashes_and_its_progress_ends_on_its_total(
        own, monkeypatch):
    models, mixture = own
    monkeypatch.setattr(stream, "BLOCK_FRAMES", 40)
    builtins = as_builtins(models)
    alone = streamed(mixture, Settings(models=builtins, blend=0.0))
    monkeypatch.setattr(blend, "CLASH", -1.0)
    seen, out = [], []
    result = stream.split_stream(stream.ArrayReader(mixture, 997), 1, RATE, len(mixture), Settings(models=builtins),
                                 out.append, progress=lambda done, total: seen.append((done, total)))
    np.testing.assert_allclose(np.concatenate(out, axis=1), alone, atol=1e-5)
    assert result.blend == 0.0
    assert seen[-1][0] == seen[-1][1] == result.iterations_run


def test_digital_silence_streams_to_silent_stems_when_blended(own):
    models, _ = own
    stems = streamed(np.zeros((3000, 1), np.float32), Settings(models=as_builtins(models)))
    assert stems.shape == (2, 3000, 1) and not stems.any()


# --- the CLI --------------------------------------------------------------------------------

@pytest.fixture
def files(own, tmp_path):
    models, mixture = own
    for m in models:
        model.save(m, str(tmp_path / f"{m.name}.npz"))
    sf.write(str(tmp_path / "mix.wav"), mixture, RATE)
    return tmp_path


@pytest.mark.parametrize("args,message", [
    (["--model", "low.npz", "--free", "2", "--blend", "0.5"], "give that many --model"),
    (["--model", "low.npz", "--model", "high.npz", "--free", "2", "--blend", "0.5"], "leave out --free"),
    (["--model", "low.npz", "--model", "high.npz", "--blend", "1.5"], "1.5"),
    (["--blend", "0.5"], "give that many --model"),
])
def test_the_cli_refuses_a_blend_that_cannot_apply_as_a_usage_error(files, args, message, monkeypatch):
    monkeypatch.chdir(files)
    result = CliRunner().invoke(cli, ["split", "mix.wav", "-o", "out", *args])
    assert result.exit_code == 2, result.output
    assert "--blend" in result.output and message in result.output
    assert "Traceback" not in result.output and not (files / "out").exists()


def test_the_cli_blends_own_models_when_asked_and_its_json_says_so(files, monkeypatch):
    monkeypatch.chdir(files)
    for share, out, said in (("0", "plain", None), ("0.5", "blended", 0.5)):
        result = CliRunner().invoke(cli, ["split", "mix.wav", "--model", "low.npz", "--model", "high.npz",
                                          "--blend", share, "-o", out, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["blend"] == said
    default = CliRunner().invoke(cli, ["split", "mix.wav", "--model", "low.npz", "--model", "high.npz", "-o",
                                       "default", "--json"])
    assert default.exit_code == 0, default.output
    assert json.loads(default.stdout)["blend"] is None
    read = {out: sf.read(str(files / out / "mix" / "low.wav"))[0] for out in ("plain", "blended", "default")}
    np.testing.assert_array_equal(read["default"], read["plain"])   # own models: no blend by default
    assert not np.allclose(read["blended"], read["plain"], atol=1e-3)


@pytest.mark.parametrize("streaming", [False, True])
def test_the_json_says_no_blend_where_the_blind_split_clashed(files, monkeypatch, streaming):
    monkeypatch.chdir(files)
    monkeypatch.setattr(blend, "CLASH", -1.0)
    if streaming:
        monkeypatch.setattr(batch, "STREAM_ABOVE_BYTES", 1)
    args = ["split", "mix.wav", "--model", "low.npz", "--model", "high.npz", "--blend", "0.5", "--json"]
    result = CliRunner().invoke(cli, [*args, "-o", "clashed"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["blend"] is None and record["mode"] == ("stream" if streaming else "memory")
    plain = CliRunner().invoke(cli, [*args[:-3], "--blend", "0", "-o", "plain"])
    assert plain.exit_code == 0, plain.output
    np.testing.assert_allclose(sf.read(str(files / "clashed" / "mix" / "low.wav"))[0],
                               sf.read(str(files / "plain" / "mix" / "low.wav"))[0], atol=1e-4)


def test_separate_takes_a_blend_and_a_blend_counts_a_second_set_of_masks_in_memory(own):
    from nmfsep import pipeline

    models, mixture = own
    plain = pipeline.separate(mixture[:, 0], RATE, models=list(models))
    blended = pipeline.separate(mixture[:, 0], RATE, models=list(models), blend=0.5)
    assert blended.shape == plain.shape == (2, len(mixture))
    np.testing.assert_allclose(blended.sum(axis=0), mixture[:, 0], atol=1e-5)
    assert not np.allclose(blended, plain, atol=1e-3)
    with pytest.raises(BadValueError, match="between 0 and 1"):
        pipeline.separate(mixture[:, 0], RATE, models=list(models), blend=-0.1)
    for wrong in ("0.5", [0.5], 1j, True):
        with pytest.raises(BadValueError, match="blend must be a number between 0 and 1"):
            pipeline.separate(mixture[:, 0], RATE, models=list(models), blend=wrong)
    one, two = (pipeline.separation_memory(Settings(models=models, blend=b), 10**6, 1, RATE) for b in (0.0, 0.5))
    assert two > one


def test_the_report_states_the_blend(files, monkeypatch):
    monkeypatch.chdir(files)
    for share, said in (("0.25", "0.25 of a blind split in the masks (3 factorizations of 16, 24 and 32 "
                                 "components, grouping learned)"), ("0", "none: the models alone")):
        result = CliRunner().invoke(cli, ["split", "mix.wav", "--model", "low.npz", "--model", "high.npz",
                                          "--blend", share, "-o", f"out{share}", "--report", "--json"])
        assert result.exit_code == 0, result.output
        text = open(json.loads(result.stdout)["report"], encoding="utf-8").read()
        assert "blend (--blend)" in text and said in text
    monkeypatch.setattr(blend, "CLASH", -1.0)   # the blind split is run, then left out
    result = CliRunner().invoke(cli, ["split", "mix.wav", "--model", "low.npz", "--model", "high.npz",
                                      "--blend", "0.25", "-o", "clashed", "--report", "--json"])
    assert result.exit_code == 0, result.output
    text = open(json.loads(result.stdout)["report"], encoding="utf-8").read()
    assert "none: the blind split contradicted the models" in text and "blended with a blind split" not in text


def test_components_and_grouping_shape_the_blind_split_of_a_blend(own):
    models, mixture = own
    builtins = as_builtins(models)
    counterpart = Settings(models=builtins, n_components=5, grouping="timbre").blind_counterpart()
    assert (counterpart.n_sources, counterpart.n_components, counterpart.grouping) == (2, 5, "timbre")
    assert Settings(models=builtins).blind_counterpart().grouping == "learned"  # auto's tone check left out
    default = split_sources(mixture, RATE, Settings(models=builtins)).stems
    shaped = split_sources(mixture, RATE, Settings(models=builtins, n_components=5, grouping="timbre")).stems
    assert not np.allclose(default, shaped, atol=1e-4)
    with pytest.raises(BadValueError, match="fewer than the 2 stems"):
        Settings(models=builtins, n_components=1).check()
    Settings(models=builtins, n_components=1, blend=0.0).check()  # no blend: --components plays no part


def test_the_cli_refuses_a_nan_blend_as_a_usage_error(files, monkeypatch):
    monkeypatch.chdir(files)
    result = CliRunner().invoke(cli, ["split", "mix.wav", "--model", "low.npz", "--model", "high.npz",
                                      "--blend", "nan", "-o", "out"])
    assert result.exit_code == 2 and "--blend" in result.output and "nan" in result.output
    assert not (files / "out").exists()


def test_plot_says_when_its_masks_are_blended(files, monkeypatch):
    from nmfsep import figures

    titles = []
    real = figures.separation_figure
    monkeypatch.setattr(figures, "separation_figure", lambda *a, **k: titles.append(k["title"]) or real(*a, **k))
    monkeypatch.chdir(files)
    for share in ("0.5", "0"):
        result = CliRunner().invoke(cli, ["plot", "mix.wav", "--model", "low.npz", "--model", "high.npz",
                                          "--blend", share, "-o", f"fig{share}.png", "--iter", "20"])
        assert result.exit_code == 0, result.output
    assert "masks blended with a blind split (0.5)" in titles[0] and "blended" not in titles[1]


def test_plot_compare_pca_refuses_a_blend_and_runs_no_blind_split(files, monkeypatch):
    monkeypatch.chdir(files)
    ran = []
    monkeypatch.setattr(blend, "match", lambda *a: ran.append(a) or [0, 1])
    base = ["plot", "mix.wav", "--model", "low.npz", "--model", "high.npz", "--compare", "pca", "--iter", "20"]
    refused = CliRunner().invoke(cli, base + ["--blend", "0.5", "-o", "a.png"])
    assert refused.exit_code == 2 and "Invalid value for '--blend': plays no part in --compare pca" in refused.stderr
    assert not (files / "a.png").exists()
    from nmfsep import models as builtin_models

    monkeypatch.setattr(builtin_models, "load_set", lambda paths: (as_builtins(model.load(p) for p in paths), []))
    drawn = CliRunner().invoke(cli, base + ["-o", "b.png"])   # built-ins: blended by default, not here
    assert drawn.exit_code == 0, drawn.output
    assert (files / "b.png").exists() and not ran


@pytest.mark.parametrize("args,code,message", [
    (["--components", "1"], 2, "Invalid value for '--components': 1 is fewer than the 2 stems of the blind split"),
    (["--components", "1", "--blend", "0"], 0, ""),
    (["--components", "3", "--grouping", "timbre"], 0, ""),
])
def test_components_below_the_models_is_a_usage_error_only_while_blending(files, monkeypatch, args, code, message):
    monkeypatch.chdir(files)
    result = CliRunner().invoke(cli, ["split", "mix.wav", "--model", "low.npz", "--model", "high.npz", "--blend",
                                      "0.5", *args, "-o", "out", "-q"] if "--blend" not in args else
                                ["split", "mix.wav", "--model", "low.npz", "--model", "high.npz", *args, "-o", "out",
                                 "-q"])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert (files / "out").exists() == (code == 0)


def test_the_report_names_the_blind_split_a_blend_runs(own):
    from nmfsep import report

    from types import SimpleNamespace

    def frames(n, share=0.5):
        return SimpleNamespace(blend=share, activations=np.zeros((2, n), np.float32))

    builtins = as_builtins(own[0])
    assert report._blend(Settings(models=builtins, grouping="none"), frames(500)) == \
        "0.5 of a blind split in the masks (2 components, grouping none)"
    assert report._blend(Settings(models=builtins), frames(40)) == \
        "0.5 of a blind split in the masks (10 components, grouping learned)"   # a short input: n_frames // 4
    assert report._blend(Settings(models=builtins), frames(500)) == \
        "0.5 of a blind split in the masks (3 factorizations of 16, 24 and 32 components, grouping learned)"
    assert report._blend(Settings(models=builtins), frames(500, 0.0)).startswith(
        "none: the blind split contradicted the models")


def test_the_report_counts_every_iteration_of_a_blend_and_titles_its_figure(files, monkeypatch):
    from nmfsep import figures

    monkeypatch.chdir(files)
    titles, draw = [], figures.separation_figure
    monkeypatch.setattr(figures, "separation_figure", lambda *a, title="", **k: titles.append(title) or draw(*a, **k))
    result = CliRunner().invoke(cli, ["split", "mix.wav", "--model", "low.npz", "--model", "high.npz",
                                      "--blend", "0.5", "-o", "out", "--report", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    text = open(record["report"], encoding="utf-8").read()
    assert f"{record['iterations']} run in all (" in text
    assert titles == ["mix.wav: masks blended with a blind split (0.5)"]
    assert f"(and a blind split blended in), {record['iterations']} iterations, " in text


def test_a_report_refused_for_a_blend_that_streams_points_to_blend_0(files, monkeypatch):
    from nmfsep import batch, pipeline

    monkeypatch.chdir(files)
    models = tuple(model.load(str(files / f"{n}.npz")) for n in ("low", "high"))
    frames = sf.info(str(files / "mix.wav")).frames
    one, two = (pipeline.separation_memory(Settings(models=models, blend=b), frames, 1, RATE) for b in (0.0, 0.5))
    monkeypatch.setattr(batch, "STREAM_ABOVE_BYTES", (one + two) // 2)   # the blend streams, the models alone do not
    args = ["split", "mix.wav", "--model", "low.npz", "--model", "high.npz", "--report"]
    result = CliRunner().invoke(cli, args + ["--blend", "0.5", "-o", "a"])
    assert result.exit_code == 1
    assert result.stderr.endswith("too long for --report (the report embeds all its audio); split it without "
                                  "--report, or with --blend 0 (less memory)\n")
    assert CliRunner().invoke(cli, args + ["--blend", "0", "-o", "b"]).exit_code == 0
