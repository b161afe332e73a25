"""Cluster benchmark: files per minute of `nmfsep split DIR` with -j 1, -j 2, and --scheduler on a
Dask LocalCluster of 1 worker pinned to one core, 1 worker alone on the machine, and 2 workers (one
thread each, worker processes), on one folder, in one run.

Builds DIR from sample_audio's mixtures (piano_bass, voices, tones; resampled to 44.1 kHz stereo,
tiled with a different gain, channel balance and start for every repeat, so that no two files
are alike), then times each configuration as a whole CLI process (start-up included) writing to
its own output folder; the workers are warmed up first (four 5-s files, not timed), as a cluster
that runs for a batch of 10,000 files is. Prints files per minute, the ratio 2 workers / 1 worker
of one core (and 2 workers / 1 worker that takes both cores, -j 2 / -j 1), the largest stem
difference between the cluster and -j 1,
and the scheduler's overhead per task: cluster seconds per file minus local (-j 1) seconds per
file on tiny inputs (0.5 s each, --iter 5), where the separation itself costs next to nothing.

    .venv/bin/python benchmarks/bench_cluster.py [--files 4] [--minutes 3] [--tiny 8] [--keep DIR]

Target (issue 18): on a 2-core machine, 2 workers give at least 1.7x the files per minute of 1
worker on 3-minute files. Not part of `make test`.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NMFSEP = [sys.executable, "-m", "nmfsep.cli"]
RATE = 44100
PIECES = ("piano_bass_mix", "voices_mix", "tones_mix")


def piece(name):
    samples, rate = sf.read(os.path.join(ROOT, "sample_audio", name + ".wav"), dtype="float64", always_2d=True)
    samples = samples.mean(axis=1)
    return resample_poly(samples, RATE, rate) if rate != RATE else samples


def build(folder, n_files, minutes, seed=0):
    """n_files 44.1 kHz stereo 16-bit files of ``minutes`` each, in folder."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    pieces = [piece(name) for name in PIECES]
    n_samples = int(minutes * 60 * RATE)
    for i in range(n_files):
        out, at = np.zeros((n_samples, 2)), 0
        while at < n_samples:
            p = pieces[rng.integers(len(pieces))]
            p = p[rng.integers(len(p) // 2):]  # a different start every time
            n = min(len(p), n_samples - at)
            balance = rng.uniform(0.6, 1.0)
            out[at:at + n] = rng.uniform(0.4, 0.8) * p[:n, None] * [balance, 2 - balance] / 2
            at += n
        sf.write(os.path.join(folder, f"track{i:03d}.wav"), out, RATE, subtype="PCM_16")


def timed(args):
    started = time.perf_counter()
    result = subprocess.run([*NMFSEP, "split", *args, "-q"], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"failed: nmfsep split {' '.join(args)}\n{result.stderr}")
    return time.perf_counter() - started


def with_cluster(n_workers, run, warm_up=None, one_core_each=False):
    """run(scheduler address) on a LocalCluster of n_workers one-thread worker processes, after
    ``warm_up`` (a folder of short files split once first and not timed, so that the workers have
    imported nmfsep, librosa and the grouping model and loaded the compiled kernels, as a cluster
    that has been running has); one_core_each pins worker i
    to core i (what a worker of one core is on a real cluster)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        if one_core_each:
            with Client(local) as client:
                for i, address in enumerate(sorted(client.scheduler_info()["workers"])):
                    client.run(os.sched_setaffinity, 0, {i % os.cpu_count()}, workers=[address])
        if warm_up:
            timed([warm_up, "-o", tempfile.mkdtemp(prefix="warm_"), "--scheduler", local.scheduler_address])
        return run(local.scheduler_address)


def largest_difference(folder_a, folder_b):
    """The largest absolute sample difference between the stems of two output folders (same names)."""
    worst = 0.0
    for root, _, names in os.walk(folder_a):
        for name in names:
            a = sf.read(os.path.join(root, name), dtype="float64")[0]
            b = sf.read(os.path.join(folder_b, os.path.relpath(os.path.join(root, name), folder_a)), dtype="float64")[0]
            worst = max(worst, float(np.abs(a - b).max()))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--tiny", type=int, default=8, help="tiny files for the overhead per task")
    parser.add_argument("--keep", default=None, help="build the folders here and keep them")
    options = parser.parse_args()
    work = options.keep or tempfile.mkdtemp(prefix="bench_cluster_")
    folder, tiny = os.path.join(work, "in"), os.path.join(work, "tiny")
    build(folder, options.files, options.minutes)
    build(tiny, options.tiny, 0.5 / 60, seed=1)
    warm = os.path.join(work, "warm")  # 5-s files split with the default settings: every worker
    build(warm, 4, 5 / 60, seed=2)     # imports and loads all that a real file needs
    print(f"{options.files} files of {options.minutes:g} min (44.1 kHz stereo) in {folder}; "
          f"{os.cpu_count()} CPUs", flush=True)

    def out(name):
        return ["-o", os.path.join(work, "out-" + name), "--force"]

    def on_cluster(name, n, one_core_each=False):
        return with_cluster(n, lambda address: timed([folder, *out(name), "--scheduler", address]),
                            warm_up=warm, one_core_each=one_core_each)

    rows = [("-j 1", timed([folder, *out("j1"), "-j", "1"])),
            ("-j 2", timed([folder, *out("j2"), "-j", "2"])),
            ("1 worker, one core", on_cluster("dask1core", 1, one_core_each=True)),
            ("1 worker, whole machine", on_cluster("dask1", 1)),
            ("2 workers", on_cluster("dask2", 2))]
    print(f"{'run (workers warmed up)':<26}{'seconds':>10}{'files/min':>12}")
    per_minute = {}
    for name, seconds in rows:
        per_minute[name] = options.files / seconds * 60
        print(f"{name:<26}{seconds:>10.1f}{per_minute[name]:>12.2f}")
    print(f"2 workers / 1 worker of one core: {per_minute['2 workers'] / per_minute['1 worker, one core']:.2f}x "
          "(target >= 1.7x)")
    print(f"2 workers / 1 worker alone on the machine (its tasks take both cores): "
          f"{per_minute['2 workers'] / per_minute['1 worker, whole machine']:.2f}x; "
          f"-j 2 / -j 1: {per_minute['-j 2'] / per_minute['-j 1']:.2f}x")
    print(f"largest stem difference, 2 workers against -j 1: "
          f"{largest_difference(os.path.join(work, 'out-j1'), os.path.join(work, 'out-dask2')):.2e} (target <= 1e-4)")

    fast = ["--iter", "5", "--grouping", "none"]
    local = timed([tiny, *out("tiny-j1"), *fast]) / options.tiny
    remote = with_cluster(1, lambda address: timed([tiny, *out("tiny-dask"), *fast, "--scheduler", address]))
    remote /= options.tiny
    print(f"overhead per task ({options.tiny} files of 0.5 s, 1 worker): {remote - local:+.3f} s "
          f"({remote:.3f} s per file on the cluster, {local:.3f} s locally, -j 1)")
    if not options.keep:
        import shutil

        shutil.rmtree(work)


if __name__ == "__main__":
    main()
