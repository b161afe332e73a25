"""k-means as NMF (placeholder until implemented)."""


def kmeans(V, k, *, seed=None):
    raise NotImplementedError("kmeans is not implemented yet")
