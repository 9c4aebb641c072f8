"""Paired bootstrap over artists: the confidence interval of a difference in macro ROC-AUC between two
models scored on the same test songs.

Songs by one artist share a sound (arrangement, soundfont, mix bus), so they are not independent draws: the
unit resampled is the artist. A replicate draws as many artists as the test split has, with replacement, and
gives each song the number of times its artist was drawn as its weight; both models are scored on that same
weighted set (paired), so what the test set's particular songs favour cancels in the difference. A weighted
ROC-AUC equals the ordinary one on the set with every song repeated ``weight`` times (ties count 1/2); a tag
without both classes in a replicate drops out of that replicate's macro mean. Intervals are percentile
intervals. Several seeds of a model are averaged inside each replicate (their training noise is not
resampled; the study reports the seed spread beside the interval). Numpy only.
"""
from __future__ import annotations

import numpy as np


def artist_draws(groups, n_boot: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(song -> artist code (N,), drawn artist codes (B, G)): ``G`` artists drawn with replacement per replicate."""
  uniq, codes = np.unique(np.asarray(groups, str), return_inverse=True)
  rng = np.random.default_rng(seed)
  return codes, rng.integers(0, len(uniq), size=(n_boot, len(uniq)))


def weights_from_draws(codes: np.ndarray, draws: np.ndarray) -> np.ndarray:
  """(B, N) song weights: how many times each song's artist was drawn in each replicate."""
  n_groups = int(codes.max()) + 1
  counts = np.stack([np.bincount(d, minlength=n_groups) for d in draws])   # (B, G)
  return counts[:, codes].astype(np.float64)


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """ROC-AUC of ``scores`` (N,) for binary ``labels`` (N,) under each weight row of ``weights`` (B, N): the
  Mann-Whitney statistic with song multiplicities, ties counted 1/2; NaN where a class has no weight."""
  weights = np.atleast_2d(weights)
  order = np.argsort(scores, kind="stable")
  s, pos = np.asarray(scores)[order], np.asarray(labels, bool)[order]
  w = weights[:, order]
  w_neg = np.where(pos, 0.0, w)
  cum = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w_neg, axis=1)], axis=1)   # (B, N+1)
  left = np.searchsorted(s, s, "left")        # first index of each score's tie group
  right = np.searchsorted(s, s, "right")
  below = cum[:, left]
  equal = cum[:, right] - below
  w_pos = np.where(pos, w, 0.0)
  num = (w_pos * (below + 0.5 * equal)).sum(1)
  den = w_pos.sum(1) * w_neg.sum(1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def per_tag_auc(scores: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """(B, T) weighted ROC-AUC of every tag (targets binarised at 0.5)."""
  y = np.asarray(targets) > 0.5
  return np.stack([weighted_auc(scores[:, t], y[:, t], weights) for t in range(y.shape[1])], axis=1)


def macro(per_tag: np.ndarray, tags) -> np.ndarray:
  """(B,) mean over the ``tags`` columns that are defined in each replicate."""
  sub = per_tag[:, list(tags)]
  ok = ~np.isnan(sub)
  with np.errstate(invalid="ignore"):
    return np.where(ok.any(1), np.nansum(sub, 1) / np.maximum(ok.sum(1), 1), np.nan)


def interval(x: np.ndarray, level: float = 0.95) -> tuple[float, float]:
  x = x[~np.isnan(x)]
  a = (1 - level) / 2
  return float(np.quantile(x, a)), float(np.quantile(x, 1 - a))


def paired_difference(scores_a: list, scores_b: list, targets: np.ndarray, groups, tag_sets: dict,
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
  """For every named tag set: the macro ROC-AUC of A (mean over its seeds' score matrices), of B, and A - B,
  each as the point value on the test set and a ``level`` percentile interval over artist resamples."""
  codes, draws = artist_draws(groups, n_boot, seed)
  w = np.vstack([np.ones((1, len(codes))), weights_from_draws(codes, draws)])   # row 0: the test set itself
  tag_a = [per_tag_auc(np.asarray(s), targets, w) for s in scores_a]
  tag_b = [per_tag_auc(np.asarray(s), targets, w) for s in scores_b]
  out = {}
  for name, tags in tag_sets.items():
    a = np.mean([macro(t, tags) for t in tag_a], axis=0)
    b = np.mean([macro(t, tags) for t in tag_b], axis=0)
    d = a - b
    out[name] = {"a": float(a[0]), "a_ci": interval(a[1:], level), "b": float(b[0]), "b_ci": interval(b[1:], level),
                 "diff": float(d[0]), "diff_ci": interval(d[1:], level), "tags": len(tags), "n_boot": n_boot}
  return out


def sign(ci: tuple[float, float]) -> int:
  """+1 when the interval lies above 0, -1 below, 0 when it contains 0."""
  return 1 if ci[0] > 0 else (-1 if ci[1] < 0 else 0)


def crossover(sizes, cis) -> dict | None:
  """A crossover is claimed only when the difference's interval is wholly on one side of 0 at one measured
  size and wholly on the other side at a larger one: returns the bracketing sizes and the direction."""
  signs = [sign(c) for c in cis]
  for i, si in enumerate(signs):
    for j in range(i + 1, len(signs)):
      if si and signs[j] == -si:
        return {"between": [int(sizes[i]), int(sizes[j])], "from": "a" if si > 0 else "b",
                "to": "b" if si > 0 else "a"}
  return None
