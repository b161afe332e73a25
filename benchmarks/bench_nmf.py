"""Speed of nmfsep's NMF core against scikit-learn on a 2-minute music-like spectrogram.

    python benchmarks/bench_nmf.py [--iter 200] [--seconds 120] [--k 32]

Builds the spectrogram here (no files needed): two minutes at 22.05 kHz of random harmonic notes
(several voices, each note with its own harmonics and envelope), percussive noise bursts and a
little background noise; STFT with n_fft 2048, hop 512, Hann window -> |X| (1025 x ~5170),
normalised to mean 1, float32, rank k = 32. Both libraries start from the same NNDSVDa factors.

Prints one table, all from this run (absolute times depend on the machine and its BLAS kernel,
so read the ratios):
  * KL (beta = 1) multiplicative updates: seconds per iteration of each over ``--iter``
    iterations (run in ``--rounds`` alternating rounds, each continuing from its own factors, so
    that load from other processes falls on both alike), their ratio, the fraction of this
    machine's float32 GEMM peak (measured here with a 2048 x 2048 product) each reaches counting
    8 m n k flops per iteration, and the KL loss after the iterations (computed the same way, in
    float64, for both). A "floor" row times the four matrix products of nmfsep's iteration alone
    (same blocks and threads, no element-wise work): scikit-learn's time over it bounds what any
    exact alternating MU with 8 m n k flops per iteration could gain on this machine; the next
    row says what GEMM rate a 4x faster iteration would need.
  * beta = 2: scikit-learn's MU for ``--iter`` iterations sets a target loss; the time nmfsep's
    default solver (accelerated HALS) needs to reach it, and the ratio. GEMM fraction counts
    4 m n k flops per iteration for both (the inner HALS sweeps are not counted). scikit-learn is
    timed before and after nmfsep, and the two times averaged. On CPUs where float32 subnormals
    are slow, scikit-learn's Euclidean MU slows down several-fold after ~50 iterations on this
    input, as entries of W and H decay into subnormals (it zeroes tiny entries only for
    beta <= 1; nmfsep flushes them for every beta). The time scikit-learn's own coordinate
    descent ("cd", its HALS, in chunks of 5 iterations) needs to reach the same loss is printed
    as well.

Every timed run, of either library, starts after a short idle pause (``SETTLE``), so that neither
pays for the other's spinning BLAS threads.

The BLAS row says which OpenBLAS kernel ran. Where OPENBLAS_CORETYPE is set (some machines set it
to work around older OpenBLAS builds), numpy runs that kernel rather than the CPU's own; unset it
and OPENBLAS_L2_SIZE for this command alone to measure the CPU's own:
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_nmf.py``.
"""

import argparse
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmfsep.nmf import beta_divergence, factorize  # noqa: E402
from nmfsep.nmf.init import initialize  # noqa: E402


def music_spectrogram(seconds=120.0, rate=22050, n_fft=2048, hop=512, seed=0):
    """|STFT| of a synthetic piece: harmonic notes in 4 voices, drum-like noise bursts, noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    signal = np.zeros(n, np.float64)
    t_note = np.arange(int(1.5 * rate)) / rate
    for voice in range(4):
        low = 36 + 12 * voice
        brightness = rng.uniform(0.5, 1.5)
        start = 0.0
        while start < seconds - 0.1:
            length = rng.choice([0.25, 0.5, 0.75, 1.0, 1.5])
            pitch = 440.0 * 2 ** ((rng.integers(low, low + 19) - 69) / 12)
            m = min(int(length * rate), n - int(start * rate))
            t = t_note[:m]
            envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t * rng.uniform(1.0, 4.0))
            note = np.zeros(m)
            for h in range(1, 16):
                if h * pitch > rate / 2:
                    break
                note += h ** -brightness * np.sin(2 * np.pi * h * pitch * t + rng.uniform(0, 6.3))
            begin = int(start * rate)
            signal[begin:begin + m] += rng.uniform(0.3, 1.0) * envelope * note
            start += length
    beat = int(0.5 * rate)
    for begin in range(0, n - beat, beat):
        m = int(0.12 * rate)
        burst = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.02 * rate))
        signal[begin:begin + m] += 0.8 * np.convolve(burst, [1, -0.5], "same")
    signal += 0.003 * rng.standard_normal(n)

    window = np.hanning(n_fft + 1)[:-1]
    padded = np.pad(signal, n_fft // 2, mode="reflect")
    n_frames = 1 + (len(padded) - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(
        padded, (n_frames, n_fft), (padded.strides[0] * hop, padded.strides[0]))
    magnitude = np.abs(np.fft.rfft(frames * window, axis=1)).T   # (1025, n_frames)
    magnitude /= magnitude.mean()
    return np.ascontiguousarray(magnitude, dtype=np.float32)


def gemm_peak(size=2048, repeats=5):
    """float32 GEMM flops per second of this machine's BLAS (best of a few runs)."""
    rng = np.random.default_rng(0)
    A = rng.random((size, size), dtype=np.float32)
    B = rng.random((size, size), dtype=np.float32)
    A @ B
    best = min(_timed(lambda: A @ B)[0] for _ in range(repeats))
    return 2.0 * size ** 3 / best


def blas_kernel():
    """numpy's BLAS as threadpoolctl reports it: library, version, kernel, threads."""
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info["user_api"] == "blas" and "numpy" in info["filepath"]:
            kernel = info.get("architecture") or "?"
            return (f"{info['internal_api']} {info['version']}, {kernel} kernel, "
                    f"{info['num_threads']} threads")
    return "unknown"


def machine_busy_jiffies():
    """(busy jiffies of the whole machine, CPU seconds of this process), or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:8]]
    except OSError:
        return None
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return sum(fields) - fields[3], usage.ru_utime + usage.ru_stime


# Idle seconds before each timed run: OpenBLAS' worker threads keep spinning for ~0.1 s after a
# multi-threaded product (scikit-learn's), and a solver started at once shares the cores with them
# (nmfsep's KL iteration measured 9.3 -> 11.3 ms that way); every run, of either library, waits.
SETTLE = 0.2


def _timed(function):
    time.sleep(SETTLE)
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def sklearn_nmf(V, W0, H0, beta_loss, n_iter):
    from sklearn.decomposition import NMF

    model = NMF(W0.shape[1], init="custom", solver="mu", beta_loss=beta_loss, max_iter=n_iter,
                tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds, W = _timed(lambda: model.fit_transform(V, W=W0.copy(), H=H0.copy()))
    return seconds, W, model.components_


def products_only_seconds(V, W, H, n_iter):
    """Seconds per iteration of the four matrix products one KL MU iteration does (8 m n k flops),
    in nmfsep's own frame blocks and threads, with no element-wise work at all: a floor for any
    exact alternating MU iteration on this machine."""
    from nmfsep.nmf import mu
    from nmfsep.nmf._parallel import Workers

    Vt, Ht, W = np.ascontiguousarray(V.T), np.ascontiguousarray(H.T), np.ascontiguousarray(W)
    Wt = np.ascontiguousarray(W.T)
    (n, m), k = Vt.shape, W.shape[1]
    blocks = mu.frame_blocks(n)
    num = np.empty((len(blocks), m, k), np.float32)
    local = threading.local()

    def block(index):
        start, stop = blocks[index]
        Hb = Ht[start:stop]
        if not hasattr(local, "X"):                   # per-thread buffers, as the solver's
            local.X, local.N = np.empty((mu.BLOCK, m), np.float32), np.empty((mu.BLOCK, k), np.float32)
        X, N = local.X[:stop - start], local.N[:stop - start]
        np.dot(Hb, Wt, out=X)
        np.dot(X, W, out=N)
        np.dot(Hb, Wt, out=X)
        np.dot(X.T, Hb, out=num[index])

    with Workers.for_size(V.size) as workers:
        workers.map(block, range(len(blocks)))
        seconds, _ = _timed(lambda: [workers.map(block, range(len(blocks))) for _ in range(n_iter)])
    return seconds / n_iter


def sklearn_cd_time_to(V, W0, H0, target, limit, chunk=5):
    """Seconds and iterations scikit-learn's coordinate descent ("cd", its HALS) needs to reach a
    beta = 2 loss, run in chunks of ``chunk`` iterations that continue from their factors; after
    ``limit`` iterations without reaching it: (seconds, None, the loss it got to)."""
    from sklearn.decomposition import NMF

    W, H, seconds, done = W0, H0, 0.0, 0
    while done < limit:
        model = NMF(W0.shape[1], init="custom", solver="cd", beta_loss="frobenius",
                    max_iter=chunk, tol=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            elapsed, W = _timed(lambda: model.fit_transform(V, W=W.copy(), H=H.copy()))
        H = model.components_
        seconds += elapsed
        done += chunk
        loss = beta_divergence(V, W, H, 2)
        if loss <= target:
            return seconds, done, loss
    return seconds, None, loss


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iter", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10,
                        help="alternate the two KL runs in this many rounds")
    parser.add_argument("--single-core", type=int, default=0, metavar="N",
                        help="also time N KL iterations, and the beta=2 race, with one thread "
                             "each (BLAS and nmfsep's workers): ratios that another busy "
                             "process disturbs less")
    args = parser.parse_args(argv)

    before = machine_busy_jiffies()
    started = time.perf_counter()
    V = music_spectrogram(args.seconds)
    m, n = V.shape
    k, n_iter = args.k, args.iter
    W0, H0 = (F.astype(np.float32) for F in initialize(V, k, "nndsvda", np.random.default_rng(0)))
    for beta in (1, 2):                                   # load the compiled kernels (KL MU,
        factorize(V[:, :600], 4, beta=beta, max_iter=2)   # HALS): not part of the timings
    peak = gemm_peak()

    # KL multiplicative updates, the same number of iterations for both, run in alternating
    # rounds (each continuing from its own factors) so that a change in the machine's load
    # during the run falls on both
    sk_seconds = seconds = 0.0
    W_sk, H_sk, W_ours, H_ours = W0, H0, W0, H0
    done = 0
    for chunk in np.diff(np.linspace(0, n_iter, args.rounds + 1).astype(int)):
        elapsed, W_sk, H_sk = sklearn_nmf(V, W_sk, H_sk, "kullback-leibler", int(chunk))
        sk_seconds += elapsed
        elapsed, ours = _timed(lambda: factorize(V, k, beta=1, solver="mu", init="custom",
                                                 W=W_ours, H=H_ours, max_iter=int(chunk), tol=0,
                                                 normalize_W=False))
        seconds += elapsed
        W_ours, H_ours = ours.W, ours.H
        done += ours.n_iter
    kl_flops = 8.0 * m * n * k
    sk_kl_loss = beta_divergence(V, W_sk, H_sk, 1)
    our_kl_loss = beta_divergence(V, W_ours, H_ours, 1)
    sk_it, our_it = sk_seconds / n_iter, seconds / done
    floor_it = products_only_seconds(V, W_ours, H_ours, 20)

    # beta = 2: time to reach scikit-learn's MU loss after n_iter iterations; scikit-learn is
    # timed before and after nmfsep and the two times averaged
    first, W2, H2 = sklearn_nmf(V, W0, H0, "frobenius", n_iter)
    target = beta_divergence(V, W2, H2, 2)
    reached = []

    def stop_at_target(iteration, loss):
        if loss <= target:
            reached.append(iteration)
            return True
        return False

    seconds2, ours2 = _timed(lambda: factorize(V, k, beta=2, init="custom", W=W0, H=H0,
                                               max_iter=5 * n_iter, tol=0,
                                               callback=stop_at_target))
    sk2_seconds = 0.5 * (first + sklearn_nmf(V, W0, H0, "frobenius", n_iter)[0])
    cd_seconds, cd_iter, cd_loss = sklearn_cd_time_to(V, W0, H0, target, limit=n_iter)
    our_loss2 = beta_divergence(V, ours2.W, ours2.H, 2)
    eu_flops = 4.0 * m * n * k

    rows = [
        ("spectrogram", f"{m} x {n}, k = {k}, float32", ""),
        ("float32 GEMM peak (2048^3)", f"{peak / 1e9:.1f} GFLOP/s", ""),
        ("numpy's BLAS", blas_kernel(), ""),
        ("", "scikit-learn", "nmfsep", "nmfsep / sklearn"),
        ("KL MU seconds / iteration", f"{sk_it:.4f}", f"{our_it:.4f}",
         f"{our_it / sk_it:.3f}  ({sk_it / our_it:.1f}x faster)"),
        ("KL MU fraction of GEMM peak", f"{kl_flops / sk_it / peak:.1%}",
         f"{kl_flops / our_it / peak:.1%}", ""),
        ("  floor: its 4 products alone, no element-wise", "", f"{floor_it:.4f}",
         f"sklearn / floor = {sk_it / floor_it:.1f}x"),
        ("  4x faster than sklearn needs", "", f"{4 * kl_flops / sk_it / 1e9:.0f} GFLOP/s",
         f"{4 * kl_flops / sk_it / peak:.0%} of the GEMM peak"),
        (f"KL loss after {n_iter} iterations", f"{sk_kl_loss:.6g}", f"{our_kl_loss:.6g}",
         f"{our_kl_loss / sk_kl_loss:.6f}"),
        (f"beta=2 time to sklearn MU's {n_iter}-iter loss", f"{sk2_seconds:.3f} s",
         f"{seconds2:.3f} s", f"{seconds2 / sk2_seconds:.3f}"),
        ("beta=2 iterations to that loss", f"{n_iter} (MU)",
         f"{reached[0] if reached else 'not reached'} (HALS)", ""),
        ("  same loss, scikit-learn's own HALS ('cd')",
         f"{cd_seconds:.3f} s" if cd_iter else f"not reached: {cd_loss:.6g} after {n_iter} it.",
         f"{seconds2:.3f} s",
         f"{seconds2 / cd_seconds:.3f}  (cd: {cd_iter} iterations)" if cd_iter else ""),
        ("beta=2 loss reached", f"{target:.6g}", f"{our_loss2:.6g}",
         f"{our_loss2 / target:.6f}"),
        ("beta=2 fraction of GEMM peak (4mnk/iter)",
         f"{eu_flops * n_iter / sk2_seconds / peak:.1%}",
         f"{eu_flops * ours2.n_iter / seconds2 / peak:.1%}", ""),
    ]
    if args.single_core:
        from threadpoolctl import threadpool_limits

        from nmfsep.nmf import _parallel

        N = args.single_core
        threads, _parallel.n_threads = _parallel.n_threads, lambda: 1
        try:
            with threadpool_limits(1):
                sk1 = ours1 = 0.0
                W_a, H_a, W_b, H_b = W0, H0, W0, H0
                for chunk in np.diff(np.linspace(0, N, min(N, 4) + 1).astype(int)):
                    elapsed, W_a, H_a = sklearn_nmf(V, W_a, H_a, "kullback-leibler", int(chunk))
                    sk1 += elapsed / N
                    elapsed, run = _timed(lambda: factorize(
                        V, k, beta=1, solver="mu", init="custom", W=W_b, H=H_b,
                        max_iter=int(chunk), tol=0, normalize_W=False))
                    ours1 += elapsed / N
                    W_b, H_b = run.W, run.H
                sk2_1 = sklearn_nmf(V, W0, H0, "frobenius", n_iter)[0]
                ours2_1 = _timed(lambda: factorize(V, k, beta=2, init="custom", W=W0, H=H0,
                                                   max_iter=5 * n_iter, tol=0,
                                                   callback=stop_at_target))[0]
        finally:
            _parallel.n_threads = threads
        rows.append((f"KL MU s/iter, one thread each ({N} iter)", f"{sk1:.4f}", f"{ours1:.4f}",
                     f"{ours1 / sk1:.3f}  ({sk1 / ours1:.1f}x faster)"))
        rows.append(("beta=2 time to that loss, one thread each", f"{sk2_1:.3f} s",
                     f"{ours2_1:.3f} s", f"{ours2_1 / sk2_1:.3f}"))
    after = machine_busy_jiffies()
    if before and after:
        import os

        cpus = os.cpu_count() or 1
        ticks = os.sysconf("SC_CLK_TCK")
        wall = time.perf_counter() - started
        others = (after[0] - before[0]) / ticks - (after[1] - before[1])
        rows.append(("other processes' CPU during the run",
                     f"{max(others, 0) / (wall * cpus):.0%} of {cpus} CPUs", ""))
    width = max(len(row[0]) for row in rows)
    for row in rows:
        print(row[0].ljust(width), *(cell.ljust(14) for cell in row[1:]), sep="  ")


if __name__ == "__main__":
    main()
