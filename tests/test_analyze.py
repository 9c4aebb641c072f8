"""analyze scaling / popularity / exclusive on hand-built prediction files, numbers checked by hand."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxtag.evaluation import report
from jaxtag.analyze import exclusive, popularity, scaling


def _eval_json(workdir, model, n_train, roc, pr, rmse):
  os.makedirs(report.report_dir(workdir), exist_ok=True)
  with open(report.eval_json_path(workdir, "test"), "w") as f:
    json.dump({"model": model, "n_train": n_train, "roc_auc": roc, "pr_auc": pr, "rmse": rmse,
               "title": "generated, test"}, f)
  return workdir


@pytest.fixture
def sweep(tmp_path):
  """Waveform improves faster with data than spectrogram; they cross at 10^3 songs."""
  runs = []
  for n, w, s in ((100, 0.80, 0.84), (1000, 0.86, 0.86), (10000, 0.92, 0.88)):
    runs.append(_eval_json(str(tmp_path / f"w{n}"), "waveform", n, w, w - 0.5, 1.0 - w))
    runs.append(_eval_json(str(tmp_path / f"s{n}"), "spectrogram", n, s, s - 0.5, 1.0 - s))
  runs.append(_eval_json(str(tmp_path / "gbt"), "baseline", 12000, 0.85, 0.35, 0.15))
  return runs


def test_scaling_table_fit_and_crossover(sweep, tmp_path):
  res = scaling.run(sweep, "test", str(tmp_path / "out"))
  lines = res["table"].splitlines()
  assert lines[0] == "| Models | train size | ROC AUC | PR AUC | sqrt(MSE) |"
  assert lines[2] == "| Baseline | 12k | 85.00% | 35.00% | 0.1500 |"
  assert lines[3] == "| Waveform | 10k | 92.00% | 42.00% | 0.0800 |"
  assert lines[4] == "| Spectrogram | 10k | 88.00% | 38.00% | 0.1200 |"
  np.testing.assert_allclose(res["fits"]["waveform/roc_auc"], [0.06, 0.68], atol=1e-9)
  np.testing.assert_allclose(res["fits"]["spectrogram/roc_auc"], [0.02, 0.80], atol=1e-9)
  np.testing.assert_allclose(res["crossover_train_size"]["roc_auc"], 1000.0, rtol=1e-6)
  assert "baseline/roc_auc" not in res["fits"]    # one size only: no line
  assert os.path.getsize(tmp_path / "out" / "scaling.png") > 5000
  assert scaling.size_label(1_200_000) == "1.2M" and scaling.size_label(500_000) == "500k"


def test_scaling_cli_prints_seed_table(sweep, tmp_path):
  out = subprocess.run([sys.executable, "-m", "jaxtag.analyze", "scaling", *sweep, f"--out={tmp_path}/cli"],
                       capture_output=True, text=True, check=True).stdout
  assert "| Waveform | 100 | 80.00% | 30.00% | 0.2000 |" in out and "crossover" in out


def _biased_predictions(tmp_path, name="joint"):
  """Tag 0 is true for 40% of songs but always ranked first: the popular-tag bias, exaggerated."""
  rng = np.random.default_rng(0)
  n, t = 400, 5
  y = (rng.random((n, t)) < np.array([0.4, 0.3, 0.2, 0.1, 0.1])).astype(np.float32)
  s = 0.5 * rng.random((n, t)) + 0.3 * y
  s[:, 0] = 0.95
  p = report.Predictions(song_ids=np.array([str(i) for i in range(n)]), scores=s.astype(np.float32), targets=y,
                         tags=np.array(list("abcde")), dataset="generated", split="test")
  w = str(tmp_path / name)
  report.save_predictions(report.predictions_path(w, "test"), p)
  return w, p


def test_popularity_finds_over_predicted_tag(tmp_path):
  w, p = _biased_predictions(tmp_path)
  res = popularity.run(w, "test", k=1)
  assert res["over_predicted"][0]["tag"] == "a"
  assert res["over_predicted"][0]["topk_rate"] == 1.0
  np.testing.assert_allclose(res["over_predicted"][0]["true_rate"], p.targets[:, 0].mean())
  np.testing.assert_allclose(res["per_tag"]["topk_rate"], [1, 0, 0, 0, 0])
  assert res["popular_share_topk"] == 1.0    # the most popular tenth (1 tag: a) takes every slot
  k2 = popularity.popularity(p.targets, p.scores, p.tags, k=2)
  assert k2["per_tag"]["topk_rate"][0] == 1.0 and abs(sum(k2["per_tag"]["topk_rate"]) - 2) < 1e-9
  auto = popularity.popularity(p.targets, p.scores, p.tags)
  assert auto["k"] == max(1, round(p.targets.sum(axis=1).mean()))
  assert os.path.getsize(os.path.join(w, "report", "popularity_test.png")) > 5000


def test_find_pairs_never_cooccurring_common_tags():
  y = np.zeros((100, 4), int)
  y[:40, 0] = 1          # 0 and 1 never together, both common
  y[40:80, 1] = 1
  y[:50, 2] = 1          # 2 co-occurs with both
  y[99, 3] = 1           # 3 too rare
  pos, cooc, n = report.train_label_stats(y)
  assert exclusive.find_pairs(pos, cooc, n, min_prevalence=0.05) == [(0, 1)]
  assert exclusive.find_pairs(pos, cooc, n, min_prevalence=0.005) == [(0, 1), (2, 3), (0, 3), (1, 3)]


def test_exclusive_rates_joint_vs_independent(tmp_path):
  y = np.zeros((4, 3), np.float32)
  y[[0, 1], 0] = 1
  y[[2, 3], 1] = 1
  joint = np.array([[0.9, 0.1, 0.5], [0.8, 0.2, 0.5], [0.1, 0.9, 0.5], [0.2, 0.7, 0.5]])
  indep = np.array([[0.9, 0.8, 0.1], [0.8, 0.2, 0.1], [0.7, 0.9, 0.1], [0.6, 0.7, 0.1]])
  r_joint = exclusive.pair_rates(y, joint, [(0, 1)], threshold=0.5, k=2)[0]
  r_indep = exclusive.pair_rates(y, indep, [(0, 1)], threshold=0.5, k=2)[0]
  assert r_joint["n_songs"] == 4 and r_joint["both_above_threshold"] == 0.0
  assert r_joint["both_in_top_k"] == 0.0          # the 0.5 of tag 2 beats the absent tag everywhere
  assert r_indep["both_above_threshold"] == 0.75 and r_indep["both_in_top_k"] == 1.0
  np.testing.assert_allclose(r_indep["absent_tag_mean_score"], (0.8 + 0.2 + 0.7 + 0.6) / 4)
  for name, s in (("joint", joint), ("indep", indep)):
    report.save_predictions(report.predictions_path(str(tmp_path / name), "test"), report.Predictions(
        song_ids=np.array(list("wxyz")), scores=s, targets=y, tags=np.array(["east", "west", "rap"]),
        dataset="generated", split="test"))
  res = exclusive.run([str(tmp_path / "joint"), str(tmp_path / "indep")], "test", pairs=["east:west"], k=2)
  assert res["pairs"] == ["east / west"]
  assert [v[0]["both_in_top_k"] for v in res["models"].values()] == [0.0, 1.0]
  md = open(tmp_path / "joint" / "report" / "exclusive_test.md").read()
  assert "| east / west | 4 | 0.0 | 75.0 | 0.0 | 100.0 | 0.150 | 0.575 |" in md
  with pytest.raises(ValueError, match="unknown tags"):
    exclusive.run([str(tmp_path / "joint")], "test", pairs=["east:north"])
