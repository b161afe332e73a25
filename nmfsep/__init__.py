"""nmfsep: pull the sources out of a single recording with non-negative matrix factorization.

The public API is imported lazily so that ``nmfsep --help`` stays fast. The one-input pipeline
lives in ``nmfsep.pipeline`` (not ``nmfsep.separate``, which would shadow the function).
"""

__version__ = "0.1.0"

_EXPORTS = {
    "factorize": "nmfsep.nmf",
    "NMFResult": "nmfsep.nmf",
    "kmeans": "nmfsep.nmf",
    "deep_factorize": "nmfsep.nmf",
    "separate": "nmfsep.pipeline",
    "NmfsepError": "nmfsep.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nmfsep' has no attribute {name!r}")
