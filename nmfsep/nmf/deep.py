"""Deep NMF (placeholder until implemented)."""


class DeepNMFResult:
    pass


def deep_factorize(V, ranks):
    raise NotImplementedError("deep_factorize is not implemented yet")
