"""Worker threads for the solvers: frames (and bins) are independent, so work is split by rows.

numpy's element-wise ufuncs are single-threaded and OpenBLAS' threads synchronise on every small
product (and stall badly when another process holds a core), so the solvers run their own
threads instead, each calling BLAS single-threaded (via threadpoolctl) and numba kernels that
release the GIL.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Below this many matrix entries a factorization runs in the calling thread.
MIN_PARALLEL_SIZE = 200_000
# Rows per task when row-wise work is shared out: fixed, so that results do not depend on the
# number of threads, and small enough that a worker slowed by another process takes fewer tasks.
CHUNK_ROWS = 512


def n_threads():
    """Threads to use: as many as BLAS is allowed (so OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and
    a caller's threadpoolctl limits are respected), at most the CPUs this process may run on."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn / librosa
        return 1
    counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(min(counts, default=1), cpus or 1))


class Workers:
    """A pool of ``threads`` workers; BLAS is limited to one thread while it is open (also with
    a single worker: a multi-threaded BLAS on the solvers' small products loses badly as soon as
    another process holds a core)."""

    def __init__(self, threads):
        self.threads = max(1, int(threads))
        self.pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn / librosa
            self.limits = None
        else:
            self.limits = threadpool_limits(1, user_api="blas")

    @classmethod
    def for_size(cls, size, threads=None):
        threads = n_threads() if threads is None else threads
        return cls(threads if size >= MIN_PARALLEL_SIZE else 1)

    def map(self, function, items):
        items = list(items)
        if self.pool is None or len(items) < 2:
            return [function(item) for item in items]
        return list(self.pool.map(function, items))

    @staticmethod
    def chunks(n_rows):
        """Contiguous (start, stop) row ranges of CHUNK_ROWS rows, the tasks handed out."""
        return [(start, min(start + CHUNK_ROWS, n_rows)) for start in range(0, n_rows, CHUNK_ROWS)]

    def matmul_rows(self, A, B, out=None):
        """A @ B computed in row chunks of A shared out over the workers (A C-contiguous)."""
        if out is None:
            out = np.empty((A.shape[0], B.shape[1]), np.result_type(A, B))
        self.map(lambda span: np.dot(A[span[0]:span[1]], B, out=out[span[0]:span[1]]),
                 self.chunks(A.shape[0]))
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        if self.limits is not None:
            self.limits.restore_original_limits()
            self.limits = None
