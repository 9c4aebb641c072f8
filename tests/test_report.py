"""Predictions files, ensembles and the evaluation report: numbers in the files equal sklearn's."""
import csv
import json
import os

import ml_collections
import numpy as np
from sklearn import metrics

from jaxtag.evaluation import report


def fake_predictions(seed=0, n=120, t=6, split="test"):
  rng = np.random.default_rng(seed)
  y = (rng.random((n, t)) < np.linspace(0.5, 0.05, t)).astype(np.float32)
  y[:, -1] = 0   # a tag with no positive in this split
  s = np.clip(0.4 * y + 0.6 * rng.random((n, t)), 0, 1).astype(np.float32)
  return report.Predictions(song_ids=np.array([f"s{i:03d}" for i in range(n)]), scores=s, targets=y,
                            tags=np.array([f"tag{i}" for i in range(t)]), dataset="generated", split=split,
                            step=7, n_train=1000, train_pos=np.arange(t), train_cooc=np.eye(t, dtype=int))


def test_roundtrip(tmp_path):
  p = fake_predictions()
  path = report.predictions_path(str(tmp_path), "test")
  report.save_predictions(path, p)
  q = report.load_predictions(path)
  np.testing.assert_array_equal(q.scores, p.scores)
  np.testing.assert_array_equal(q.song_ids, p.song_ids)
  assert (q.dataset, q.split, q.step, q.n_train) == ("generated", "test", 7, 1000)
  assert q.chunk_scores is None and q.train_cooc.shape == (6, 6)


def test_ensemble_of_two_is_their_mean():
  a, b = fake_predictions(0), fake_predictions(1)
  b.targets = a.targets
  perm = np.random.default_rng(2).permutation(len(b.song_ids))
  b.song_ids, b.scores, b.targets = b.song_ids[perm], b.scores[perm], b.targets[perm]   # other song order
  b.song_ids, b.scores, b.targets = b.song_ids[:-3], b.scores[:-3], b.targets[:-3]     # and 3 songs missing
  e = report.ensemble([a, b])
  assert len(e.song_ids) == len(a.song_ids) - 3
  rows_b = {s: i for i, s in enumerate(b.song_ids)}
  for i, s in enumerate(e.song_ids):
    j = int(np.flatnonzero(a.song_ids == s)[0])
    np.testing.assert_allclose(e.scores[i], (a.scores[j] + b.scores[rows_b[s]]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(e.targets[i], a.targets[j])


def test_title_names_dataset_and_split():
  c = ml_collections.ConfigDict({"dataset": "mtt", "dataset_title": "MagnaTagATune", "mtt_split": "pons"})
  assert report.title(c, "test") == "MagnaTagATune, pons split, test"
  g = ml_collections.ConfigDict({"dataset": "generated", "dataset_title": ""})
  assert report.title(g, "valid") == "generated, valid"


def test_write_report_numbers(tmp_path):
  p = fake_predictions()
  out = str(tmp_path / "report")
  summary = report.write_report(out, p, {"title": "generated, test", "model": "spectrogram"})
  ok = list(range(5))
  with open(os.path.join(out, "eval_test.json")) as f:
    e = json.load(f)
  assert e == json.loads(json.dumps(summary))
  np.testing.assert_allclose(e["roc_auc"], metrics.roc_auc_score(p.targets[:, ok], p.scores[:, ok]), atol=1e-9)
  np.testing.assert_allclose(e["pr_auc"], metrics.average_precision_score(p.targets[:, ok], p.scores[:, ok]),
                             atol=1e-9)
  np.testing.assert_allclose(e["rmse"], np.sqrt(np.mean((p.targets.astype(float) - p.scores) ** 2)), rtol=1e-6)
  assert e["skipped_tags"] == ["tag5"] and e["n_songs"] == 120 and e["n_tags"] == 5
  assert e["model"] == "spectrogram" and e["n_train"] == 1000
  with open(os.path.join(out, "per_tag_test.csv")) as f:
    rows = list(csv.DictReader(f))
  n_pos = [int(r["n_pos"]) for r in rows]
  assert n_pos == sorted(n_pos, reverse=True)
  r0 = rows[0]
  t = int(r0["tag"][3:])
  np.testing.assert_allclose(float(r0["roc_auc"]), metrics.roc_auc_score(p.targets[:, t], p.scores[:, t]))
  md = open(os.path.join(out, "report_test.md")).read()
  assert md.startswith("# generated, test") and "tag5" in md and f"{100 * e['roc_auc']:.2f}" in md
  for png in ("per_tag_vs_prevalence_test.png", "pr_curves_test.png"):
    assert os.path.getsize(os.path.join(out, png)) > 5000
