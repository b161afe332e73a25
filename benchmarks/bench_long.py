"""Long-input benchmark: an hour of 44.1 kHz stereo 16-bit audio through `nmfsep split -k 2`.

Builds the file from sample_audio/piano_bass (4 s, resampled to 44.1 kHz, repeated), runs the CLI
in a subprocess and prints: real-time factor, the subprocess's peak resident memory, SI-SDR
improvement on 2-minute windows at the start and at the end (and which stem matched which
source there), and the largest error of the stems' sum against the input.

    .venv/bin/python benchmarks/bench_long.py [--minutes 60] [--keep DIR]

Targets (issue 8): >= 20x real time on 2 cores, <= 1.5 GB peak RSS, start/end SI-SDRi within 1 dB
in the same order, stems summing to the input within the 16-bit format's precision.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from nmfsep.evaluate import best_permutation, si_sdr  # noqa: E402

RATE = 44100
WINDOW_SECONDS = 120


def material():
    """(mixture, [source1, source2]) of one 4 s piece at 44.1 kHz; the mixture is their sum,
    quantised to 16 bits as the file will hold it."""
    sources = []
    for name in ("piano_bass_src1", "piano_bass_src2"):
        samples, rate = sf.read(os.path.join(ROOT, "sample_audio", name + ".wav"), dtype="float64", always_2d=True)
        sources.append(resample_poly(samples, RATE // rate, 1, axis=0) if rate != RATE else samples)
    sources = [np.round(s * 0.45 * 32767) / 32767 for s in sources]  # headroom for the sum
    return sources[0] + sources[1], sources


def build(path, minutes):
    mixture, sources = material()
    repeats = int(np.ceil(minutes * 60 * RATE / len(mixture)))
    with sf.SoundFile(path, "w", RATE, 2, "PCM_16", format="WAV") as out:
        for _ in range(repeats):
            out.write(mixture)
    return len(mixture) * repeats, mixture, sources


def window(piece, start, length):
    """Samples [start, start + length) of ``piece`` repeated forever."""
    index = (start + np.arange(length)) % len(piece)
    return piece[index]


def scores(stems_paths, mixture_path, piece_sources, start, length):
    mix = sf.read(mixture_path, start=start, frames=length, dtype="float64")[0]
    estimates = np.stack([sf.read(p, start=start, frames=length, dtype="float64")[0] for p in stems_paths])
    references = np.stack([window(s, start, length) for s in piece_sources])
    order, values = best_permutation(references, estimates)
    baseline = np.array([si_sdr(r, mix) for r in references])
    return order, values - baseline


def sum_error(stems_paths, mixture_path, block=RATE * 60):
    worst = 0.0
    handles = [sf.SoundFile(p) for p in stems_paths]
    with sf.SoundFile(mixture_path) as mix:
        while True:
            m = mix.read(block, dtype="float64")
            if not len(m):
                break
            total = sum(h.read(block, dtype="float64") for h in handles)
            worst = max(worst, float(np.abs(total - m).max()))
    for h in handles:
        h.close()
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--keep", help="folder to build the file and stems in (kept)")
    args = parser.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="bench_long-")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "long.wav")
    n_samples, _, piece_sources = build(path, args.minutes)
    seconds = n_samples / RATE
    nmfsep = os.path.join(os.path.dirname(sys.executable), "nmfsep")
    started = time.perf_counter()
    done = subprocess.run([nmfsep, "split", path, "-k", "2", "-o", os.path.join(folder, "out"), "--force",
                           "--json", "-q"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    if done.returncode != 0:
        sys.exit(f"split failed ({done.returncode}): {done.stdout}{done.stderr}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    stems = [s["path"] for s in record["stems"]]
    length = min(WINDOW_SECONDS * RATE, n_samples)
    start_order, start_gain = scores(stems, path, piece_sources, 0, length)
    end_order, end_gain = scores(stems, path, piece_sources, n_samples - length, length)
    error = sum_error(stems, path)

    print(f"input            {seconds / 60:.1f} min, {RATE} Hz stereo PCM_16 ({os.path.getsize(path) / 2**20:.0f} MiB)")
    print(f"mode             {record['mode']}")
    print(f"wall time        {wall:.1f} s   ({seconds / wall:.1f}x real time; target >= 20x)")
    print(f"peak RSS         {peak_rss / 2**20:.0f} MiB (record: {record['peak_memory'] / 2**20:.0f} MiB; target <= 1536)")
    print(f"SI-SDRi start    {', '.join(f'{g:+.2f}' for g in start_gain)} dB  mean {start_gain.mean():+.2f}  "
          f"order {start_order}")
    print(f"SI-SDRi end      {', '.join(f'{g:+.2f}' for g in end_gain)} dB  mean {end_gain.mean():+.2f}  "
          f"order {end_order}")
    print(f"start - end      {start_gain.mean() - end_gain.mean():+.3f} dB (target within 1 dB); "
          f"same order: {start_order == end_order}")
    print(f"stems sum error  {error:.2e} (max abs; one 16-bit step is {2**-15:.2e})")
    if not args.keep:
        for p in stems + [path]:
            os.unlink(p)


if __name__ == "__main__":
    main()
