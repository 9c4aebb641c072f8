"""Tagging metrics on song-level scores, numpy only, equal to scikit-learn's.

Every peer reports ``roc_auc_score`` / ``average_precision_score`` with ``average='macro'`` over the tags, on
song-level scores that are the mean of the chunk sigmoids (``peers_and_protocol.md`` §0.5). We recompute them
here in numpy so that the trainer's periodic validation does not import scikit-learn and so that a tag with
no positive (or no negative) in a split is skipped and *named* instead of crashing the evaluation (sklearn
raises "Only one class present in y_true"; that crash is a recurring user complaint of the peers).

Ties are handled exactly as sklearn does: ROC-AUC is the trapezoidal area over distinct thresholds (equal to the
Mann-Whitney U with ties counted one half), and average precision is the step sum over distinct thresholds.
"""
from __future__ import annotations

import logging

import numpy as np

from jaxtag.core.choices import POSITIVE_THRESHOLD  # graded targets count as positive at >= it


def sigmoid(x: np.ndarray) -> np.ndarray:
  """Numerically stable logistic, float64 internally."""
  x = np.asarray(x, np.float64)
  return np.exp(-np.logaddexp(0.0, -x))


def chunk_loss(logits: np.ndarray, targets: np.ndarray, kind: str) -> float:
  """The training loss on host arrays (validation): numerically stable BCE, or MSE of the sigmoid."""
  if kind == "mse":
    return float(np.mean((sigmoid(logits) - targets) ** 2))
  return float(np.mean(np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))))


def _average_ranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks with ties given their average rank (scipy.stats.rankdata's 'average')."""
  order = np.argsort(values, kind="mergesort")
  sorted_vals = values[order]
  starts = np.r_[True, sorted_vals[1:] != sorted_vals[:-1]]
  group = np.cumsum(starts) - 1
  first = np.flatnonzero(starts)
  last = np.r_[first[1:], len(values)] - 1
  avg = (first + last) / 2.0 + 1.0
  ranks = np.empty(len(values), np.float64)
  ranks[order] = avg[group]
  return ranks


def _binary(y_true) -> np.ndarray:
  return np.asarray(y_true) >= POSITIVE_THRESHOLD


def roc_auc(y_true, y_score) -> np.ndarray:
  """Per-tag ROC-AUC of (N, T) arrays (1-D inputs are one tag); NaN where a tag has one class only."""
  y, s = _as_2d(y_true, y_score)
  out = np.full(y.shape[1], np.nan)
  for t in range(y.shape[1]):
    pos = y[:, t]
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
      continue
    ranks = _average_ranks(s[:, t])
    out[t] = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
  return out if np.ndim(y_true) > 1 else out[0]


def _curve_points(pos: np.ndarray, score: np.ndarray):
  """True and false positives at each distinct threshold, highest first (sklearn's _binary_clf_curve)."""
  order = np.argsort(-score, kind="mergesort")
  s, p = score[order], pos[order]
  last_of_group = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
  tps = np.cumsum(p)[last_of_group].astype(np.float64)
  fps = (last_of_group + 1) - tps
  return tps, fps, s[last_of_group]


def precision_recall_curve(y_true, y_score):
  """Precision, recall and thresholds of one tag, ordered like sklearn's (recall decreasing to 0)."""
  pos, score = _binary(np.ravel(y_true)), np.asarray(y_score, np.float64).ravel()
  tps, fps, thresholds = _curve_points(pos, score)
  precision = tps / (tps + fps)
  recall = tps / tps[-1] if tps[-1] > 0 else np.ones_like(tps)
  return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision(y_true, y_score) -> np.ndarray:
  """Per-tag average precision (sklearn's "PR-AUC") of (N, T) arrays; NaN where a tag has one class only."""
  y, s = _as_2d(y_true, y_score)
  out = np.full(y.shape[1], np.nan)
  for t in range(y.shape[1]):
    pos = y[:, t]
    if pos.all() or not pos.any():
      continue
    tps, fps, _ = _curve_points(pos, s[:, t])
    precision, recall = tps / (tps + fps), tps / tps[-1]
    out[t] = np.sum(np.diff(np.r_[0.0, recall]) * precision)
  return out if np.ndim(y_true) > 1 else out[0]


def rmse(targets, scores) -> float:
  """sqrt(MSE) of outputs against (graded or binary) targets over songs x tags: the seed's third column."""
  d = np.asarray(scores, np.float64) - np.asarray(targets, np.float64)
  return float(np.sqrt(np.mean(d * d)))


def macro_scores(targets, scores, tags=None) -> dict:
  """The seed's three numbers plus the per-tag table.

  Songs whose score row holds NaN (no chunk could be read; see ``aggregate_chunks``) are left out and counted
  in ``missing_songs``. Tags with no positive or no negative among the remaining songs are left out of the
  macro means and listed in ``skipped_tags`` (names if ``tags`` is given, else indices).
  """
  targets = np.asarray(targets, np.float64)
  scores = np.asarray(scores, np.float64)
  if targets.shape != scores.shape or targets.ndim != 2:
    raise ValueError(f"targets {targets.shape} and scores {scores.shape} must be the same (songs, tags) shape")
  keep = ~np.isnan(scores).any(axis=1)
  targets, scores = targets[keep], scores[keep]
  per_roc, per_ap = roc_auc(targets, scores), average_precision(targets, scores)
  valid = ~np.isnan(per_roc)
  names = list(tags) if tags is not None else list(range(targets.shape[1]))
  n_pos = _binary(targets).sum(axis=0)
  mean = lambda a: float(np.mean(a[valid])) if valid.any() else float("nan")   # noqa: E731
  return {
      "roc_auc": mean(per_roc),
      "pr_auc": mean(per_ap),
      "rmse": rmse(targets, scores) if len(targets) else float("nan"),
      "n_songs": int(keep.sum()),
      "n_tags": int(valid.sum()),
      "missing_songs": int((~keep).sum()),
      "skipped_tags": [names[t] for t in np.flatnonzero(~valid)],
      "per_tag": {"roc_auc": per_roc, "pr_auc": per_ap, "n_pos": n_pos,
                  "prevalence": n_pos / max(len(targets), 1)},
  }


def aggregate_chunks(chunk_scores, song_index, n_songs: int) -> np.ndarray:
  """Song-level scores: the mean of each song's chunk scores (pass sigmoids, as every peer averages them).

  ``song_index`` gives each chunk's song (``-1`` marks batch padding and is ignored). Songs with no chunk get
  a NaN row, which ``macro_scores`` leaves out and counts; they are logged here by index.
  """
  chunk_scores = np.asarray(chunk_scores, np.float64)
  song_index = np.asarray(song_index)
  real = song_index >= 0
  idx, vals = song_index[real], chunk_scores[real]
  sums = np.zeros((n_songs, chunk_scores.shape[1]))
  np.add.at(sums, idx, vals)
  counts = np.bincount(idx, minlength=n_songs)[:n_songs]
  out = np.full_like(sums, np.nan)
  has = counts > 0
  out[has] = sums[has] / counts[has, None]
  if not has.all():
    logging.warning("%d of %d songs have no chunk (NaN rows): %s", (~has).sum(), n_songs,
                    np.flatnonzero(~has)[:20].tolist())
  return out


def _as_2d(y_true, y_score):
  y, s = _binary(y_true), np.asarray(y_score, np.float64)
  if y.ndim == 1:
    y, s = y[:, None], s[:, None]
  if y.shape != s.shape:
    raise ValueError(f"y_true {y.shape} and y_score {s.shape} differ in shape")
  return y, s
