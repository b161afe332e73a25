import json
import os
import struct

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from nmfsep import demo
from nmfsep.cli import cli
from nmfsep.errors import NmfsepError


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    """(result, folder) of one `nmfsep demo --json` run with chosen fundamentals."""
    folder = tmp_path_factory.mktemp("demo") / "out"
    result = run("demo", "-o", folder, "--f0", "220,587.33", "--duration", 2, "--json")
    assert result.exit_code == 0, result.output
    return result, folder


def test_demo_separates_distinct_sources_above_10_db(two_sources):
    result, _ = two_sources
    record = json.loads(result.stdout)
    assert len(record["si_sdr"]) == 2
    assert min(record["si_sdr"]) > 10, record["si_sdr"]
    assert [s["f0"] for s in record["sources"]] == [220.0, 587.33]


def test_demo_near_identical_spectra_do_not_separate(two_sources):
    result, _ = two_sources
    control = json.loads(result.stdout)["near_identical"]
    assert control["sources"][1]["f0"] == pytest.approx(220 * demo.NEAR_RATIO)
    assert min(control["si_sdr"]) < 3, control["si_sdr"]


def test_demo_writes_audio_and_figure(two_sources):
    result, folder = two_sources
    record = json.loads(result.stdout)
    paths = [record["mixture"], record["figure"], record["near_identical"]["mixture"]]
    paths += [s[k] for s in record["sources"] + record["near_identical"]["sources"] for k in ("true", "separated")]
    assert all(os.path.exists(p) for p in paths)
    mixture, rate = sf.read(record["mixture"])
    true = sum(sf.read(s["true"])[0] for s in record["sources"])
    separated = sum(sf.read(s["separated"])[0] for s in record["sources"])
    assert rate == demo.SAMPLE_RATE and len(mixture) == 2 * rate
    assert np.allclose(true, mixture, atol=1e-6) and np.allclose(separated, mixture, atol=1e-4)
    with open(record["figure"], "rb") as f:
        assert struct.unpack(">I", f.read(24)[16:20])[0] >= 1200


def test_demo_prints_si_sdr_for_people(two_sources):
    result, _ = two_sources
    assert "SI-SDR" in result.stderr and "control" in result.stderr


def test_demo_never_overwrites_without_force(two_sources):
    _, folder = two_sources
    result = run("demo", "-o", folder, "--duration", 1)
    assert result.exit_code == 1
    assert result.stderr.startswith("nmfsep: error: ") and "--force" in result.stderr
    assert result.stderr.count("\n") == 1


def test_demo_with_three_sources_and_rhythms():
    distinct, near = demo.run(3, f0s=[150, 440, 1000], periods=[0.4, 0.6, 1.1], duration=1.5, max_iter=100)
    assert len(distinct.si_sdr) == 3 and min(distinct.si_sdr) > 10, distinct.si_sdr
    assert [s["period"] for s in distinct.sources] == [0.4, 0.6, 1.1]
    assert min(near.si_sdr) < 3


def test_f0_count_must_match_sources(tmp_path):
    result = run("demo", "-o", tmp_path / "d", "--sources", 3, "--f0", "220,440")
    assert result.exit_code == 2 and "--f0" in result.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("value", ["220,abc", "220,-5", ","])
def test_bad_f0_list_is_a_usage_error(tmp_path, value):
    result = run("demo", "-o", tmp_path / "d", "--f0", value)
    assert result.exit_code == 2 and "--f0" in result.stderr


def test_f0_outside_the_audible_range_is_refused():
    with pytest.raises(NmfsepError, match="--f0 5 is outside"):
        demo.source_specs(2, f0s=[5, 440])


def test_a_tone_above_a_quarter_of_the_rate_keeps_its_fundamental():
    from nmfsep.synth import harmonic_tone

    tone = harmonic_tone(5000.0, 0.5, False, 1600, 16000)  # no second harmonic below Nyquist
    spectrum = np.abs(np.fft.rfft(tone))
    assert np.isfinite(tone).all() and np.argmax(spectrum) == 500  # 5000 Hz at 10 Hz per bin


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("kept")
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        result = CliRunner().invoke(cli, ["demo", "-o", str(out), "-q"], catch_exceptions=False)
        assert result.exit_code == 1
        assert "not a folder, cannot write the demo's files there" in result.stderr, result.stderr
    assert (tmp_path / "afile").read_text() == "kept"


@pytest.mark.parametrize("args,message", [
    (["--f0", "220,220"], "--f0 220 and 220 are less than 3% apart: the demo's sources need distinct pitches"),
    (["--f0", "30000,440"], "--f0 30000 is outside 40-2000"),
    (["--period", "x"], "'x' is not a comma-separated list of numbers (e.g. 0.5,0.7)"),
    (["--f0", "x"], "'x' is not a comma-separated list of numbers (e.g. 220,587)"),
])
def test_bad_sources_are_usage_errors_before_any_work(tmp_path, args, message):
    result = run("demo", "-o", tmp_path / "d", "-q", *args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "d").exists()
