"""Separation quality on benchmarks/data: SI-SDR improvement (dB) per case and method.

    .venv/bin/python benchmarks/bench_quality.py            # the main table
    .venv/bin/python benchmarks/bench_quality.py --levers   # plus one row per quality lever
    .venv/bin/python benchmarks/bench_quality.py --blind    # plus blind separation (best permutation):
        nmfsep's default and each --grouping, one factorization of C components (the default averages
        16, 24 and 32), librosa.decompose with k = N, nussl-style MFCC k-means, oracle grouping

Methods (same STFT for all: nmfsep's default for the data's rate):
  nmfsep        supervised: `nmfsep learn` on each source's training file, `split --model ...`
                (defaults: 128 bases learned with +-1 semitone shifts, then discriminative training
                of unfolded layers and mask bases on synthetic mixtures of the training frames)
  sklearn       the scikit-learn recipe: 20 KL bases per source (sklearn NMF, solver mu), then
                activations by non_negative_factorization with the bases fixed, soft masks (p=1)
  oracle        ideal ratio mask from the true sources, the better of |S|^1 and |S|^2 ratios:
                the ceiling for any mask method
Stems of the supervised methods are scored in their own order (no permutation search).
"""

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
import soundfile as sf

from nmfsep import masks, spectrum
from nmfsep.evaluate import si_sdr, si_sdr_improvement
from nmfsep.pipeline import Settings, split_sources
from nmfsep.spectrum import analyse
from nmfsep.supervised import DEFAULT_BASES, DEFAULT_PITCH_SHIFTS, UNFOLDED_LAYERS, learn

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
# Measure the code as it is: no discriminative training from an earlier run's cache (nmfsep.cache).
os.environ["NMFSEP_CACHE_DIR"] = ""


def load_cases():
    with open(os.path.join(DATA, "cases.json")) as f:
        names = json.load(f)
    cases = {}
    for case, sources in names.items():
        read = lambda name: sf.read(os.path.join(DATA, case, name), dtype="float32")  # noqa: E731
        mix, rate = read("mix.wav")
        cases[case] = {
            "rate": rate, "mix": mix, "sources": sources,
            "refs": np.stack([read(f"ref_{s}.wav")[0] for s in sources]),
            "train": [read(f"train_{s}.wav")[0] for s in sources],
        }
    return cases


def improvement(case, stems):
    """Mean over sources of SI-SDR(ref, stem) - SI-SDR(ref, mix), stems in reference order."""
    return float(np.mean([si_sdr(r, e) - si_sdr(r, case["mix"]) for r, e in zip(case["refs"], stems)]))


def nmfsep_supervised(case, n_bases=DEFAULT_BASES, beta=1.0, power=2.0, sparsity=0.0, smoothness=0.0,
                      max_iter=200, tol=1e-4, learn_beta=None, pitch_shifts=DEFAULT_PITCH_SHIFTS,
                      discriminative=True, unfolded_layers=UNFOLDED_LAYERS):
    models = [learn(train, case["rate"], n_bases, name=name, beta=beta if learn_beta is None else learn_beta,
                    max_iter=max_iter, tol=tol, pitch_shifts=pitch_shifts)
              for train, name in zip(case["train"], case["sources"])]
    settings = Settings(beta=beta, power=power, max_iter=max_iter, tol=tol, models=tuple(models),
                        sparsity=sparsity, smoothness=smoothness, discriminative=discriminative,
                        unfolded_layers=unfolded_layers)
    return split_sources(case["mix"][:, None], case["rate"], settings).stems[..., 0]


def sklearn_recipe(case, n_bases=20):
    from sklearn.decomposition import NMF, non_negative_factorization

    params = spectrum.default_params(case["rate"])
    bases = []
    for train in case["train"]:
        V = analyse(train[:, None], params)[1]
        nmf = NMF(n_bases, beta_loss="kullback-leibler", solver="mu", max_iter=200, init="nndsvda", random_state=0)
        nmf.fit(V.T)
        bases.append(nmf.components_)  # (n_bases, n_bins)
    X, V = analyse(case["mix"][:, None], params)
    H_all = np.concatenate(bases)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at max_iter
        act, _, _ = non_negative_factorization(V.T, H=H_all, n_components=len(H_all), update_H=False,
                                               beta_loss="kullback-leibler", solver="mu", max_iter=200,
                                               init="custom", W=np.full((V.shape[1], len(H_all)), 0.1, np.float32))
    models = np.stack([(act[:, i * n_bases:(i + 1) * n_bases] @ b).T for i, b in enumerate(bases)])
    source_masks = masks.soft_masks(models, 1.0)
    return np.stack([spectrum.istft(X[0] * m, params, len(case["mix"])) for m in source_masks])


def nmfsep_blind(case, grouping="auto", n_components=None, smoothness=None):
    settings = Settings(n_sources=len(case["refs"]), grouping=grouping, n_components=n_components,
                        smoothness=smoothness)
    return split_sources(case["mix"][:, None], case["rate"], settings).stems[..., 0]


def librosa_recipe(case):
    """librosa.decompose.decompose with k = number of sources, soft masks (librosa.util.softmask)."""
    import librosa

    params = spectrum.default_params(case["rate"])
    X, V = analyse(case["mix"][:, None], params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W, H = librosa.decompose.decompose(V, n_components=len(case["refs"]), sort=True, random_state=0)
    models = np.stack([np.outer(W[:, i], H[i]) for i in range(W.shape[1])])
    total = models.sum(axis=0)
    source_masks = [librosa.util.softmask(m, total - m, power=1) for m in models]
    return np.stack([spectrum.istft(X[0] * m, params, len(case["mix"])) for m in source_masks])


def components(case, n_components=24):
    """The 24 KL components the grouping rows share: (X, W, H, params)."""
    from nmfsep.nmf import factorize

    params = spectrum.default_params(case["rate"])
    X, V = analyse(case["mix"][:, None], params)
    result = factorize(V / V.mean(), n_components, beta=1.0, max_iter=200, seed=0)
    return X, result.W, result.H, params


def grouped_stems(case, X, W, H, params, labels):
    groups = [np.flatnonzero(labels == s) for s in range(len(case["refs"]))]
    models = np.stack([W[:, g] @ H[g] for g in groups])
    source_masks = masks.soft_masks(models, 2.0)
    return np.stack([spectrum.istft(X[0] * m, params, len(case["mix"])) for m in source_masks])


def nussl_recipe(case):
    """nussl-style NMF-MFCC: 24 KL components, MFCCs of their bases clustered by sklearn KMeans."""
    import librosa
    from sklearn.cluster import KMeans

    X, W, H, params = components(case)
    log_mel = np.log(librosa.filters.mel(sr=case["rate"], n_fft=params.n_fft, n_mels=40) @ W + 1e-8)
    mfccs = librosa.feature.mfcc(S=log_mel, n_mfcc=13)[1:].T
    labels = KMeans(len(case["refs"]), n_init=10, random_state=0).fit_predict(mfccs)
    return grouped_stems(case, X, W, H, params, labels)


def oracle_grouping(case):
    """The same 24 components, each given to the source whose true power it overlaps most."""
    X, W, H, params = components(case)
    power = np.stack([np.abs(analyse(r[:, None], params)[0][0]) ** 2 for r in case["refs"]])
    share = power / np.maximum(power.sum(axis=0), 1e-20)
    overlap = np.array([[np.sum(np.outer(W[:, c], H[c]) * s) for s in share] for c in range(W.shape[1])])
    labels = overlap.argmax(axis=1)
    if len(set(labels)) < len(case["refs"]):  # every source gets at least its best component
        for s in range(len(case["refs"])):
            if s not in labels:
                labels[np.argmax(overlap[:, s] / overlap.sum(axis=1))] = s
    return grouped_stems(case, X, W, H, params, labels)


def best_improvement(case, stems):
    """Blind stems come in centroid order: score them under the best permutation."""
    return float(si_sdr_improvement(case["refs"], stems, case["mix"]).mean())


def oracle(case, power):
    params = spectrum.default_params(case["rate"])
    X = analyse(case["mix"][:, None], params)[0]
    true = np.stack([np.abs(analyse(r[:, None], params)[0][0]) for r in case["refs"]])
    source_masks = masks.soft_masks(true, power)
    return np.stack([spectrum.istft(X[0] * m, params, len(case["mix"])) for m in source_masks])


LEVERS = [  # (label, keyword arguments of nmfsep_supervised)
    ("default", {}),
    ("no discriminative training", {"discriminative": False}),
    ("no unfolded layers (discriminative mask bases only)", {"unfolded_layers": 0}),
    ("4 unfolded layers", {"unfolded_layers": 4}),
    ("8 unfolded layers", {"unfolded_layers": 8}),
    ("no pitch shifts (learn --pitch-shifts 0)", {"pitch_shifts": 0}),
    ("neither (the plain recipe, 32 bases)", {"discriminative": False, "pitch_shifts": 0, "n_bases": 32}),
    ("pitch shifts 2", {"pitch_shifts": 2}),
    ("32 bases", {"n_bases": 32}),
    ("64 bases", {"n_bases": 64}),
    ("beta 0.5", {"beta": 0.5}),
    ("mask power 1", {"power": 1.0}),
    ("sparsity 0.1", {"sparsity": 0.1}),
    ("smoothness 0.1", {"smoothness": 0.1}),
    ("tol 0 (all 200 iterations)", {"tol": 0.0}),
]


def table(rows, cases):
    width = max(len(label) for label, _ in rows) + 2
    head = "method".ljust(width) + "".join(c[:12].rjust(13) for c in cases) + "mean".rjust(8)
    print(head)
    print("-" * len(head))
    for label, values in rows:
        print(label.ljust(width) + "".join(f"{v:13.2f}" for v in values) + f"{np.mean(values):8.2f}")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levers", action="store_true", help="also measure each quality lever")
    parser.add_argument("--blind", action="store_true", help="also measure blind separation")
    args = parser.parse_args()
    cases = load_cases()
    started = time.perf_counter()
    rows = {
        "nmfsep supervised": [improvement(c, nmfsep_supervised(c)) for c in cases.values()],
        "sklearn recipe": [improvement(c, sklearn_recipe(c)) for c in cases.values()],
        "oracle mask": [max(improvement(c, oracle(c, 1.0)), improvement(c, oracle(c, 2.0))) for c in cases.values()],
    }
    print("SI-SDR improvement (dB), supervised separation of benchmarks/data\n")
    table(list(rows.items()), cases)
    ours, recipe, ceiling = (np.array(v) for v in rows.values())
    print(f"\nnmfsep - sklearn recipe: {ours.mean() - recipe.mean():+.2f} dB (target >= +2)")
    print(f"nmfsep / oracle: {100 * ours.mean() / ceiling.mean():.0f}% (target >= 80%)")
    print(f"cases below the recipe: {int((ours < recipe).sum())} (target 0)")
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.blind:
        print("\nBlind separation (-k = number of sources), SI-SDR improvement (dB), best permutation\n")
        from nmfsep.grouping import DEFAULT_METHOD, METHODS

        blind = [(f"nmfsep blind ({m})", [best_improvement(c, nmfsep_blind(c, m)) for c in cases.values()])
                 for m in METHODS]
        blind += [(f"nmfsep {DEFAULT_METHOD}, C={n}", [best_improvement(c, nmfsep_blind(c, DEFAULT_METHOD, n))
                                                     for c in cases.values()])
                  for n in (8, 16, 24, 32)]
        blind += [(f"nmfsep {DEFAULT_METHOD}, C=24, smoothness 0",
                   [best_improvement(c, nmfsep_blind(c, DEFAULT_METHOD, 24, 0.0)) for c in cases.values()])]
        blind += [("librosa decompose k=N", [best_improvement(c, librosa_recipe(c)) for c in cases.values()]),
                  ("nussl MFCC k-means, 24", [best_improvement(c, nussl_recipe(c)) for c in cases.values()]),
                  ("oracle grouping, 24", [best_improvement(c, oracle_grouping(c)) for c in cases.values()])]
        table(blind, cases)
        ours = np.array(blind[0][1])
        print(f"\nnmfsep blind (auto): mean {ours.mean():+.2f} dB (target >= +6), "
              f"{int((ours < 0).sum())} mixtures below 0 dB (target 0), "
              f"behind a library recipe on {int(((ours < np.array(blind[-3][1])) | (ours < np.array(blind[-2][1]))).sum())} (target 0)")
    if args.levers:
        print("\nLevers, one at a time from the default (SI-SDR improvement, dB)\n")
        table([(label, [improvement(c, nmfsep_supervised(c, **kw)) for c in cases.values()])
               for label, kw in LEVERS], cases)


if __name__ == "__main__":
    main()
