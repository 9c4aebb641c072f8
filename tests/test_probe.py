"""The probe protocol: its selection and metrics equal scikit-learn's on the same embeddings, and the
``analyze probe`` command writes evaluate's report files with one table row per backbone."""
import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from conftest import ROOT
from jaxtag.core import scoring
from jaxtag.analyze import probe


def _embeddings(seed=0):
  """Songs of 3 latent styles: embeddings noisy around a style centre, tags partly determined by the style."""
  rng = np.random.default_rng(seed)
  centres, tag_of_style = rng.standard_normal((3, 16)), rng.random((3, 5)) < 0.5
  emb, targets = {}, {}
  for split, n in (("train", 120), ("valid", 40), ("test", 40)):
    style = rng.integers(0, 3, n)
    emb[split] = (centres[style] + 0.7 * rng.standard_normal((n, 16))).astype(np.float32) * 3 + 1
    flip = rng.random((n, 5)) < 0.1
    targets[split] = (tag_of_style[style] ^ flip).astype(np.float32)
  return emb, targets


def test_probe_selection_and_metrics_equal_sklearn():
  emb, targets = _embeddings()
  res = probe.fit_probe(emb, targets, "logreg")
  mean, std = emb["train"].mean(0), emb["train"].std(0)
  z = {s: (emb[s] - mean) / std for s in emb}
  best = None
  for c in probe.C_GRID:
    models = [LogisticRegression(C=c, max_iter=2000, random_state=0).fit(z["train"], targets["train"][:, t])
              for t in range(5)]
    valid = np.stack([m.predict_proba(z["valid"])[:, 1] for m in models], 1)
    auc = roc_auc_score(targets["valid"], valid, average="macro")
    assert res["valid_roc_auc"][c] == pytest.approx(auc, abs=1e-12)
    if best is None or auc > best[0]:
      best = (auc, c, np.stack([m.predict_proba(z["test"])[:, 1] for m in models], 1))
  assert res["selected"] == best[1]
  np.testing.assert_allclose(res["test_scores"], best[2], rtol=1e-5, atol=1e-6)
  mine = scoring.macro_scores(targets["test"], res["test_scores"])
  assert mine["roc_auc"] == pytest.approx(roc_auc_score(targets["test"], res["test_scores"], average="macro"),
                                          abs=1e-12)
  assert mine["pr_auc"] == pytest.approx(average_precision_score(targets["test"], res["test_scores"],
                                                                 average="macro"), abs=1e-12)
  assert mine["roc_auc"] > 0.65   # above chance: the styles are recoverable from the embeddings


def test_mlp_probe_and_constant_tags():
  emb, targets = _embeddings(1)
  targets["train"][:, 4] = 0      # one class in train: scored with its prevalence
  res = probe.fit_probe(emb, targets, "mlp")
  assert res["selected"] in probe.ALPHA_GRID and res["constant_tags"] == [4]
  assert scoring.macro_scores(targets["test"][:, :4], res["test_scores"][:, :4])["roc_auc"] > 0.7
  with pytest.raises(ValueError, match="valid: 'logreg', 'mlp'"):
    probe.fit_probe(emb, targets, "svm")


def test_probe_command_writes_evaluate_reports(tmp_path, corpus_cache):
  from configs import smoke
  from jaxtag.training import checkpoint
  config = smoke.get_config(None)
  config.data.chunk_seconds = 1.0
  model = checkpoint.new_model(config, 46, seed=0)     # an untrained backbone is still a backbone
  from jaxtag.data import generate
  checkpoint.save_inference_checkpoint(str(tmp_path / "W"), config, model, list(generate.TAGS))
  cmd = [sys.executable, "-m", "jaxtag.analyze", "probe", str(tmp_path / "W"), f"--config={ROOT}/configs/smoke.py",
         f"--config.data.cache_dir={corpus_cache}", "--config.data.dataset=generated",
         "--config.data.dataset_title=jaxtag generated corpus", "--config.data.generated_n=64",
         "--config.data.generated_clip_seconds=2", "--config.data.num_workers=0", "--config.data.read_threads=1",
         "--json"]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(proc.stdout.strip().splitlines()[-1])
  row, = res["rows"]
  out = tmp_path / "W" / "report" / "probe" / "jaxtag_generated_corpus"
  for name in ("eval_test.json", "per_tag_test.csv", "report_test.md", "predictions_test.npz",
               "pr_curves_test.png"):
    assert (out / name).exists(), name
  assert row["embedding_dim"] == config.model.backend_units and 0.0 <= row["roc_auc"] <= 1.0
  assert row["selected"] in probe.C_GRID and "| spectrogram (logreg probe) |" in res["table"]
