"""User-facing errors: raised anywhere in the library, caught once in the CLI."""


class NmfsepError(Exception):
    """A problem with the user's input or options; its message is shown as one line."""


class AudioError(NmfsepError):
    """An audio file that cannot be read or written."""


class ModelError(NmfsepError):
    """A model file that is corrupt, mismatched or of an unknown version."""


class BadValueError(NmfsepError, ValueError):
    """A value the caller passed (an array, a shape, an option) that cannot be used.

    Also a ValueError, so ``except ValueError`` catches it as it catches numpy's and
    scikit-learn's; the CLI still shows it as one line (it is an NmfsepError).
    """
