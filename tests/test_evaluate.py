"""A smoke run end to end: jaxtag.main trains, jaxtag.evaluation.evaluate / analyze baseline / ensemble / popularity /
exclusive / scaling report on it, and every number in their files is recomputed here (sklearn, numpy)."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics

from conftest import ROOT
from jaxtag.evaluation import evaluate, report
from jaxtag.analyze import exclusive, popularity, scaling

DATA = ["--config.data.dataset=generated", "--config.data.dataset_title=jaxtag generated corpus", "--config.data.generated_n=100",
        "--config.data.generated_clip_seconds=3", "--config.data.chunk_seconds=1"]
TRAIN = ["--config.train.global_batch_size=16", "--config.eval.batch_size=16", "--config.train.steps=20",
         "--config.train.eval_every=20", "--config.train.checkpoint_every=20", "--config.train.log_every=10"]


def _run(*args):
  proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
  if proc.returncode:
    raise AssertionError(f"{args[:2]} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
  return proc.stdout


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  """A 20-step spectrogram run, the GBT baseline on the same data, and the run's evaluation (CLI, --json)."""
  base = tmp_path_factory.mktemp("smoke")
  data = [f"--config.data.cache_dir={base / 'cache'}", *DATA]
  run, gbt = str(base / "spectrogram"), str(base / "baseline")
  _run("jaxtag.main", "--config=configs/smoke.py", f"--workdir={run}", *data, *TRAIN)
  _run("jaxtag.analyze", "baseline", "--config=configs/smoke.py", f"--workdir={gbt}", "--max_iter=20", *data)
  out = _run("jaxtag.evaluation.evaluate", f"--workdir={run}", "--split=test", "--json")
  return {"run": run, "gbt": gbt, "eval": json.loads(out.strip().splitlines()[-1])}


def _check_against_sklearn(e: dict, p: report.Predictions):
  ok = [i for i, t in enumerate(p.tags) if t not in e["skipped_tags"]]
  y, s = p.targets[:, ok], p.scores[:, ok].astype(np.float64)
  assert 0 < len(ok) == e["n_tags"] and e["n_songs"] == len(p.song_ids)
  assert set(e["skipped_tags"]) == {t for i, t in enumerate(p.tags) if p.targets[:, i].min() == p.targets[:, i].max()}
  np.testing.assert_allclose(e["roc_auc"], metrics.roc_auc_score(y, s, average="macro"), atol=1e-9)
  np.testing.assert_allclose(e["pr_auc"], metrics.average_precision_score(y, s, average="macro"), atol=1e-9)
  np.testing.assert_allclose(e["rmse"], np.sqrt(np.mean((p.targets - p.scores.astype(np.float64)) ** 2)),
                             rtol=1e-6)


def test_evaluate_report_numbers(smoke):
  e, run = smoke["eval"], smoke["run"]
  p = report.load_predictions(report.predictions_path(run, "test"))
  assert {"roc_auc", "pr_auc", "rmse", "n_songs", "n_tags"} <= set(e)
  assert e["title"] == "jaxtag generated corpus, test" and e["model"] == "spectrogram" and e["step"] == 20
  _check_against_sklearn(e, p)
  # song scores are the mean of the chunk sigmoids; 3-s clips give three 1-s chunks each
  assert np.bincount(p.chunk_song).tolist() == [3] * len(p.song_ids)
  for i in range(len(p.song_ids)):
    np.testing.assert_allclose(p.scores[i], p.chunk_scores[p.chunk_song == i].mean(axis=0), rtol=1e-5)
  assert p.n_train == e["n_train"] > 0 and np.array_equal(np.diag(p.train_cooc), p.train_pos)
  out = report.report_dir(run)
  with open(os.path.join(out, "per_tag_test.csv")) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == len(p.tags) and [int(r["n_pos"]) for r in rows] == sorted(
      (int(r["n_pos"]) for r in rows), reverse=True)
  top = rows[0]
  t = list(p.tags).index(top["tag"])
  np.testing.assert_allclose(float(top["roc_auc"]), metrics.roc_auc_score(p.targets[:, t], p.scores[:, t]))
  md = open(os.path.join(out, "report_test.md")).read()
  assert md.startswith("# jaxtag generated corpus, test") and f"{100 * e['roc_auc']:.2f}" in md
  for png in ("per_tag_vs_prevalence_test.png", "pr_curves_test.png"):
    assert os.path.getsize(os.path.join(out, png)) > 5000


def test_baseline_is_a_row_evaluated_the_same_way(smoke):
  with open(report.eval_json_path(smoke["gbt"], "test")) as f:
    e = json.load(f)
  p = report.load_predictions(report.predictions_path(smoke["gbt"], "test"))
  assert e["model"] == "baseline" and e["n_train"] == smoke["eval"]["n_train"]
  assert list(p.song_ids) == list(report.load_predictions(report.predictions_path(smoke["run"], "test")).song_ids)
  _check_against_sklearn(e, p)
  assert os.path.getsize(os.path.join(report.report_dir(smoke["gbt"]), "pr_curves_test.png")) > 5000


def test_ensemble_equals_mean_of_members(smoke):
  e = evaluate.evaluate_ensemble(smoke["run"], [smoke["gbt"]], "test")   # what --ensemble runs after evaluating
  a, b = (report.load_predictions(report.predictions_path(w, "test")) for w in (smoke["run"], smoke["gbt"]))
  ens = report.load_predictions(os.path.join(report.report_dir(smoke["run"]), "ensemble", "predictions_test.npz"))
  np.testing.assert_allclose(ens.scores, (a.scores + b.scores) / 2, rtol=1e-6)
  assert e["model"] == "ensemble(spectrogram+baseline)"
  _check_against_sklearn(e, ens)


def test_analyses_on_the_smoke_run(smoke, tmp_path):
  run, gbt = smoke["run"], smoke["gbt"]
  p = report.load_predictions(report.predictions_path(run, "test"))
  pop = popularity.run(run, "test", k=3)
  top3 = np.argsort(-p.scores, axis=1, kind="stable")[:, :3]
  np.testing.assert_allclose(pop["per_tag"]["topk_rate"], [np.mean((top3 == t).any(axis=1))
                                                           for t in range(len(p.tags))])
  np.testing.assert_allclose(pop["per_tag"]["true_rate"], p.targets.mean(axis=0))
  assert os.path.getsize(os.path.join(report.report_dir(run), "popularity_test.png")) > 5000

  ex = exclusive.run([run, gbt], "test", k=3, min_prevalence=0.05)
  assert ex["pair_source"] == "never co-occur in training labels" and ex["pairs"]
  i, j = exclusive.find_pairs(p.train_pos, p.train_cooc, p.n_train, 0.05, 10)[0]
  assert p.train_cooc[i, j] == 0
  one = (p.targets[:, i] > 0) ^ (p.targets[:, j] > 0)
  kth = -np.sort(-p.scores, axis=1)[:, 2]
  both = (p.scores[one, i] >= kth[one]) & (p.scores[one, j] >= kth[one])
  first = ex["models"]["spectrogram"][0]
  assert first["n_songs"] == one.sum()
  np.testing.assert_allclose(first["both_in_top_k"], both.mean() if one.any() else np.nan)
  assert set(ex["models"]) == {"spectrogram", "baseline"}
  assert os.path.getsize(os.path.join(report.report_dir(run), "exclusive_test.png")) > 5000

  sc = scaling.run([run, gbt], "test", str(tmp_path / "scaling"))
  e = smoke["eval"]
  row = f"| Spectrogram | {e['n_train']} | {100 * e['roc_auc']:.2f}% | {100 * e['pr_auc']:.2f}% | {e['rmse']:.4f} |"
  assert sc["table"].splitlines()[2].startswith("| Baseline |") and row in sc["table"]
  assert os.path.getsize(tmp_path / "scaling" / "scaling.png") > 5000
