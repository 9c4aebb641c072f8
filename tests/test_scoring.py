"""jaxtag.core.scoring equals scikit-learn per tag, skips one-class tags by name, and aggregates chunks by song."""
import numpy as np
import pytest
from sklearn import metrics

from jaxtag.core import scoring


def _random_split(seed, n=300, t=12, ties=False):
  rng = np.random.default_rng(seed)
  y = (rng.random((n, t)) < rng.uniform(0.02, 0.5, t)).astype(np.float32)
  s = rng.random((n, t)) + 0.3 * y
  if ties:   # coarse scores: many exact ties, inside and across classes
    s = np.round(s * 8) / 8
  return y, s.astype(np.float32)


@pytest.mark.parametrize("ties", [False, True])
def test_per_tag_equals_sklearn(ties):
  y, s = _random_split(0, ties=ties)
  roc, ap = scoring.roc_auc(y, s), scoring.average_precision(y, s)
  for t in range(y.shape[1]):
    np.testing.assert_allclose(roc[t], metrics.roc_auc_score(y[:, t], s[:, t]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ap[t], metrics.average_precision_score(y[:, t], s[:, t]), rtol=0, atol=1e-12)
  np.testing.assert_allclose(scoring.roc_auc(y[:, 0], s[:, 0]), roc[0])


def test_macro_equals_sklearn_and_names_one_class_tags():
  y, s = _random_split(1)
  y[:, 3] = 0          # no positive
  y[:, 7] = 1          # no negative
  tags = [f"tag{i}" for i in range(y.shape[1])]
  out = scoring.macro_scores(y, s, tags)
  ok = [t for t in range(y.shape[1]) if t not in (3, 7)]
  assert out["skipped_tags"] == ["tag3", "tag7"]
  assert out["n_tags"] == len(ok) and out["n_songs"] == len(y)
  np.testing.assert_allclose(out["roc_auc"], metrics.roc_auc_score(y[:, ok], s[:, ok], average="macro"),
                             atol=1e-12)
  np.testing.assert_allclose(out["pr_auc"], metrics.average_precision_score(y[:, ok], s[:, ok], average="macro"),
                             atol=1e-12)
  y64, s64 = y.astype(np.float64), s.astype(np.float64)   # sklearn's MSE stays in float32 otherwise
  np.testing.assert_allclose(out["rmse"], np.sqrt(metrics.mean_squared_error(y64, s64)), rtol=1e-12)
  assert np.isnan(out["per_tag"]["roc_auc"][3]) and out["per_tag"]["n_pos"][3] == 0
  np.testing.assert_allclose(out["per_tag"]["prevalence"], y.mean(axis=0))


def test_graded_targets_binarised_for_auc_but_not_for_rmse():
  rng = np.random.default_rng(2)
  g = rng.random((200, 4))
  s = np.clip(g + 0.2 * rng.standard_normal(g.shape), 0, 1)
  out = scoring.macro_scores(g, s)
  np.testing.assert_allclose(out["roc_auc"], metrics.roc_auc_score(g >= 0.5, s, average="macro"), atol=1e-12)
  np.testing.assert_allclose(out["rmse"], np.sqrt(np.mean((g - s) ** 2)))


def test_precision_recall_curve_equals_sklearn():
  y, s = _random_split(3, ties=True)
  p, r, th = scoring.precision_recall_curve(y[:, 1], s[:, 1])
  sp, sr, sth = metrics.precision_recall_curve(y[:, 1], s[:, 1])
  n = len(sp)   # older sklearn versions stop at full recall; compare the common head
  np.testing.assert_allclose(p[-n:], sp)
  np.testing.assert_allclose(r[-n:], sr)
  np.testing.assert_allclose(th[-(n - 1):], sth)


def test_aggregate_chunks_hand_built():
  chunks = np.array([[0.2, 0.9], [0.4, 0.7], [1.0, 0.0], [0.5, 0.5], [9.0, 9.0]])
  song = np.array([0, 0, 2, 0, -1])        # song 1 has no chunk; the last row is batch padding
  out = scoring.aggregate_chunks(chunks, song, 3)
  np.testing.assert_allclose(out[0], [(0.2 + 0.4 + 0.5) / 3, (0.9 + 0.7 + 0.5) / 3])
  assert np.isnan(out[1]).all()
  np.testing.assert_allclose(out[2], [1.0, 0.0])
  targets = np.array([[1, 0], [1, 1], [0, 1]], np.float32)
  m = scoring.macro_scores(targets, out)
  assert m["missing_songs"] == 1 and m["n_songs"] == 2


def test_sigmoid_stable():
  np.testing.assert_allclose(scoring.sigmoid(np.array([-1000.0, 0.0, 1000.0])), [0.0, 0.5, 1.0])
