"""Train the learned grouping (nmfsep.affinity) on the corpus, choose its balance on validation.

    .venv/bin/python benchmarks/make_corpus.py                 # the corpus, once (benchmarks/corpus)
    .venv/bin/python benchmarks/train_grouping.py              # writes src/nmfsep/grouping.npz

1. Train split: each mixture is factorized as blind separation factorizes it (nmfsep.blind: KL,
   its smoothness, each of its component counts). Each component's source is the one whose true
   magnitude takes most of its Wiener share, sum_ft W_c H_c (|S_i| / sum_j |S_j|) (its purity:
   that largest share). Every pair of components gives nmfsep.affinity's pair features and the
   label "same source", weighted by the geometric mean of the two components' loudness shares
   times their purities (loud, clean components teach the most). A multilayer perceptron
   (scikit-learn's MLPClassifier, HIDDEN units, seeded) is fitted to pairs drawn in proportion to
   those weights. SYNTHETIC more mixtures of 2 or 3 synthetic harmonic tones (nmfsep.synth, random
   fundamentals from 55 Hz to 5 kHz, roll-offs and rhythms, half of them switched on and off
   abruptly, so with clicks) join the train split: the corpus has no such steady sources, and
   without them the model groups the clicks of two tones as a source of their own. REMIXES more
   mix two sources of the train split taken from different mixtures (half of them two talkers):
   new pairs from the same material (validation, 24 components: +5.57 -> +6.01 dB mean, two
   talkers of one gender +0.5 -> +2.9 dB).
2. Validation split: the balance (subtracted from every log-odds before the partition: the
   higher, the more readily components are split apart) is chosen from BALANCES as the one with
   the best mean SI-SDR improvement of the grouped 24-component factorization (Wiener masks),
   over every validation mixture (partitions without affinity.MIN_SHARE, chosen after it on the
   same split). The test split is never read.

Deterministic: the same corpus gives the same model. scikit-learn is needed (the dev extra).
"""

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from nmfsep import affinity, masks, spectrum
from nmfsep.fitting import init_for
from nmfsep.nmf import factorize
from nmfsep.pipeline import Settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_quality import best_improvement, channels, load_mixture, masked_stems  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HIDDEN = (64, 32)
BALANCES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
TUNE_COMPONENTS = 24
MAX_PAIRS = 300_000
SYNTHETIC = 96
REMIXES = 256


def remixed_case(corpus, train, seed):
    """A new mixture of 2 sources of the train split taken from different mixtures (distinct
    material; half of them two talkers), mono, at the first one's rate, +-6 dB: more pairs of
    sources than the split's own mixtures, from the same material."""
    import soxr
    import soundfile as sf

    rng = np.random.default_rng([seed, 17])
    sources = [(e, s) for e in train for s in e["sources"]]
    speech = [x for x in sources if x[1]["kind"] == "speech"]
    first = speech[rng.integers(len(speech))] if rng.random() < 0.5 else sources[rng.integers(len(sources))]
    pool = speech if first[1]["kind"] == "speech" and rng.random() < 0.8 else sources
    pool = [x for x in pool if x[1]["material"] != first[1]["material"] and x[0]["id"] != first[0]["id"]]
    refs, rate = [], first[0]["rate"]
    for entry, source in (first, pool[rng.integers(len(pool))]):
        samples, r = sf.read(os.path.join(corpus, entry["dir"], source["file"]), dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
        refs.append(samples if r == rate else soxr.resample(samples, r, rate).astype(np.float32))
    n = min(len(x) for x in refs)
    refs = np.stack([x[:n] / (np.sqrt(np.mean(x[:n] ** 2)) + 1e-9) for x in refs])
    refs[1] *= 10 ** (rng.uniform(-6, 6) / 20)
    refs *= 0.8 / np.abs(refs.sum(axis=0)).max()
    return {"id": f"remix/{seed}", "class": "remix", "rate": rate, "mix": refs.sum(axis=0), "refs": refs}


def synthetic_case(seed):
    """A mixture of 2 or 3 gated harmonic tones with its sources, as load_mixture gives one."""
    from nmfsep.synth import gate, harmonic_tone

    rng = np.random.default_rng([seed, 16])
    rate = int(rng.choice([16000, 22050]))
    n = int(rng.uniform(2, 5) * rate)
    refs = []
    for i in range(int(rng.choice([2, 3]))):
        tone = harmonic_tone(float(np.exp(rng.uniform(np.log(55), np.log(5000)))), rng.uniform(0.2, 0.9),
                             bool(rng.random() < 0.3), n, rate, phase_seed=seed * 10 + i)
        period, duty, offset = rng.uniform(0.2, 1.2), rng.uniform(0.3, 0.8), rng.uniform(0, 1)
        if rng.random() < 0.5:   # abrupt: clicks at every switch
            envelope = (((np.arange(n) / rate - offset) % period) / period < duty).astype(float)
        else:
            envelope = gate(period, duty, offset, n, rate)
        refs.append(10 ** (rng.uniform(-6, 6) / 20) * tone * envelope)
    refs = np.array(refs, np.float32)
    refs *= 0.8 / np.abs(refs.sum(axis=0)).max()
    return {"id": f"synthetic/{seed}", "class": "synthetic", "rate": rate, "mix": refs.sum(axis=0), "refs": refs}


def factorizations(case, counts=None):
    """(X, params, [(W, H) for each count]) of a loaded mixture, as the blind path factorizes it."""
    params = spectrum.default_params(case["rate"])
    X, V = spectrum.analyse(channels(case["mix"]), params)
    settings = Settings(n_sources=len(case["refs"]))
    fits = []
    for k in counts or settings.component_counts(V.shape[1]):
        r = factorize(V / V.mean(), k, init=init_for(V, k), **settings.solver_options())
        fits.append((r.W, r.H))
    return X, params, fits


def labelled_pairs(args):
    corpus, entry = args[:2]
    if isinstance(entry, dict):
        case = load_mixture(corpus, entry)
    else:
        case = synthetic_case(entry) if corpus is None else remixed_case(corpus, args[2], entry)
    X, params, fits = factorizations(case)
    truth = np.stack([spectrum.analyse(channels(r), params)[1] for r in case["refs"]])
    ratio = truth / np.maximum(truth.sum(axis=0), 1e-12)
    features, labels, weights = [], [], []
    for W, H in fits:
        shares = np.stack([((r @ H.T) * W).sum(axis=0) for r in ratio], axis=1)
        shares /= np.maximum(shares.sum(axis=1, keepdims=True), 1e-20)
        source, purity = shares.argmax(axis=1), shares.max(axis=1)
        d = affinity.descriptors(W, H, case["rate"], params.n_fft, X)
        loud = d["loudness"] / d["loudness"].sum()
        upper = np.triu_indices(W.shape[1], 1)
        features.append(affinity.pair_features(d)[upper])
        labels.append((source[:, None] == source[None])[upper])
        w = (np.sqrt(np.outer(loud, loud)) * np.outer(purity, purity))[upper]
        weights.append(w / w.sum())
    return np.concatenate(features), np.concatenate(labels), np.concatenate(weights)


def train(features, labels, weights, hidden=HIDDEN, seed=0):
    from sklearn.neural_network import MLPClassifier

    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-9
    rng = np.random.default_rng(seed)
    drawn = rng.choice(len(labels), size=min(MAX_PAIRS, 4 * len(labels)), p=weights / weights.sum())
    net = MLPClassifier(hidden, alpha=1e-3, max_iter=300, random_state=seed, early_stopping=True)
    net.fit((features[drawn] - mean) / scale, labels[drawn])
    return affinity.PairModel(mean, scale, tuple(net.coefs_), tuple(net.intercepts_), 0.0)


def balance_scores(args):
    corpus, entry, model = args
    case = load_mixture(corpus, entry)
    X, params, [(W, H)] = factorizations(case, [TUNE_COMPONENTS])
    log_odds, weights, _ = affinity.pair_scores(model, W, H, case["rate"], params.n_fft, X)
    scores = []
    for balance in BALANCES:
        groups = affinity.partition(log_odds - balance, weights, len(case["refs"]))
        source_masks = masks.soft_masks(np.stack([W[:, g] @ H[g] for g in groups]), 2.0)
        scores.append(best_improvement(case, masked_stems(case, X, params, source_masks)))
    return entry["class"], scores


def main():
    import json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=os.path.join(HERE, "corpus"))
    parser.add_argument("--out", default=os.path.join(HERE, "..", "src", "nmfsep", "grouping.npz"))
    parser.add_argument("-j", type=int, default=2)
    args = parser.parse_args()
    with open(os.path.join(args.corpus, "manifest.json")) as f:
        entries = json.load(f)["mixtures"]
    start = time.time()
    with ProcessPoolExecutor(args.j) as pool:
        train_entries = [e for e in entries if e["split"] == "train"]
        jobs = ([(args.corpus, e) for e in train_entries] + [(None, s) for s in range(SYNTHETIC)]
                + [(args.corpus, s, train_entries) for s in range(REMIXES)])
        parts = list(pool.map(labelled_pairs, jobs))
        features, labels, weights = (np.concatenate(p) for p in zip(*parts))
        print(f"train: {len(train_entries)} mixtures of the corpus, {REMIXES} remixed from them and {SYNTHETIC} synthetic, "
              f"{len(labels)} pairs, {labels.mean():.0%} same source")
        model = train(features, labels, weights)
        results = list(pool.map(balance_scores, [(args.corpus, e, model) for e in entries if e["split"] == "val"]))
    classes = sorted({c for c, _ in results})
    print(f"validation, {len(results)} mixtures, {TUNE_COMPONENTS} components: mean SI-SDRi (dB) per balance")
    print("balance " + "".join(f"{c[:12]:>13s}" for c in classes) + "    mean")
    means = []
    for i, balance in enumerate(BALANCES):
        per_class = [np.mean([s[i] for c, s in results if c == name]) for name in classes]
        means.append(np.mean([s[i] for _, s in results]))
        print(f"{balance:7.1f} " + "".join(f"{x:13.2f}" for x in per_class) + f"  {means[-1]:6.2f}")
    chosen = BALANCES[int(np.argmax(means))]
    model = affinity.PairModel(model.mean, model.scale, model.weights, model.biases, chosen)
    affinity.save(model, args.out)
    print(f"balance {chosen} chosen; wrote {os.path.relpath(args.out)} ({os.path.getsize(args.out)} bytes) "
          f"in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
