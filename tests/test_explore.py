"""nmfsep explore: the server through Flask's test client, the command in a real subprocess, and
the page in headless Chromium (driven over the DevTools protocol on a pipe; no new dependency)."""

import base64
import io
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from conftest import CHROMIUM_FLAGS
from nmfsep import synth
from nmfsep.explore import EXTRA_HINT, app as explore_app, views
from nmfsep.nmf import factorize, kmeans

RATE = 22050


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 4 s mono recording of two synthetic tones (a WAV file)."""
    mix, _ = synth.mixture(2, RATE, 4.0, seed=3)
    path = tmp_path_factory.mktemp("explore") / "two tones.wav"
    sf.write(path, mix, RATE, subtype="FLOAT")
    return path


@pytest.fixture
def client(recording):
    return explore_app.create_app(str(recording)).test_client()


@pytest.fixture
def playground_client():
    return explore_app.create_app().test_client()


def ok(response):
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_json()


def refused(response, status, pattern):
    """A JSON error with that status whose message matches pattern, and no traceback."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json
    text = response.get_json()["error"]
    assert re.search(pattern, text), text
    assert "Traceback" not in response.get_data(as_text=True)
    return text


def decode_audio(uri):
    head, data = uri.split(",", 1)
    assert head in ("data:audio/flac;base64", "data:audio/wav;base64")
    samples, rate = sf.read(io.BytesIO(base64.b64decode(data)), dtype="float32", always_2d=True)
    return samples, rate


def image_values(picture):
    data = np.frombuffer(base64.b64decode(picture["data"]), np.uint8).reshape(picture["rows"], picture["cols"])
    return picture["lo"] + data / 255.0 * (picture["hi"] - picture["lo"])


# --- the page and the state -------------------------------------------------------------------

def test_the_page_is_served_with_its_script_and_loads_nothing_from_the_network(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<script src="/static/explore.js">' in html and 'href="/static/explore.css"' in html
    for asset in ("/static/explore.js", "/static/explore.css"):
        response = client.get(asset)
        assert response.status_code == 200
        html += response.get_data(as_text=True)
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I)    # no CDN, no remote URL


def test_state_describes_the_excerpt_and_the_limits(client, recording):
    state = ok(client.get("/api/state"))
    assert state["excerpt"]["name"] == str(recording)
    assert state["excerpt"]["kind"] == "recording"
    assert state["excerpt"]["duration"] == pytest.approx(4.0)
    assert state["limits"]["max_excerpt"] == views.MAX_EXCERPT
    assert state["limits"]["max_upload_mb"] == explore_app.MAX_UPLOAD_MB


def test_without_input_the_page_opens_on_the_playground(playground_client):
    excerpt = ok(playground_client.get("/api/state"))["excerpt"]
    assert excerpt["kind"] == "playground"
    assert [s["f0"] for s in excerpt["sources"]] == [s["f0"] for s in synth.DEFAULT_SOURCES[:2]]
    assert excerpt["duration"] == views.DEFAULT_EXCERPT


# --- 1. k --------------------------------------------------------------------------------------

def test_k_view_shows_v_beside_wh_and_a_loss_that_never_rises_with_k(client):
    client.get("/")
    one = ok(client.post("/api/k", json={"k": 1}))
    four = ok(client.post("/api/k", json={"k": 4}))
    assert four["losses"] == one["losses"] and len(one["losses"]) == views.K_MAX
    assert all(a >= b for a, b in zip(one["losses"], one["losses"][1:]))
    assert (one["loss"], four["loss"]) == (one["losses"][0], one["losses"][3])
    assert four["loss"] < one["loss"]
    assert (four["W"]["rows"], four["W"]["cols"], four["H"]["rows"]) == (views.N_BANDS, 4, 4)
    # the rank-4 reconstruction is closer to V than the rank-1 one (in the dB pictures too)
    V = image_values(four["V"])
    assert np.abs(image_values(four["WH"]) - V).mean() < np.abs(image_values(one["WH"]) - V).mean()


@pytest.mark.parametrize("k", [0, views.K_MAX + 1, "three", 2.5, None])
def test_k_out_of_range_is_a_message(client, k):
    client.get("/")
    refused(client.post("/api/k", json={"k": k}), 400, r"^k (= -?\d+ is out of range|must be a whole number)")


# --- 2. Step -----------------------------------------------------------------------------------

@pytest.mark.parametrize("beta", ["kl", "euclidean", "is"])
def test_step_runs_one_update_per_request_and_the_loss_falls(client, beta):
    client.get("/")
    start = ok(client.post("/api/step/start", json={"k": 3, "beta": beta, "init": "random"}))
    assert (start["iteration"], start["beta"]) == (0, views.BETAS[beta])
    losses = [start["loss"]]
    for i in range(1, 4):
        state = ok(client.post("/api/step", json={"updates": 1}))
        assert state["iteration"] == i
        losses.append(state["loss"])
    assert state["losses"] == losses
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_step_is_factorize_one_update_at_a_time(client, recording):
    client.get("/")
    ok(client.post("/api/step/start", json={"k": 3, "beta": "kl", "init": "nndsvda"}))
    state = ok(client.post("/api/step", json={"updates": 5}))
    V = views.analyse(views.read_excerpt(str(recording))).V
    direct = factorize(V, 3, beta="kl", solver="mu", init="nndsvda", max_iter=5, tol=0, seed=0)
    np.testing.assert_allclose(state["losses"], direct.losses, rtol=1e-5)


def test_step_before_start_asks_to_start(client):
    client.get("/")
    refused(client.post("/api/step", json={"updates": 1}), 400, "press Start")


def test_step_refuses_an_unknown_divergence_and_too_many_updates(client):
    client.get("/")
    refused(client.post("/api/step/start", json={"k": 2, "beta": "cosine"}), 400, "beta must be one of")
    ok(client.post("/api/step/start", json={"k": 2}))
    refused(client.post("/api/step", json={"updates": views.STEP_MAX + 1}), 400, "updates = .* out of range")


# --- 3, 4, 5 -----------------------------------------------------------------------------------

def test_pca_view_has_signed_components_beside_non_negative_parts(client):
    client.get("/")
    d = ok(client.post("/api/pca", json={"k": 3}))
    assert d["negative"] > 0.1
    assert 0 < d["explained_total"] <= 1 and d["explained"] == sorted(d["explained"], reverse=True)
    assert d["pca_components"]["lo"] == -1 and image_values(d["pca_components"]).min() < 0
    assert d["nmf_W"]["lo"] == 0 and d["nmf_W"]["cols"] == 3


def test_kmeans_view_is_nmf_kmeans_beside_soft_nmf_with_both_objectives(client, recording):
    client.get("/")
    d = ok(client.post("/api/kmeans", json={"k": 3}))
    V = views.analyse(views.read_excerpt(str(recording))).V
    assert d["kmeans_objective"] == pytest.approx(kmeans(V, 3, seed=0).losses[-1])
    assert sum(d["frames"]) == V.shape[1]
    assert d["nmf_objective"] < d["kmeans_objective"]
    hard = image_values(d["kmeans_H"])                  # (k, n_frames): short enough not to be pooled
    assert hard.shape == (3, V.shape[1])
    assert set(np.unique(hard)) == {0.0, 1.0} and (hard.sum(axis=0) == 1).all()     # one-hot
    soft = image_values(d["nmf_H"])                     # each frame's shares of the parts
    assert ((soft > 0.05) & (soft < 0.95)).any()


def test_deep_view_compares_one_layer_with_two(client):
    client.get("/")
    d = ok(client.post("/api/deep", json={"k1": 6, "k2": 2, "beta": "kl"}))
    for model in ("one", "two"):
        assert d[model]["loss"] > 0
        assert 0 <= d[model]["sparsity_W"] <= 1 and 0 <= d[model]["sparsity_H"] <= 1
    assert (d["two_W1"]["cols"], d["two_W2"]["rows"], d["two_W2"]["cols"], d["two_W"]["cols"]) == (6, 6, 2, 2)
    refused(client.post("/api/deep", json={"k1": 3, "k2": 3}), 400, r"k2 = 3 is out of range: choose 1 to 2")


def test_hoyer_sparsity_is_zero_for_flat_and_one_for_single_entries():
    assert views.hoyer_sparsity(np.ones((4, 3)), 0) == pytest.approx(0.0)
    assert views.hoyer_sparsity(np.eye(4), 0) == pytest.approx(1.0)


# --- 6. Separate and listen --------------------------------------------------------------------

def test_separate_gives_playable_stems_that_add_up_to_the_excerpt_with_their_masks(client, recording):
    client.get("/")
    d = ok(client.post("/api/separate", json={"n_sources": 2, "grouping": "none"}))
    mixture, rate = decode_audio(d["mixture"])
    stems = [decode_audio(s["audio"])[0] for s in d["stems"]]
    assert rate == RATE and [s["name"] for s in d["stems"]] == ["source1", "source2"]
    assert all(s.shape == mixture.shape for s in stems)
    np.testing.assert_allclose(sum(stems), mixture, atol=3 / 2**15)       # 16-bit players
    masks = [image_values(s["mask"]) for s in d["stems"]]
    np.testing.assert_allclose(sum(masks), 1.0, atol=2 / 255)
    assert d["truth"] is None


def test_playground_scores_the_separation_and_near_identical_tones_score_worse(playground_client):
    client = playground_client
    client.get("/")
    apart = ok(client.post("/api/playground", json={"n_sources": 2, "f0s": [220, 587.33], "duration": 4,
                                                    "separate": True}))
    close = ok(client.post("/api/playground", json={"n_sources": 2, "f0s": [220, 222.2], "duration": 4,
                                                    "separate": True}))
    assert close["excerpt"]["sources"][1]["f0"] == 222.2
    scores = [[t["si_sdr"] for t in d["separation"]["truth"]] for d in (apart, close)]
    assert min(scores[0]) > 10
    assert min(scores[1]) < min(scores[0]) - 10
    truth, _ = decode_audio(apart["separation"]["truth"][0]["audio"])
    assert truth.shape == (4 * 22050, 1)


def test_playground_refuses_pitches_out_of_range_in_the_pages_words(playground_client):
    playground_client.get("/")
    text = refused(playground_client.post("/api/playground", json={"n_sources": 2, "f0s": [220, 5000]}), 400,
                   r"^tone 2 pitch: 5000 Hz is outside 40-2000 Hz")
    assert "--" not in text
    text = refused(playground_client.post("/api/playground", json={"n_sources": 2, "periods": [0, 1]}), 400,
                   r"^tone 1 rhythm: 0 s is outside 0\.1-10 s")
    assert "--" not in text


def test_playground_refuses_a_pitch_that_is_not_a_number_naming_the_pitch_range(playground_client):
    playground_client.get("/")
    refused(playground_client.post("/api/playground", data='{"n_sources": 2, "f0s": [NaN, 220]}',
                                   content_type="application/json"), 400, r"^tone 1 pitch must be 40-2000 Hz")


def test_an_empty_upload_is_called_empty(client):
    ok(client.get("/api/state"))
    refused(upload(client, b"", "empty.wav"), 400, r"^empty\.wav: the file is empty \(0 bytes\)$")


def test_a_file_silent_throughout_is_not_told_to_move_its_start(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(2 * RATE, np.float32), RATE)
    client = explore_app.create_app(str(path)).test_client()
    text = refused(client.post("/api/k", json={"k": 1}), 400, r"silence\.wav: the whole file is silent")
    assert "move its start" not in text


# --- the excerpt, uploads, sessions ------------------------------------------------------------

def upload(client, data, name):
    return client.post("/api/upload", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def wav_bytes(seconds, rate=8000):
    buffer = io.BytesIO()
    mix, _ = synth.mixture(2, rate, seconds, seed=1)
    sf.write(buffer, mix, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_an_upload_becomes_the_sessions_only_excerpt(client):
    client.get("/")
    ok(client.post("/api/step/start", json={"k": 2}))
    state = ok(upload(client, wav_bytes(12.0), "long take.wav"))
    assert state["excerpt"] == {**state["excerpt"], "name": "long take.wav", "kind": "recording", "start": 0.0,
                                "duration": views.DEFAULT_EXCERPT, "total": 12.0, "sample_rate": 8000}
    refused(client.post("/api/step", json={"updates": 1}), 400, "press Start")   # the old W, H are gone
    assert ok(client.post("/api/k", json={"k": 2}))["axes"]["duration"] == views.DEFAULT_EXCERPT
    moved = ok(client.post("/api/excerpt", json={"start": 9.0, "duration": 2.0}))["excerpt"]
    assert (moved["start"], moved["duration"], moved["name"]) == (9.0, 2.0, "long take.wav")
    ok(upload(client, wav_bytes(3.0), "second.wav"))
    sessions = client.application.extensions["nmfsep_explore"]["sessions"]
    (session,) = sessions.held.values()
    assert os.listdir(session.folder) == ["second.wav"]              # the first upload is deleted


def test_an_uploads_name_cannot_write_outside_the_sessions_folder(client, tmp_path):
    client.get("/")
    state = ok(upload(client, wav_bytes(2.0), "../../escape.wav"))
    assert state["excerpt"]["name"] == "escape.wav"
    (session,) = client.application.extensions["nmfsep_explore"]["sessions"].held.values()
    assert os.path.dirname(session.path) == session.folder and os.listdir(session.folder) == ["escape.wav"]


def test_an_upload_that_is_not_audio_is_a_message_naming_it(client):
    client.get("/")
    text = refused(upload(client, b"these are my notes, not audio", "notes.txt"), 400,
                   r"^notes\.txt: not a readable audio file")
    assert "nmfsep-explore-" not in text                             # no server path
    assert ok(client.get("/api/state"))["excerpt"]["kind"] == "recording"      # the old excerpt stays


def test_an_upload_above_the_size_limit_is_refused_with_a_message(recording):
    client = explore_app.create_app(str(recording), max_upload_mb=0.01).test_client()
    client.get("/")
    refused(upload(client, wav_bytes(3.0), "big.wav"), 413, r"larger than 0\.01 MB")


def test_an_upload_without_a_file_is_a_message(client):
    client.get("/")
    refused(client.post("/api/upload", data={}, content_type="multipart/form-data"), 400, "no file was sent")


@pytest.mark.parametrize("body, pattern", [
    ({"start": 0, "duration": 31}, r"an excerpt of 31 s is too long: at most 30 s"),
    ({"start": 0, "duration": 0}, r"length must be at least 1 s, got 0"),
    ({"start": 60, "duration": 5}, r"starts at 60 s, after the end of the input \(4\.00 s\)"),
    ({"start": "soon"}, r"start must be a number"),
])
def test_a_bad_excerpt_is_a_message(client, body, pattern):
    client.get("/")
    refused(client.post("/api/excerpt", json=body), 400, pattern)


def test_the_state_gives_the_excerpts_own_k_range(client):
    ok(client.get("/api/state"))
    state = ok(upload(client, wav_bytes(1.0, rate=2000), "short.wav"))
    sessions = client.application.extensions["nmfsep_explore"]["sessions"]
    (session,) = sessions.held.values()
    k_max = min(views.K_MAX, *views.analyse(session.excerpt).V.shape)
    assert state["excerpt"]["k_max"] == k_max
    ok(client.post("/api/k", json={"k": k_max}))
    refused(client.post("/api/k", json={"k": k_max + 1}), 400, f"choose 1 to {k_max}")


def test_an_excerpt_under_a_second_is_refused_with_the_minimum(client):
    ok(client.get("/api/state"))
    refused(upload(client, wav_bytes(0.25), "blip.wav"), 400,
            r"^blip\.wav: the excerpt holds 0\.25 s of audio, too short to explore: at least 1 s$")


def test_a_start_near_the_end_is_moved_back_so_the_excerpt_keeps_its_length(client):
    ok(client.get("/api/state"))
    ok(upload(client, wav_bytes(12.0), "long take.wav"))
    moved = ok(client.post("/api/excerpt", json={"start": 11.0, "duration": 4.0}))["excerpt"]
    assert (moved["start"], moved["duration"]) == (8.0, 4.0)
    assert moved["note"] == "the start moved back from 11 s to 8 s so the excerpt keeps its 4 s"


def test_the_playground_excerpt_cannot_be_moved(playground_client):
    playground_client.get("/")
    refused(playground_client.post("/api/excerpt", json={"start": 1}), 400, "synthetic")


def test_an_unknown_session_is_told_to_reload(client):
    client.set_cookie(explore_app.COOKIE, "not-a-session")
    refused(client.post("/api/k", json={"k": 2}), 410, "reload the page")
    assert ok(client.get("/api/state"))["excerpt"]["kind"] == "recording"       # the page starts a new one


def test_the_server_keeps_a_bounded_number_of_sessions_dropping_the_oldest(recording):
    app = explore_app.create_app(str(recording), max_sessions=2)
    clients = [app.test_client() for _ in range(3)]
    ok(clients[0].get("/api/state"))
    ok(upload(clients[0], wav_bytes(2.0), "first.wav"))
    folder = next(iter(app.extensions["nmfsep_explore"]["sessions"].held.values())).folder
    for c in clients[1:]:
        ok(c.get("/api/state"))
    assert len(app.extensions["nmfsep_explore"]["sessions"].held) == 2
    assert not os.path.exists(folder)                                # its upload went with it
    refused(clients[0].post("/api/k", json={"k": 2}), 410, "keeps the 2 most recent")
    ok(clients[1].post("/api/k", json={"k": 2}))


def test_an_upload_whose_session_is_dropped_meanwhile_leaves_no_file(recording, monkeypatch):
    app = explore_app.create_app(str(recording), max_sessions=1)
    user, other = app.test_client(), app.test_client()
    ok(user.get("/api/state"))
    (session,) = app.extensions["nmfsep_explore"]["sessions"].held.values()
    named = explore_app.secure_filename

    def evicting(name):                 # another browser arrives while the upload is under way
        ok(other.get("/api/state"))
        return named(name)

    monkeypatch.setattr(explore_app, "secure_filename", evicting)
    refused(upload(user, wav_bytes(2.0), "late.wav"), 410, "reload the page")
    assert not os.path.exists(session.folder)


def test_a_body_that_is_not_a_json_object_is_a_message(client):
    client.get("/")
    refused(client.post("/api/k", data="[1, 2]", content_type="application/json"), 400, "JSON object")


def test_unknown_paths_and_methods_answer_json(client):
    refused(client.get("/api/nothing"), 404, "404 Not Found")
    refused(client.get("/api/k"), 405, "405 Method Not Allowed")


def test_an_unexpected_error_is_a_json_message_without_traceback(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views, "kmeans_view", broken)
    client.get("/")
    refused(client.post("/api/kmeans", json={"k": 2}), 500, r"internal error \(RuntimeError\): boom")


def test_a_silent_excerpt_is_a_message(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(RATE, np.float32), RATE)
    client = explore_app.create_app(str(path)).test_client()
    client.get("/")
    refused(client.post("/api/k", json={"k": 1}), 400, "silent")


def test_an_excerpt_with_too_many_samples_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "wide.wav"
    sf.write(path, np.zeros((8000, 8), np.float32), 8000)
    monkeypatch.setattr(views, "MAX_EXCERPT_VALUES", 8000 * 8 - 1)
    monkeypatch.setattr(views.audio.Source, "read_range", lambda *args: pytest.fail("read before the check"))
    with pytest.raises(views.NmfsepError, match=r"1 s at 8000 Hz x 8 channels holds too many samples"):
        views.read_excerpt(str(path), 0, 30)


# --- the command -------------------------------------------------------------------------------

def nmfsep(*args):
    return [sys.executable, "-m", "nmfsep.cli", *map(str, args)]


def started(process, timeout=60):
    """The URL the server printed on stderr, and all it printed until then, or fail with what it
    printed. Reads the pipe's file descriptor itself: a buffered readline() can take two lines at
    once (a warning and the URL) and leave select() waiting for a second one that already came."""
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([process.stderr], [], [], 0.5)
        if ready:
            line += os.read(process.stderr.fileno(), 65536).decode()
            match = re.search(r"(http://\S+/) \(Ctrl-C stops\)", line)
            if match:
                return match.group(1), line
    pytest.fail(f"no URL printed: {line!r} {process.stderr.read() if process.poll() is not None else ''}")


def fake_browser(folder):
    """(env whose BROWSER, run by the webbrowser module, writes the URL it is given to a file; that file)."""
    opened, browser = folder / "opened.txt", folder / "browser"
    browser.write_text(f"#!/bin/sh\necho \"$1\" > '{opened}'\n")
    browser.chmod(0o755)
    return {**os.environ, "BROWSER": str(browser)}, opened


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_explore_prints_its_url_serves_the_page_and_stops_cleanly(recording, tmp_path, stop):
    env, opened = fake_browser(tmp_path)
    process = subprocess.Popen(nmfsep("explore", recording, "--port", 0, "--no-browser"), text=True, env=env,
                               stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        url, first = started(process)
        assert re.fullmatch(r"nmfsep explore: http://127\.0\.0\.1:\d+/ \(Ctrl-C stops\)\n", first)
        with urllib.request.urlopen(url, timeout=30) as response:
            assert b"nmfsep explore" in response.read()
        with urllib.request.urlopen(url + "api/state", timeout=30) as response:
            assert json.loads(response.read())["excerpt"]["name"] == str(recording)
        process.send_signal(stop)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode in (0, 130)
    assert (out, err) == ("", "nmfsep explore: stopped\n")          # no request log, no traceback
    assert not opened.exists()                                       # --no-browser


def test_explore_opens_the_browser_on_its_url(recording, tmp_path):
    env, opened = fake_browser(tmp_path)
    process = subprocess.Popen(nmfsep("explore", recording, "--port", 0), text=True, env=env,
                               stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        url, _ = started(process)
        deadline = time.monotonic() + 30
        while not (opened.exists() and opened.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    finally:
        process.kill()
    assert opened.read_text() == url + "\n"


def test_explore_on_a_port_in_use_is_one_line_and_exit_1():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(nmfsep("explore", "--port", port, "--no-browser"), capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 1
    assert re.fullmatch(rf"nmfsep: error: 127\.0\.0\.1:{port}: cannot listen there \(.+\); choose another "
                        r"port with --port \(0: any free port\)\n", result.stderr)


def test_explore_with_an_unreadable_input_is_one_line_and_exit_1_before_serving(tmp_path):
    notes = tmp_path / "notes.wav"
    notes.write_text("not audio")
    result = subprocess.run(nmfsep("explore", notes, "--port", 0, "--no-browser"), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert re.fullmatch(rf"nmfsep: error: {re.escape(str(notes))}: not a readable audio file \(.*\)\n", result.stderr)


def test_explore_refuses_stdin_which_it_could_not_read_again():
    result = subprocess.run(nmfsep("explore", "-", "--no-browser"), capture_output=True, text=True, timeout=60,
                            input="")
    assert result.returncode == 1
    assert result.stderr == ("nmfsep: error: <stdin>: explore reads its input again for every page and excerpt; "
                             "save the stream to a file and give that\n")


def test_explore_on_another_interface_warns(recording):
    process = subprocess.Popen(nmfsep("explore", recording, "--host", "0.0.0.0", "--port", 0, "--no-browser"),
                               text=True, stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        _, printed = started(process)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    finally:
        process.kill()
    port = re.search(r"http://0\.0\.0\.0:(\d+)/", printed).group(1)
    assert printed.startswith(f"nmfsep: warning: listening on 0.0.0.0, not on this machine's loopback: anyone "
                              f"who can reach it on port {port} can use the page")


def test_explore_without_the_extra_exits_2_with_the_install_hint():
    code = ("import sys; sys.modules['flask'] = None; sys.argv = ['nmfsep', 'explore', '--no-browser']; "
            "from nmfsep.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"nmfsep: error: {EXTRA_HINT}\n"


@pytest.mark.parametrize("host", ["999.1.1.1", "no.such.host.invalid"])
def test_a_bad_host_is_named_and_not_blamed_on_the_port(host):
    with pytest.raises(views.NmfsepError) as caught:
        explore_app.make_server(explore_app.create_app(), host, 0)
    assert str(caught.value).startswith(f"{host}: ")
    assert "choose another host with --host" in str(caught.value) and "--port" not in str(caught.value)


def test_the_page_names_an_inline_icon_so_the_browser_asks_for_no_favicon(client):
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'<link rel="icon" href="data:[^"]*">', html)


def test_page_loads_without_a_cookie_do_not_evict_real_sessions(recording):
    app = explore_app.create_app(str(recording), max_sessions=2)
    user = app.test_client()
    ok(user.get("/api/state"))
    for _ in range(9):
        assert "Set-Cookie" not in app.test_client().get("/").headers
    ok(user.post("/api/k", json={"k": 2}))


def test_loopback_hosts_are_told_from_others():
    assert all(map(explore_app.is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(explore_app.is_loopback, ["0.0.0.0", "192.168.1.2", "::", "example.org"]))


def test_ctrl_c_during_a_computation_stops_without_a_traceback(recording, tmp_path):
    # the view keeps handing work to one of nmfsep's worker pools, as factorize does; Ctrl-C
    # comes while it runs, and Python's exit shuts that pool down under it while exit's own
    # cleanup (the uploads folder, ...) takes its time (here 0.5 s)
    busy = tmp_path / "busy"
    code = ("import atexit, pathlib, sys, time; from nmfsep.explore import views\n"
            "from nmfsep.nmf._parallel import Workers\n"
            "atexit.register(time.sleep, 0.5)\n"
            "def busy(*args, **kwargs):\n"
            f"    pathlib.Path({str(busy)!r}).touch()\n"
            "    with Workers(2) as workers:\n"
            "        while True:\n"
            "            workers.map(time.sleep, [0.01, 0.01])\n"
            "views.deep_view = busy\n"
            f"sys.argv = ['nmfsep', 'explore', {str(recording)!r}, '--port', '0', '--no-browser']\n"
            "from nmfsep.cli import main; main()")
    process = subprocess.Popen([sys.executable, "-c", code], text=True, stderr=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    try:
        url, _ = started(process)
        threading.Thread(target=post_quietly, args=(url + "api/deep", {"k1": 3, "k2": 2}), daemon=True).start()
        deadline = time.monotonic() + 60
        while not busy.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert busy.exists(), "the computation never started"
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert (out, err) == ("", "nmfsep explore: stopped\n")


def post_quietly(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=30).read()
    except (OSError, ValueError):
        pass                                    # cut short by the stop: that may fail


# --- the page in a real browser ----------------------------------------------------------------

class DevTools:
    """Chromium's DevTools protocol over --remote-debugging-pipe: JSON messages ending in a NUL
    byte, commands written to its fd 3, answers and events read from its fd 4."""

    def __init__(self, binary, profile):
        to_browser, self.commands = os.pipe()
        self.answers, from_browser = os.pipe()
        shell = f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}'    # bash: dash takes fds up to 9 only
        self.process = subprocess.Popen(["bash", "-c", shell, binary, *CHROMIUM_FLAGS, "--remote-debugging-pipe",
                                         f"--user-data-dir={profile}", "--window-size=1100,900", "about:blank"],
                                        pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self.buffer, self.next_id, self.session = b"", 0, None

    def send(self, method, timeout=30, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self.next_id:
                    assert "error" not in answer, answer
                    return answer["result"]
            left = deadline - time.monotonic()
            assert left > 0, f"{method}: no answer from Chromium"
            if select.select([self.answers], [], [], left)[0]:
                chunk = os.read(self.answers, 1 << 16)
                assert chunk, "Chromium closed the pipe"
                self.buffer += chunk

    def open(self, url):
        target = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
        self.send("Page.navigate", url=url)

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        shown = self.evaluate("$('message').textContent")
        pytest.fail(f"timed out waiting for {expression}; the page's message: {shown!r}")

    def close(self):
        self.process.kill()
        self.process.wait()
        os.close(self.commands)
        os.close(self.answers)


@pytest.fixture
def served(recording):
    """The explore server on a free port in a thread; yields its URL."""
    server = explore_app.make_server(explore_app.create_app(str(recording)), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}/"
    server.shutdown()
    server.server_close()


def test_the_page_in_chromium_moves_k_and_steps_with_a_falling_loss(chromium, served, tmp_path):
    browser = DevTools(chromium, tmp_path / "profile")
    try:
        browser.open(served)
        browser.wait_for("typeof $ === 'function' && $('view-k').dataset.k === '3'")   # the script ran
        before = float(browser.evaluate("$('view-k').dataset.loss"))
        browser.evaluate("(() => { const s = $('k-slider'); s.value = 6; s.dispatchEvent(new Event('input')); })()")
        browser.wait_for("$('view-k').dataset.k === '6'")
        assert browser.evaluate("$('k-value').textContent") == "6"
        assert float(browser.evaluate("$('view-k').dataset.loss")) < before
        shown = []
        for i in range(1, 4):
            browser.evaluate("$('step-button').click()")
            browser.wait_for(f"$('view-step').dataset.iteration === '{i}'")
            shown.append(float(browser.evaluate("$('step-loss').textContent")))
        assert shown[0] > shown[1] > shown[2], shown
        assert browser.evaluate("$('message').hidden") is True
        assert browser.evaluate("[...document.querySelectorAll('audio')].every(a => a.paused)") is True
    finally:
        browser.close()


def test_the_page_in_chromium_clears_the_previous_excerpts_views_and_redraws_k(chromium, served, tmp_path):
    browser = DevTools(chromium, tmp_path / "profile")
    try:
        browser.open(served)
        browser.wait_for("typeof $ === 'function' && $('view-k').dataset.k === '3'")
        browser.evaluate("$('pca-button').click()")
        browser.wait_for("$('pca-summary').textContent.startsWith('PCA:')")
        before = browser.evaluate("$('view-k').dataset.loss")
        browser.evaluate("$('excerpt-start').value = 1; $('excerpt-duration').value = 2; $('excerpt-button').click()")
        browser.wait_for("$('source').textContent.includes('1.0–3.0 s') && $('view-k').dataset.k === '3'")
        assert browser.evaluate("$('pca-summary').textContent") == ""      # the old excerpt's numbers are gone
        assert browser.evaluate("$('view-k').dataset.loss") != before     # view 1 shows the new excerpt
    finally:
        browser.close()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "10.0.0.5:8765"])
def test_a_request_addressed_to_another_name_is_refused_dns_rebinding(client, host):
    answer = client.get("/", headers={"Host": host})
    assert answer.status_code == 403
    assert answer.get_json()["error"].startswith("this page answers only to localhost and 127.0.0.1")


@pytest.mark.parametrize("host", ["localhost:8765", "127.0.0.1:8765", "[::1]:8765", "127.0.0.1"])
def test_requests_to_loopback_names_are_answered(client, host):
    assert client.get("/", headers={"Host": host}).status_code == 200


def test_a_server_on_another_interface_answers_any_name(recording):
    app = explore_app.create_app(str(recording), loopback_only=False)
    assert app.test_client().get("/", headers={"Host": "10.0.0.5:8765"}).status_code == 200
