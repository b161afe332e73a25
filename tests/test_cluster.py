"""split --scheduler: the same batch as tasks on a Dask cluster (two worker processes here)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

distributed = pytest.importorskip("distributed")

from nmfsep import batch, cluster, model  # noqa: E402
from nmfsep.cli import cli  # noqa: E402
from nmfsep.pipeline import Settings  # noqa: E402

RATE = 22050
FAST = ["--iter", "5", "--grouping", "none"]


@pytest.fixture(scope="module")
def dask_cluster():
    """(cluster, client): two worker processes of one thread each."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        with Client(local) as client:
            yield local, client


@pytest.fixture(scope="module")
def strict_cluster():
    """(cluster, client) whose scheduler fails a task at the first death of its worker
    (distributed.scheduler.allowed-failures 0): retrying is left to the client."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
            with Client(local) as client:
                yield local, client


@pytest.fixture(params=["dask_cluster", "strict_cluster"])
def any_cluster(request):
    """Each kind: the default allowed-failures (3), and 0."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def address(dask_cluster):
    return dask_cluster[0].scheduler_address


def tone(path, seconds=1.0, seed=0, channels=1):
    """Two tones and a little noise, written to path (PCM_16)."""
    t = np.arange(int(seconds * RATE)) / RATE
    mix = 0.3 * np.sin(2 * np.pi * (220 + 20 * seed) * t) + 0.2 * np.sin(2 * np.pi * 1760 * t)
    mix += 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    data = np.stack([mix * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    sf.write(path, data, RATE, subtype="PCM_16")
    return str(path)


def split(*args, env=None):
    return CliRunner(env=env).invoke(cli, ["split", *map(str, args)], catch_exceptions=False)


def records(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(root, f), folder)
                  for root, _, names in os.walk(folder) for f in names)


def comparable(record, folder):
    """A record without its timings, its stems' paths below their output folder."""
    stems = [{**s, "path": os.path.relpath(s["path"], folder)} for s in record["stems"]]
    return {**{k: v for k, v in record.items() if k not in ("seconds", "peak_memory")}, "stems": stems}


def test_stems_on_the_cluster_equal_a_local_runs_and_so_do_the_records(address, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them
    inputs = [tone(f"in/{name}.wav", seed=seed, channels=1 + seed % 2) for seed, name in enumerate("abc")]
    local = split(*inputs, "-o", "local", "--json", "-q")
    remote = split(*inputs, "-o", "remote", "--json", "-q", "--scheduler", address)
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    assert files_under("local") == files_under("remote") and files_under("local")
    for name in files_under("local"):
        np.testing.assert_allclose(sf.read(f"remote/{name}")[0], sf.read(f"local/{name}")[0], atol=1e-4)
    by_input = {r["input"]: r for r in records(remote)}
    assert sorted(by_input) == sorted(inputs)
    for record in records(local):
        assert comparable(by_input[record["input"]], "remote") == comparable(record, "local")
        assert all(s["path"].startswith("remote/") for s in by_input[record["input"]]["stems"])


def test_a_corrupt_input_fails_alone_and_the_others_are_written(address, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = [tone(f"in/{name}.wav", seed=i) for i, name in enumerate("ac")]
    with open("in/b.wav", "wb") as bad:
        bad.write(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    result = split(good[0], "in/b.wav", good[1], "-o", "out", *FAST, "--json", "--scheduler", address)
    assert result.exit_code == 1
    status = {r["input"]: r["status"] for r in records(result)}
    assert status == {"in/a.wav": "ok", "in/b.wav": "error", "in/c.wav": "ok"}
    assert [line for line in result.stderr.splitlines() if line.startswith("nmfsep: error:")] == [
        f"nmfsep: error: {r['error']}" for r in records(result) if r["status"] == "error"]
    assert [r["error"] for r in records(result) if r["error"]][0].startswith("in/b.wav: ")
    assert files_under("out") == ["a/source1.wav", "a/source2.wav", "c/source1.wav", "c/source2.wav"]


def test_skip_existing_resumes_a_batch(address, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inputs = [tone(f"in/{name}.wav", seed=i) for i, name in enumerate("ab")]
    first = split(inputs[0], "-o", "out", *FAST, "-q", "--scheduler", address)
    assert first.exit_code == 0, first.output
    before = os.path.getmtime("out/a/source1.wav")
    again = split(*inputs, "-o", "out", *FAST, "--json", "-q", "--skip-existing", "--scheduler", address)
    assert again.exit_code == 0, again.output
    assert {r["input"]: r["status"] for r in records(again)} == {"in/a.wav": "skipped", "in/b.wav": "ok"}
    assert os.path.getmtime("out/a/source1.wav") == before
    assert files_under("out") == ["a/source1.wav", "a/source2.wav", "b/source1.wav", "b/source2.wav"]


def test_an_existing_stem_is_refused_without_force_as_a_local_run_refuses_it(address, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tone("in/a.wav")
    assert split(path, "-o", "out", *FAST, "-q").exit_code == 0
    local = split(path, "-o", "out", *FAST, "--json", "-q")
    remote = split(path, "-o", "out", *FAST, "--json", "-q", "--scheduler", address)
    assert local.exit_code == remote.exit_code == 1
    assert records(remote)[0]["error"] == records(local)[0]["error"] == (
        "in/a.wav: out/a/source1.wav already exists (use --force to overwrite)")
    forced = split(path, "-o", "out", *FAST, "--json", "-q", "--force", "--scheduler", address)
    assert forced.exit_code == 0 and records(forced)[0]["status"] == "ok"


def test_a_supervised_split_trains_once_on_the_client_and_not_on_the_workers(dask_cluster, tmp_path, monkeypatch):
    from nmfsep import discriminative, synth
    from nmfsep.supervised import learn

    local, client = dask_cluster
    _, training = synth.mixture(2, sample_rate=RATE, duration=2.0, seed=7)
    models = tuple(learn(t, RATE, 6, name=n) for t, n in zip(training, ("low", "mid")))
    here = []
    real = discriminative.train
    monkeypatch.setattr(discriminative, "train", lambda *a, **k: here.append(1) or real(*a[:5], 5, *a[6:], **k))

    def refuse_training(log):  # on every worker: a training there is written down
        from nmfsep import discriminative as worker_side

        def train(*args, **kwargs):
            with open(log, "a") as file:
                file.write("trained on a worker\n")
            raise RuntimeError("a worker trained")

        worker_side.real_train = getattr(worker_side, "real_train", worker_side.train)
        worker_side.train = train

    def restore():
        from nmfsep import discriminative as worker_side

        worker_side.train = getattr(worker_side, "real_train", worker_side.train)

    log = tmp_path / "worker-trainings.log"
    client.run(refuse_training, str(log))
    try:
        inputs = [tone(tmp_path / f"{n}.wav", seed=i) for i, n in enumerate("abc")]
        settings = Settings(2, max_iter=10, models=models)
        jobs = batch.find_inputs(inputs)
        results = list(cluster.run(jobs, settings, batch.Output(str(tmp_path / "out")), local.scheduler_address))
    finally:
        client.run(restore)
    assert [r["status"] for r in results] == ["ok"] * 3, [r["error"] for r in results]
    assert len(here) == 1 and not log.exists()


class Killer:
    """A listener that SIGKILLs the worker process running the victim input at its first
    ``times`` starts (the worker's pid from client.run, its tasks from client.processing)."""

    def __init__(self, client, victim, times):
        self.client, self.victim, self.times, self.starts = client, victim, times, 0

    def started(self, job):
        if job.input != self.victim:
            return
        self.starts += 1
        if self.starts > self.times:
            return
        pids = self.client.run(os.getpid)
        for worker, keys in self.client.processing().items():
            if any(str(key).endswith(f"-{0}-0") or str(key).endswith(f"-{0}-1") for key in keys):
                os.kill(pids[worker], signal.SIGKILL)

    def progress(self, job, done, total):
        pass


def run_killing(dask_cluster, tmp_path, times):
    local, client = dask_cluster
    # the victim (index 0) takes seconds, so that it is still running when its start is seen
    inputs = [tone(tmp_path / "victim.wav", seconds=20.0), tone(tmp_path / "b.wav", seed=1)]
    settings = Settings(2, max_iter=300, tol=0.0, grouping="none")
    killer = Killer(client, inputs[0], times)
    results = {r["input"]: r for r in cluster.run(batch.find_inputs(inputs), settings,
                                                  batch.Output(str(tmp_path / "out")), local.scheduler_address,
                                                  killer)}
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker for the next test
    return inputs, results, killer


def test_a_worker_killed_mid_input_gets_the_input_retried(any_cluster, tmp_path):
    inputs, results, killer = run_killing(any_cluster, tmp_path, times=1)
    assert killer.starts == 2
    assert [results[p]["status"] for p in inputs] == ["ok", "ok"], results[inputs[0]]["error"]
    assert all(os.path.exists(s["path"]) for r in results.values() for s in r["stems"])


def test_an_input_whose_worker_is_killed_twice_is_an_error_and_the_others_are_done(any_cluster, tmp_path):
    inputs, results, killer = run_killing(any_cluster, tmp_path, times=2)
    assert killer.starts == 2
    assert results[inputs[0]]["status"] == "error"
    assert results[inputs[0]]["error"] == (f"{inputs[0]}: the worker process died twice while separating it "
                                           "(out of memory, or killed)")
    assert results[inputs[1]]["status"] == "ok"
    assert files_under(tmp_path / "out") == ["b/source1.wav", "b/source2.wav"]


def test_ctrl_c_stops_the_tasks_and_leaves_no_stem_or_temporary_file(dask_cluster, address, tmp_path):
    client = dask_cluster[1]
    # inputs of several seconds of work each
    inputs = [tone(tmp_path / f"{n}.wav", seconds=120.0, seed=i) for i, n in enumerate("abc")]
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "nmfsep.cli", "split", *inputs, "-o", str(out), "--iter", "300",
                            "--tol", "0", "--grouping", "none", "--scheduler", address],
                           stderr=subprocess.PIPE, text=True)

    def executing():
        return sum(client.run(lambda dask_worker: len(dask_worker.state.executing)).values())

    deadline = time.monotonic() + 60
    while executing() < 2 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert executing() == 2, run.stderr.read()
    time.sleep(1.0)  # mid-work
    run.send_signal(signal.SIGINT)
    code = run.wait(timeout=60)
    assert code == 130
    assert run.stderr.read().endswith("nmfsep: interrupted\n")
    deadline = time.monotonic() + 3  # the running tasks stop (they would run on for seconds)
    while executing() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert executing() == 0
    assert not out.exists() or files_under(out) == []


def test_the_scheduler_comes_from_dask_scheduler_address(address, tmp_path):
    path = tone(tmp_path / "a.wav")
    result = split(path, "-o", tmp_path / "out", *FAST, "--json", env={"DASK_SCHEDULER_ADDRESS": address})
    assert result.exit_code == 0, result.output
    assert f"splitting on the Dask scheduler {address} (2 workers, 2 threads)" in result.stderr
    assert records(result)[0]["status"] == "ok"


def test_an_unreachable_scheduler_is_one_line_and_exit_1(tmp_path):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "nmfsep.cli", "split", tone(tmp_path / "a.wav"),
                             "-o", str(tmp_path / "out"), "--scheduler", f"tcp://127.0.0.1:{port}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"nmfsep: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port} (")
    assert time.monotonic() - started < 20
    assert not (tmp_path / "out").exists()


def test_without_dask_the_scheduler_option_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['distributed'] = None; sys.modules['dask'] = None\n"
            "from nmfsep.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code, "split", tone(tmp_path / "a.wav"), "-o",
                             str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:8786"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "--scheduler needs the dask extra: pip install 'nmfsep[dask]'" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["-j", "2"], "-j and --scheduler"),
    (["--stdout", "source1"], "--stdout and --scheduler"),
    (["-"], "- (stdin) and --scheduler"),
    (["-o", "memory://out"], "memory:// lives in this process"),
])
def test_options_that_need_this_machine_are_usage_errors_with_a_scheduler(tmp_path, args, message):
    result = split(tone(tmp_path / "a.wav"), *args, "--scheduler", "tcp://127.0.0.1:8786")
    assert result.exit_code == 2
    assert message in result.stderr


def test_an_input_started_again_keeps_one_progress_bar_from_zero():
    import io

    from rich.console import Console

    from nmfsep.cli import BatchProgress

    console = Console(file=io.StringIO(), force_terminal=True)
    job = batch.Job("a.wav", "a")
    with BatchProgress(console, 2, True) as bars:
        bars.started(job)
        bars.progress(job, 5, 10)
        bars.started(job)  # a retry, after its worker died
        shown = [task for task in bars.bars.tasks if task.description == "a.wav"]
        assert len(shown) == 1 and shown[0].completed == 0 and shown[0].total is None
        bars.finished("a.wav")
        assert [task.description for task in bars.bars.tasks] == ["all inputs"]


def test_the_scheduler_can_be_given_as_a_scheduler_file(dask_cluster, tmp_path):
    client = dask_cluster[1]
    client.write_scheduler_file(str(tmp_path / "scheduler.json"))  # as dask-jobqueue and dask-mpi do
    result = split(tone(tmp_path / "a.wav"), "-o", tmp_path / "out", *FAST, "--json",
                   "--scheduler", tmp_path / "scheduler.json")
    assert result.exit_code == 0, result.output
    assert f"splitting on the Dask scheduler {dask_cluster[0].scheduler_address} (2 workers" in result.stderr
    assert records(result)[0]["status"] == "ok"


def test_a_hosts_cores_are_shared_out_among_the_tasks_that_run_there_at_once(monkeypatch):
    from types import SimpleNamespace

    from nmfsep import batch, cluster

    import dask.system

    monkeypatch.setattr(dask.system, "cpu_count", lambda: 8)
    plugin = cluster._Settings(None, {"10.0.0.5": 2, "10.0.0.6": 1})

    def worker(host, nthreads):
        return SimpleNamespace(address=f"tcp://{host}:4000", state=SimpleNamespace(nthreads=nthreads))

    assert plugin.threads(worker("10.0.0.5", 1)) == 4   # two one-thread workers on 8 cores
    assert plugin.threads(worker("10.0.0.5", 2)) == 2
    assert plugin.threads(worker("10.0.0.6", 1)) == 8   # alone on its host
    assert plugin.threads(worker("10.0.0.9", 16)) == 1  # a host that joined later, more threads than cores


def test_an_empty_scheduler_splits_here_even_with_dask_scheduler_address_set(tmp_path):
    env = {**os.environ, "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-m", "nmfsep.cli", "split", tone(tmp_path / "a.wav"), "-o",
                             str(tmp_path / "out"), *FAST, "--scheduler", ""], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Dask" not in result.stderr and (tmp_path / "out" / "a" / "source1.wav").exists()


def test_dask_scheduler_address_without_the_extra_is_a_note_and_splits_here(tmp_path):
    code = ("import sys; sys.modules['distributed'] = None; from nmfsep.cli import main; "
            "sys.argv = ['nmfsep', *sys.argv[1:]]; main()")
    env = {**os.environ, "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-c", code, "split", tone(tmp_path / "a.wav"), "-o",
                             str(tmp_path / "out"), *FAST], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("nmfsep: note: DASK_SCHEDULER_ADDRESS is set, but the dask extra is not "
                                    "installed (pip install 'nmfsep[dask]'): splitting on this machine")
    assert (tmp_path / "out" / "a" / "source1.wav").exists()


@pytest.mark.parametrize("address, reason", [
    ("garbage", "no port number in 'garbage'"),
    ("tcp://127.0.0.1:", "no port number in 'tcp://127.0.0.1:'"),
    ("http://127.0.0.1:8786", "http:// is not a Dask protocol"),
    ("nosuch.json", "no such scheduler file"),
])
def test_an_address_that_cannot_be_a_schedulers_is_one_line_at_once(tmp_path, address, reason):
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "nmfsep.cli", "split", tone(tmp_path / "a.wav"), "-o",
                             str(tmp_path / "out"), *FAST, "--scheduler", address], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith(f"nmfsep: error: cannot reach the Dask scheduler at {address} ({reason}")
    assert len(result.stderr.splitlines()) == 1, result.stderr  # no "Exception ignored in Client.__del__"
    assert time.monotonic() - started < 8


def test_a_port_where_no_scheduler_answers_is_one_line_within_the_timeout(tmp_path, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts, never answers: a dashboard's or another service's port
    try:
        started = time.monotonic()
        with pytest.raises(cluster.NmfsepError, match="no Dask scheduler answered within 2 s"):
            cluster.connect(f"tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=2)
        assert time.monotonic() - started < 6
    finally:
        listener.close()
