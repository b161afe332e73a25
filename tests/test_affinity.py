"""The learned grouping: its model file, its partition, and blind separation with it."""

import numpy as np
import pytest

from nmfsep import affinity
from nmfsep.errors import ModelError
from nmfsep.evaluate import si_sdr
from nmfsep.pipeline import Settings, split_sources


def test_the_shipped_grouping_model_loads_and_gives_symmetric_finite_log_odds():
    model = affinity.load()
    rng = np.random.default_rng(0)
    W, H = rng.random((257, 6)), rng.random((6, 40))
    log_odds = model.log_odds(affinity.pair_features(affinity.descriptors(W, H, 16000, 512)))
    assert log_odds.shape == (6, 6)
    assert np.isfinite(log_odds).all()
    np.testing.assert_allclose(log_odds, log_odds.T, atol=1e-9)  # the pair features are symmetric


def _saved(tmp_path, **changes):
    fields = affinity.load().arrays()
    fields.update(changes)
    path = tmp_path / "g.npz"
    np.savez(path, **fields)
    return path


def test_a_grouping_model_with_a_pickled_field_is_refused(tmp_path):
    path = _saved(tmp_path, balance=np.array([{"run": "code"}], dtype=object))
    with pytest.raises(ModelError, match="g.npz: field 'balance' has type object"):
        affinity.load(path)


@pytest.mark.parametrize("change, message", [
    (dict(features=np.array(["x"] * len(affinity.PAIR_FEATURES))), "other pair features"),
    (dict(weights1=np.zeros((5, 32))), "layer 1 has inconsistent shapes"),
    (dict(scale=np.zeros(len(affinity.PAIR_FEATURES))), "finite"),
    (dict(mean=np.full(len(affinity.PAIR_FEATURES), np.nan)), "finite"),
    (dict(biases2=np.full(1, 1e308)), "at most 1e\\+06"),
    (dict(mean=np.zeros(3)), "out of range"),
    (dict(format_version=np.int64(99)), "format 99"),
])
def test_a_grouping_model_that_does_not_fit_the_code_is_refused_with_the_cause(tmp_path, change, message):
    with pytest.raises(ModelError, match=message):
        affinity.load(_saved(tmp_path, **change))


def test_a_file_that_is_not_a_grouping_model_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, bases=np.ones((3, 3)))
    with pytest.raises(ModelError, match="not a grouping model"):
        affinity.load(path)


def test_partition_finds_the_planted_groups_and_keeps_every_group_non_empty():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    log_odds = np.where(labels[:, None] == labels[None], 2.0, -2.0)
    groups = affinity.partition(log_odds, np.ones_like(log_odds), 3, seed=5)
    assert sorted(sorted(labels[g].tolist()) for g in groups) == [[0] * 4, [1] * 3, [2] * 3]
    everyone_alike = affinity.partition(np.full((6, 6), 5.0), np.ones((6, 6)), 2)
    assert all(len(g) for g in everyone_alike) and sorted(np.concatenate(everyone_alike)) == list(range(6))


def test_partition_gives_every_group_at_least_the_minimum_share_where_all_components_look_alike():
    rng = np.random.default_rng(2)
    log_odds = 5.0 + rng.random((8, 8))
    log_odds = (log_odds + log_odds.T) / 2
    shares = np.array([0.4, 0.2, 0.1, 0.1, 0.08, 0.06, 0.04, 0.02])
    weights = np.sqrt(np.outer(shares, shares))  # as group() weighs them: the quietest is cheapest to cut
    plain = affinity.partition(log_odds, weights, 2)
    assert min(shares[g].sum() for g in plain) < 0.1  # one quiet component set apart
    kept = affinity.partition(log_odds, weights, 2, shares=shares, min_share=0.25)
    assert min(shares[g].sum() for g in kept) >= 0.25
    assert sorted(np.concatenate(kept)) == list(range(8))


def _harmonic(f0, rate, n, gate):
    t = np.arange(n) / rate
    tone = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 6))
    return (tone * np.repeat(gate, n // len(gate) + 1)[:n]).astype(np.float32)


def test_two_sources_with_disjoint_harmonic_templates_come_back_at_10_db_each():
    rate, n = 16000, 4 * 16000
    rng = np.random.default_rng(3)
    low = 0.3 * _harmonic(196.0, rate, n, rng.random(16) < 0.7)
    high = 0.2 * _harmonic(1480.0, rate, n, rng.random(16) < 0.7)
    result = split_sources((low + high)[:, None], rate, Settings(n_sources=2))
    stems = result.stems[..., 0]  # lowest spectral centroid first
    assert si_sdr(low, stems[0]) >= 10 and si_sdr(high, stems[1]) >= 10


def test_blind_masks_still_sum_to_one_when_the_grouping_is_unsure():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((3 * 16000, 2)).astype(np.float32) * 0.1  # nothing to group
    result = split_sources(noise, 16000, Settings(n_sources=3))
    np.testing.assert_allclose(result.masks.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(result.stems.sum(axis=0), noise, atol=1e-4)
