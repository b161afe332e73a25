"""nmfsep: pull the sources out of a single recording with non-negative matrix factorization.

The public API:

- ``separate(samples, sample_rate, k=2, ...)``: split a recording into stems that add back up
  to it (blind, or supervised with ``models``); see ``nmfsep.pipeline.separate``.
- ``learn(recordings, sample_rate, n_bases=128, ...)``: learn the bases of one source from clean
  recordings of it (a ``Model``; ``nmfsep.model.save`` / ``load`` keep it in a ``.npz`` file); see
  ``nmfsep.supervised.learn``.
- ``factorize(V, k, ...)``: the NMF core, V (n_bins, n_frames) ~ W (n_bins, k) H (k, n_frames),
  returning an ``NMFResult``; ``kmeans`` and ``deep_factorize`` are its relatives.
- ``models``: the built-in models (speech, noise, ...): ``nmfsep.models.load("speech")``,
  ``nmfsep.models.names()``; see ``nmfsep.models``.
- ``NmfsepError``: what every user error raises; ``BadValueError``, its subclass for a bad
  value (an array, a shape, an option), is a ``ValueError`` too.

The names are imported on first use, so that ``nmfsep --help`` stays fast; ``dir(nmfsep)`` and
``help(nmfsep)`` list them. The one-input pipeline lives in ``nmfsep.pipeline`` (not
``nmfsep.separate``, which would shadow the function), the blind path in ``nmfsep.blind``, the
supervised one (and ``learn``) in ``nmfsep.supervised``.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "factorize": "nmfsep.nmf",
    "NMFResult": "nmfsep.nmf",
    "kmeans": "nmfsep.nmf",
    "deep_factorize": "nmfsep.nmf",
    "separate": "nmfsep.pipeline",
    "learn": "nmfsep.supervised",
    "Model": "nmfsep.model",
    "NmfsepError": "nmfsep.errors",
    "BadValueError": "nmfsep.errors",
}

_SUBMODULES = ("models",)  # public subpackages, also imported on first use

__all__ = sorted([*_EXPORTS, *_SUBMODULES]) + ["__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from .errors import BadValueError, NmfsepError
    from .model import Model
    from .nmf import NMFResult, deep_factorize, factorize, kmeans
    from .pipeline import separate
    from .supervised import learn


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups (and help()) find it as a plain attribute
        return value
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"nmfsep.{name}")  # (the import sets it as an attribute)
    raise AttributeError(f"module 'nmfsep' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
