"""The per-tag GBT baseline: its tempo feature finds a click track's tempo, and the per-tag models learn."""
import numpy as np

from jaxtag.core import scoring
from jaxtag.analyze import baseline

SR = 16000


def _clicks(bpm, seconds=10, seed=0):
  rng = np.random.default_rng(seed)
  w = 0.05 * np.sin(2 * np.pi * 330 * np.arange(seconds * SR) / SR)
  for t in np.arange(0, seconds, 60 / bpm):
    i = int(t * SR)
    w[i:i + 300] += 0.8 * rng.standard_normal(len(w[i:i + 300]))
  return w.astype(np.float32)


def test_features_fixed_length_and_tempo():
  f = baseline.features(_clicks(120), SR)
  assert f.shape == (164,) and np.isfinite(f).all()
  best_bpm = f[-9]
  assert abs(best_bpm - 120) < 3, best_bpm
  assert abs(baseline.features(_clicks(90), SR)[-9] - 90) < 3
  assert baseline.features(np.zeros(100, np.float32), SR).shape == (164,)   # shorter than one frame


def test_fit_predict_learns_and_propagates_missing():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((300, 5)).astype(np.float32)
  y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 1, np.zeros(300, bool)], axis=1).astype(np.float32)
  x_train, y_train, x_test, y_test = x[:200], y[:200], x[200:].copy(), y[200:]
  x_train[0] = np.nan       # an undecodable training file is dropped
  x_test[0] = np.nan        # an undecodable test file becomes a missing song
  s = baseline.fit_predict(x_train, y_train, x_test, max_iter=30)
  assert np.isnan(s[0]).all() and np.isfinite(s[1:]).all()
  m = scoring.macro_scores(y_test, s)
  assert m["missing_songs"] == 1 and m["skipped_tags"] == [2]
  assert m["per_tag"]["roc_auc"][0] > 0.9 and m["per_tag"]["roc_auc"][1] > 0.8
  np.testing.assert_allclose(s[1:, 2], 0.0)   # a tag never true in training predicts its rate
