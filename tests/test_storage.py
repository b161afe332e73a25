"""Inputs and outputs as fsspec URLs: a real S3-compatible server (moto) on 127.0.0.1, memory://
and file://; the same stems and records as local paths, whole objects only, one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from nmfsep import storage
from nmfsep.cli import cli

fsspec = pytest.importorskip("fsspec", reason="the dask extra (fsspec, s3fs) is not installed")
pytest.importorskip("s3fs", reason="the dask extra (s3fs) is not installed")
moto_server = pytest.importorskip("moto.server", reason="moto[server] (dev extra) is not installed")

RATE = 16000
FAST = ["--iter", "5", "--grouping", "none"]
NMFSEP = os.path.join(os.path.dirname(sys.executable), "nmfsep")


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server on 127.0.0.1 and the environment that points S3 clients at it."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env
    server.stop()


@pytest.fixture
def s3(s3_env, request):
    """A fresh bucket (named after the test) and its s3fs filesystem."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    bucket = "t-" + request.node.name.replace("_", "-").lower()[:50]
    fs.mkdir(bucket)
    yield fs, bucket
    fs.rm(bucket, recursive=True)
    s3fs.S3FileSystem.clear_instance_cache()


def tone_bytes(seed=0, seconds=0.5, fmt="WAV"):
    import io

    t = np.arange(int(seconds * RATE)) / RATE
    mix = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * (1500 + 100 * seed) * t)
    mix += 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    buffer = io.BytesIO()
    sf.write(buffer, mix.astype(np.float32), RATE, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


def split(*args, env=None):
    return CliRunner(env=env).invoke(cli, ["split", *map(str, args)], catch_exceptions=False)


def records(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def read_s3(fs, url):
    import io

    return sf.read(io.BytesIO(fs.cat(url)), dtype="float32")[0]


def test_s3_folder_in_and_out_gives_the_stems_of_a_local_split(s3, tmp_path):
    fs, bucket = s3
    for i, name in enumerate(["a.wav", "b.wav", "sub/c.wav"]):
        fs.pipe(f"{bucket}/in/{name}", tone_bytes(i))
        os.makedirs(tmp_path / "in" / os.path.dirname(name), exist_ok=True)
        (tmp_path / "in" / name).write_bytes(tone_bytes(i))

    remote = split(f"s3://{bucket}/in/", "-r", "-o", f"s3://{bucket}/out/", "-k", "2", *FAST, "--json", "-q")
    local = split(tmp_path / "in", "-r", "-o", tmp_path / "out", "-k", "2", *FAST, "--json", "-q")

    assert remote.exit_code == 0, remote.output
    got = {r["input"]: r for r in records(remote)}
    assert sorted(got) == [f"s3://{bucket}/in/{n}" for n in ["a.wav", "b.wav", "sub/c.wav"]]
    assert got[f"s3://{bucket}/in/sub/c.wav"]["stems"] == [
        {"name": f"source{i}", "path": f"s3://{bucket}/out/sub/c/source{i}.wav"} for i in (1, 2)]
    for record in records(local):
        track = os.path.relpath(record["input"], tmp_path / "in")
        twin = got[f"s3://{bucket}/in/{track}"]
        assert {k: v for k, v in twin.items() if k not in ("input", "stems", "seconds", "peak_memory")} == \
               {k: v for k, v in record.items() if k not in ("input", "stems", "seconds", "peak_memory")}
        for mine, theirs in zip(record["stems"], twin["stems"]):
            np.testing.assert_array_equal(read_s3(fs, theirs["path"]), sf.read(mine["path"], dtype="float32")[0])
    assert sorted(fs.find(f"{bucket}/out")) == sorted(
        f"{bucket}/out/{t}/source{i}.wav" for t in ["a", "b", "sub/c"] for i in (1, 2))


def test_local_input_to_s3_and_s3_input_to_a_local_folder(s3, tmp_path):
    fs, bucket = s3
    (tmp_path / "mix.wav").write_bytes(tone_bytes())
    up = split(tmp_path / "mix.wav", "-o", f"s3://{bucket}/stems", "-k", "2", *FAST, "-q")
    assert up.exit_code == 0, up.output
    assert fs.exists(f"{bucket}/stems/mix/source1.wav") and fs.exists(f"{bucket}/stems/mix/source2.wav")

    fs.pipe(f"{bucket}/take.wav", tone_bytes(1))
    down = split(f"s3://{bucket}/take.wav", "-o", tmp_path / "out", "-k", "2", *FAST, "--json", "-q")
    assert down.exit_code == 0, down.output
    assert records(down)[0]["stems"][0]["path"] == str(tmp_path / "out" / "take" / "source1.wav")
    summed = sum(sf.read(tmp_path / "out" / "take" / f"source{i}.wav")[0] for i in (1, 2))
    np.testing.assert_allclose(summed, read_s3(fs, f"{bucket}/take.wav"), atol=2 / 2**15)  # the stems add up
    assert sorted(os.listdir(tmp_path / "out" / "take")) == ["source1.wav", "source2.wav"]


def test_skip_existing_and_force_look_at_the_stems_in_the_bucket(s3):
    fs, bucket = s3
    fs.pipe(f"{bucket}/in/a.wav", tone_bytes())
    args = [f"s3://{bucket}/in/a.wav", "-o", f"s3://{bucket}/out", "-k", "2", *FAST, "--json", "-q"]
    assert split(*args).exit_code == 0
    fs.pipe(f"{bucket}/out/a/source1.wav", b"marker")

    refused = split(*args)
    assert refused.exit_code == 1
    assert records(refused)[0]["error"] == (f"s3://{bucket}/in/a.wav: s3://{bucket}/out/a/source1.wav already "
                                            "exists (use --force to overwrite)")
    assert fs.cat(f"{bucket}/out/a/source1.wav") == b"marker"

    skipped = split(*args, "--skip-existing")
    assert skipped.exit_code == 0 and records(skipped)[0]["status"] == "skipped"
    assert fs.cat(f"{bucket}/out/a/source1.wav") == b"marker"

    forced = split(*args, "--force")
    assert forced.exit_code == 0 and records(forced)[0]["status"] == "ok"
    assert fs.cat(f"{bucket}/out/a/source1.wav")[:4] == b"RIFF"


def test_a_corrupt_object_fails_alone_and_leaves_no_stems(s3):
    fs, bucket = s3
    fs.pipe(f"{bucket}/in/good.wav", tone_bytes())
    fs.pipe(f"{bucket}/in/bad.wav", b"RIFF not really a wave file")
    result = split(f"s3://{bucket}/in", "-o", f"s3://{bucket}/out", "-k", "2", *FAST, "--json", "-q")
    assert result.exit_code == 1
    by_input = {r["input"]: r for r in records(result)}
    bad = by_input[f"s3://{bucket}/in/bad.wav"]
    assert bad["status"] == "error" and bad["error"].startswith(f"s3://{bucket}/in/bad.wav: not a readable audio file")
    assert "nmfsep-" not in bad["error"]  # the scratch copy is never named
    assert by_input[f"s3://{bucket}/in/good.wav"]["status"] == "ok"
    assert sorted(fs.find(f"{bucket}/out")) == [f"{bucket}/out/good/source{i}.wav" for i in (1, 2)]


def test_a_failed_upload_removes_the_stems_already_uploaded(tmp_path, monkeypatch):
    memory = fsspec.filesystem("memory")
    memory.pipe("/in/a.wav", tone_bytes())
    real_put = type(memory).put_file
    calls = []

    def put_then_fail(self, local, path, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_put(self, local, path, **kwargs)

    monkeypatch.setattr(type(memory), "put_file", put_then_fail)
    result = split("memory://in/a.wav", "-o", "memory://out", "-k", "2", *FAST, "--json", "-q")
    assert result.exit_code == 1
    assert records(result)[0]["error"] == "memory://in/a.wav: memory://out/a/source2.wav: cannot write it (No space left on device)"
    assert len(calls) == 2 and not memory.exists("/out/a/source1.wav") and not memory.exists("/out/a/source2.wav")


def test_file_urls_work_and_are_moved_into_place(tmp_path):
    (tmp_path / "mix.wav").write_bytes(tone_bytes())
    result = split(f"file://{tmp_path}/mix.wav", "-o", f"file://{tmp_path}/out", "-k", "2", *FAST, "--json", "-q")
    assert result.exit_code == 0, result.output
    assert records(result)[0]["stems"][1]["path"] == f"file://{tmp_path}/out/mix/source2.wav"
    assert sorted(os.listdir(tmp_path / "out" / "mix")) == ["source1.wav", "source2.wav"]  # no .part left


def test_a_folder_url_leaves_out_hidden_files_and_subfolders_without_r_and_the_output_folder(s3):
    fs, bucket = s3
    for name in ["a.wav", ".hidden.wav", "notes.txt", "sub/b.wav", "out/old/source1.wav"]:
        fs.pipe(f"{bucket}/{name}", tone_bytes())
    flat = split(f"s3://{bucket}/", "-o", f"s3://{bucket}/out", "-k", "2", *FAST, "--json", "-q")
    assert [r["input"] for r in records(flat)] == [f"s3://{bucket}/a.wav"]
    deep = split(f"s3://{bucket}", "-r", "--skip-existing", "-o", f"s3://{bucket}/out", "-k", "2", *FAST, "--json", "-q")
    assert sorted(r["input"] for r in records(deep)) == [f"s3://{bucket}/a.wav", f"s3://{bucket}/sub/b.wav"]
    only = split(f"s3://{bucket}", "-r", "--glob", "b.*", "-o", f"s3://{bucket}/o2", "-k", "2", *FAST, "--json", "-q")
    assert [r["input"] for r in records(only)] == [f"s3://{bucket}/sub/b.wav"]


def test_an_empty_folder_url_and_a_missing_file_fail_with_their_reason(s3):
    fs, bucket = s3
    fs.pipe(f"{bucket}/empty/sub/x.wav", tone_bytes())
    result = split(f"s3://{bucket}/empty", f"s3://{bucket}/nothing.wav", "-o", f"s3://{bucket}/out", *FAST,
                   "--json", "-q")
    assert result.exit_code == 1
    assert [r["error"] for r in records(result)] == [
        f"s3://{bucket}/empty: no audio files in this folder (use -r to look in its subfolders)",
        f"s3://{bucket}/nothing.wav: no such file"]


def test_an_input_in_a_missing_bucket_names_the_bucket(s3):
    result = split("s3://no-such-bucket-in/a.wav", "-o", "out", *FAST, "--json", "-q")
    assert result.exit_code == 1
    assert records(result)[0]["error"] == "s3://no-such-bucket-in/a.wav: the bucket no-such-bucket-in does not exist"


def test_a_missing_bucket_is_refused_before_any_work(s3):
    fs, bucket = s3
    fs.pipe(f"{bucket}/a.wav", tone_bytes())
    result = split(f"s3://{bucket}/a.wav", "-o", "s3://no-such-bucket-here/out", *FAST)
    assert result.exit_code == 1
    assert result.stderr.strip() == ("nmfsep: error: s3://no-such-bucket-here/out: the bucket no-such-bucket-here "
                                     "does not exist (create it first)")


def test_credentials_in_a_url_are_refused_without_echoing_them():
    for args in (["s3://AKIAEXAMPLE:secretkey@bucket/a.wav", "-o", "out"], ["a.wav", "-o", "s3://AKIAEXAMPLE:secretkey@b/o"]):
        result = split(*args, *FAST, "--json")
        assert result.exit_code == 2
        assert result.stdout == "" and "secretkey" not in result.stderr and "AKIAEXAMPLE" not in result.stderr
        assert "a URL must not hold credentials" in result.stderr


def test_memory_urls_are_refused_with_parallel_jobs():
    result = split("memory://in/a.wav", "memory://in/b.wav", "-j", "2", "-o", "memory://out", *FAST)
    assert result.exit_code == 2
    assert "memory://" in result.stderr and "-j 1" in result.stderr


def test_an_unknown_protocol_is_one_line():
    result = split("nosuchproto://bucket/a.wav", "-o", "out", *FAST, "--json")
    assert result.exit_code == 1
    assert records(result)[0]["error"] == "nosuchproto://bucket/a.wav: Protocol not known: nosuchproto"


def test_urls_without_fsspec_say_what_to_install(tmp_path):
    code = ("import sys; sys.modules['fsspec'] = None; from nmfsep.cli import main; "
            "sys.argv = ['nmfsep', 'split', 's3://bucket/a.wav', '-o', 'out', '--json', '-q']; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == ("s3://bucket/a.wav: s3:// URLs need fsspec: "
                                                  "pip install 'nmfsep[dask]'")
    assert "Traceback" not in result.stderr


def test_url_helpers_tell_urls_from_paths():
    assert storage.is_url("s3://b/k.wav") and storage.is_url("file:///tmp/x.wav")
    assert not storage.is_url("/tmp/x.wav") and not storage.is_url("-") and not storage.is_url("C:\\x.wav")
    assert storage.protocol("S3://b") == "s3" and storage.protocol("x.wav") is None
    assert storage.join("s3://b/out/", "t/source1.wav") == "s3://b/out/t/source1.wav"
    assert storage.in_process_only("memory://x") and not storage.in_process_only("s3://x")


def test_a_subprocess_split_reads_and_writes_s3_with_credentials_from_the_environment(s3, s3_env, tmp_path):
    fs, bucket = s3
    fs.pipe(f"{bucket}/in/a.wav", tone_bytes())
    env = {**os.environ, **s3_env}
    result = subprocess.run([NMFSEP, "split", f"s3://{bucket}/in/a.wav", "-o", f"s3://{bucket}/out", "-k", "2",
                             *FAST], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"2 stems in s3://{bucket}/out/a/" in result.stderr
    assert fs.exists(f"{bucket}/out/a/source2.wav")


def test_no_credentials_is_one_line_that_says_where_they_go(s3_env, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=s3_env["AWS_ENDPOINT_URL"], AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    result = subprocess.run([NMFSEP, "split", "s3://somebucket/in/", "-o", "s3://somebucket/out", *FAST],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["nmfsep: error: s3://somebucket/out: no credentials (set AWS_ACCESS_KEY_ID "
                                          "and AWS_SECRET_ACCESS_KEY, or use ~/.aws/credentials; AWS_ENDPOINT_URL "
                                          "for another S3 server)"]


def test_a_url_input_can_go_to_stdout(s3, s3_env, tmp_path):
    fs, bucket = s3
    fs.pipe(f"{bucket}/a.wav", tone_bytes())
    result = subprocess.run([NMFSEP, "split", f"s3://{bucket}/a.wav", "-k", "2", *FAST, "--stdout", "source1"],
                            capture_output=True, env={**os.environ, **s3_env}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stem, rate = sf.read(__import__("io").BytesIO(result.stdout))
    assert rate == RATE and len(stem) == RATE // 2


@pytest.fixture(scope="module")
def s3_cluster(s3_env):
    """A Dask LocalCluster of one worker process started with the S3 environment (as workers
    elsewhere get their credentials from theirs), sharing no scratch with the client."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield local.scheduler_address


def test_workers_read_and_write_the_bucket_with_the_same_stems_as_a_local_split(s3, s3_cluster, tmp_path):
    fs, bucket = s3
    fs.pipe(f"{bucket}/in/a.wav", tone_bytes(0))
    fs.pipe(f"{bucket}/in/b.wav", tone_bytes(1))
    here = split(f"s3://{bucket}/in/", "-o", f"s3://{bucket}/here", "-k", "2", *FAST, "--json", "-q")
    there = split(f"s3://{bucket}/in/", "-o", f"s3://{bucket}/there", "-k", "2", *FAST, "--json", "-q",
                  "--scheduler", s3_cluster)
    assert there.exit_code == 0, there.output
    assert sorted(r["input"] for r in records(there)) == [f"s3://{bucket}/in/a.wav", f"s3://{bucket}/in/b.wav"]
    for record in records(there):
        for stem in record["stems"]:
            assert stem["path"].startswith(f"s3://{bucket}/there/")
            mine = read_s3(fs, stem["path"].replace("/there/", "/here/"))
            np.testing.assert_allclose(read_s3(fs, stem["path"]), mine, atol=1e-4)
    assert len(records(here)) == 2


def test_an_object_whose_name_is_longer_than_a_local_file_name_can_be_is_split(s3):
    fs, bucket = s3
    name = "y" * 300 + ".wav"
    fs.pipe(f"{bucket}/in/{name}", tone_bytes())
    result = split(f"s3://{bucket}/in/{name}", "-o", f"s3://{bucket}/out", "--filename", "{stem}.{ext}", "-k", "2",
                   *FAST, "--json", "-q")
    assert result.exit_code == 0, result.output
    assert records(result)[0]["input"] == f"s3://{bucket}/in/{name}"
    assert fs.exists(f"{bucket}/out/source1.wav")


def test_a_batch_of_url_inputs_has_its_models_trained_once_before_any_input(monkeypatch):
    from nmfsep import batch, supervised
    from nmfsep.pipeline import Settings

    trained = []
    monkeypatch.setattr(supervised, "training_needed", lambda settings: True)
    monkeypatch.setattr(supervised, "train_models", lambda settings, *a: trained.append(settings) or settings)
    settings = Settings()
    batch.train_models([batch.Job("s3://bucket/in/a.wav", "a")], settings)
    assert trained == [settings]  # URL inputs exist where os.path.exists cannot see them
