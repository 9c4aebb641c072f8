"""The artist-resampling paired bootstrap: its weighted ROC-AUC against sklearn on repeated rows, its replicates
against a direct slow implementation with the same draws, and a case small enough to enumerate exactly."""
import itertools

import numpy as np
from sklearn.metrics import roc_auc_score

from jaxtag.analyze import bootstrap


def _case(seed=0, n=40, t=3):
  rng = np.random.default_rng(seed)
  groups = np.array([f"a{i % 9}" for i in range(n)])
  targets = (rng.random((n, t)) < 0.4).astype(np.float32)
  a = np.round(targets + rng.normal(0, 0.8, (n, t)), 1)     # rounded: ties happen
  b = np.round(targets + rng.normal(0, 1.2, (n, t)), 1)
  return a, b, targets, groups


def test_weighted_auc_equals_sklearn_on_repeated_rows():
  a, _, targets, _ = _case()
  rng = np.random.default_rng(1)
  w = rng.integers(0, 4, (5, len(a))).astype(float)
  got = bootstrap.weighted_auc(a[:, 0], targets[:, 0] > 0.5, w)
  for k in range(5):
    rep = np.repeat(np.arange(len(a)), w[k].astype(int))
    assert abs(got[k] - roc_auc_score(targets[rep, 0], a[rep, 0])) < 1e-12


def test_replicates_match_a_direct_slow_implementation():
  a, b, targets, groups = _case()
  n_boot, seed = 30, 7
  res = bootstrap.paired_difference([a], [b], targets, groups, {"all": [0, 1, 2]}, n_boot=n_boot, seed=seed)
  codes, draws = bootstrap.artist_draws(groups, n_boot, seed)
  slow = []
  for d in draws:   # the resampled test set, built song by song; sklearn scores every tag
    rows = np.concatenate([np.flatnonzero(codes == g) for g in d])
    per = lambda s: np.mean([roc_auc_score(targets[rows, j], s[rows, j]) for j in range(3)   # noqa: E731
                             if 0 < targets[rows, j].sum() < len(rows)])
    slow.append(per(a) - per(b))
  lo, hi = np.quantile(slow, [0.025, 0.975])
  assert np.allclose(res["all"]["diff_ci"], (lo, hi), atol=1e-12)
  full = np.mean([roc_auc_score(targets[:, j], a[:, j]) - roc_auc_score(targets[:, j], b[:, j]) for j in range(3)])
  assert abs(res["all"]["diff"] - full) < 1e-12


def test_three_artists_enumerated_exactly():
  """Three artists, one tag: every one of the 27 ordered draws is equally likely; the bootstrap's replicate
  values lie in that support and their frequencies and mean match the exact distribution."""
  groups = np.array(["x", "x", "y", "y", "z", "z"])
  targets = np.array([[1], [0], [1], [0], [1], [0]], np.float32)
  a = np.array([[0.9], [0.1], [0.4], [0.6], [0.8], [0.3]])
  b = np.array([[0.2], [0.7], [0.9], [0.1], [0.5], [0.5]])
  codes = np.array([0, 0, 1, 1, 2, 2])
  exact = []
  for d in itertools.product(range(3), repeat=3):
    w = bootstrap.weights_from_draws(codes, np.array([d]))
    rows = np.repeat(np.arange(6), w[0].astype(int))
    exact.append(roc_auc_score(targets[rows, 0], a[rows, 0]) - roc_auc_score(targets[rows, 0], b[rows, 0]))
  exact = np.round(exact, 9)
  values, counts = np.unique(exact, return_counts=True)
  # by hand: per artist A wins (1, 0, 1) and B wins (0, 1, 0.5); a draw of one artist three times is that
  # artist's difference: x alone +1, y alone -1, z alone +0.5 (draws in itertools.product order: 0, 13, 26)
  assert (exact[0], exact[13], exact[26]) == (1.0, -1.0, 0.5) and len(values) > 3
  n_boot = 20000
  _, draws = bootstrap.artist_draws(groups, n_boot, 3)
  w = bootstrap.weights_from_draws(codes, draws)
  reps = np.round(bootstrap.weighted_auc(a[:, 0], targets[:, 0] > 0.5, w)
                  - bootstrap.weighted_auc(b[:, 0], targets[:, 0] > 0.5, w), 9)
  assert set(np.unique(reps)) <= set(values)
  freq = np.array([(reps == v).mean() for v in values])
  assert np.abs(freq - counts / 27).max() < 0.015
  assert abs(reps.mean() - exact.mean()) < 0.01


def test_crossover_needs_the_interval_to_change_sign():
  assert bootstrap.crossover([180, 480, 1440], [(-0.04, -0.01), (-0.02, 0.01), (0.005, 0.03)]) == \
      {"between": [180, 1440], "from": "b", "to": "a"}
  assert bootstrap.crossover([180, 480, 1440], [(-0.04, -0.01), (-0.02, 0.01), (-0.01, 0.03)]) is None
  assert bootstrap.crossover([180, 480], [(0.01, 0.02), (-0.03, -0.001)])["from"] == "a"
