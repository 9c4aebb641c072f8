"""``python -m jaxtag.analyze probe W [W2 ...] --config=C``: compare frozen backbones on your data (MARBLE/JukeMIR).

Per backbone W (any jaxtag run, trained or imported): each song's embedding is the mean over all its
non-overlapping chunks of the penultimate layer (``model.embed``, inference mode), the chunks cut at W's own
sample rate and chunk length (its preprocessing contract) from the data set of ``--config``. Features are
standardised on train; one L2-regularised logistic regression per tag (or, with ``--probe_model=mlp``, one
1-hidden-layer MLP over all tags) is fit on train for each strength of the grid; the fit with the best macro
ROC-AUC on valid is scored on test (valid only selects; nothing is refit on train + valid). Scores go through ``jaxtag.evaluation.report`` as for ``evaluate``: ``W/report/probe/<dataset>/`` holds predictions, eval JSON,
per-tag tables and plots; the printed table has one row per backbone.

A tag with a single class in train cannot be fit: it is scored with its train prevalence (a constant, so it
scores 0.5 ROC-AUC where test has both classes) and listed in ``constant_tags``.
"""
from __future__ import annotations

import functools
import os

import numpy as np
from absl import logging

from jaxtag.evaluation import report
from jaxtag.core import scoring
from jaxtag.core.choices import ConfigError

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)            # inverse L2 strength of the logistic regression
ALPHA_GRID = (1e-4, 1e-3, 1e-2, 1e-1)              # L2 penalty of the MLP
MLP_HIDDEN = 512


def song_embeddings(workdir: str, data_cfg, splits=("train", "valid", "test"), batch: int = 64):
  """``({split: (songs, D)}, {split: (songs, T) targets}, tags, info)``: mean chunk embedding per song."""
  from jaxtag.training import checkpoint, step as step_lib, train_state
  from jaxtag.serving import inference
  from jaxtag.core import sharding
  from jaxtag.data import index as index_lib
  config, _, model, step = checkpoint.load_for_inference(workdir)
  data_cfg = data_cfg.copy_and_resolve_references()
  data_cfg.sample_rate, data_cfg.chunk_seconds = config.data.sample_rate, config.data.chunk_seconds
  idx = index_lib.load_songs(data_cfg)
  mesh = sharding.make_mesh()
  graphdef, params, rest = step_lib.split_model(model)
  params, rest = train_state.on_mesh((params, rest), mesh)
  fn = inference.make_eval_fn(graphdef, mesh, output="embed")
  batch = -(-batch // mesh.devices.size) * mesh.devices.size
  emb, targets, ids = {}, {}, {}
  for split in splits:
    songs = idx.split(split)
    if not songs:
      raise ValueError(f"{report.title(data_cfg, split)} has no songs: the probe needs train, valid and test")
    chunks, chunk_song, _ = inference.predict_on_mesh(fn, params, rest, data_cfg, songs, global_batch=batch,
                                                      mesh=mesh)
    emb[split] = scoring.aggregate_chunks(chunks, chunk_song, len(songs))
    targets[split] = np.stack([s.targets for s in songs]).astype(np.float32)
    ids[split] = np.array([str(s.id) for s in songs])
    logging.info("probe %s: %s %d songs, %d chunks, embedding %d", workdir, split, len(songs), len(chunk_song),
                 emb[split].shape[1])
  info = {"model": str(config.model.name), "step": int(step), "ids": ids, "data_cfg": data_cfg}
  return emb, targets, list(idx.tags), info


def _standardise(train, *others):
  mean, std = train.mean(axis=0), train.std(axis=0)
  std = np.where(std > 1e-8, std, 1.0)
  return [(x - mean) / std for x in (train, *others)]


def _fit_logreg(x, y, c: float, seed: int):
  from sklearn.linear_model import LogisticRegression
  models = []
  for t in range(y.shape[1]):
    yt = (y[:, t] >= 0.5).astype(int)
    if yt.min() == yt.max():
      models.append(float(yt.mean()))   # one class in train: constant score
    else:
      models.append(LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, yt))
  return models


def _predict_logreg(models, x):
  return np.stack([np.full(len(x), m) if isinstance(m, float) else m.predict_proba(x)[:, 1]
                   for m in models], axis=1)


def _fit_mlp(x, y, alpha: float, seed: int):
  from sklearn.neural_network import MLPClassifier
  yb = (y >= 0.5).astype(int)
  return MLPClassifier((MLP_HIDDEN,), alpha=alpha, max_iter=300, early_stopping=False,
                       random_state=seed).fit(x, yb)


def fit_probe(emb: dict, targets: dict, kind: str = "logreg", seed: int = 0) -> dict:
  """Fits on train for each strength of the grid, selects on valid macro ROC-AUC, scores test.

  Returns ``{"test_scores", "valid_roc_auc" (per strength), "selected", "constant_tags"}``. Songs whose
  embedding is NaN (no readable chunk) are dropped from train and valid and keep NaN scores on test
  (``scoring.macro_scores`` then counts them as missing)."""
  if kind not in ("logreg", "mlp"):
    raise ValueError(f"unknown probe model {kind!r}; valid: 'logreg', 'mlp'")
  ok = {s: ~np.isnan(emb[s]).any(axis=1) for s in emb}
  x_tr, x_va, x_te = _standardise(emb["train"][ok["train"]], emb["valid"][ok["valid"]],
                                  np.nan_to_num(emb["test"]))
  y_tr, y_va = targets["train"][ok["train"]], targets["valid"][ok["valid"]]
  grid = C_GRID if kind == "logreg" else ALPHA_GRID
  fit = functools.partial(_fit_logreg if kind == "logreg" else _fit_mlp, seed=seed)
  predict = _predict_logreg if kind == "logreg" else (lambda m, x: m.predict_proba(x))
  best, valid_auc = None, {}
  for strength in grid:
    model = fit(x_tr, y_tr, strength)
    auc = scoring.macro_scores(y_va, predict(model, x_va))["roc_auc"]
    valid_auc[strength] = auc
    if best is None or (np.isfinite(auc) and (not np.isfinite(best[0]) or auc > best[0])):
      best = (auc, strength, model)
  scores = predict(best[2], x_te).astype(np.float32)
  scores[~ok["test"]] = np.nan
  constant = [t for t in range(y_tr.shape[1]) if (y_tr[:, t] >= 0.5).min() == (y_tr[:, t] >= 0.5).max()]
  return {"test_scores": scores, "valid_roc_auc": valid_auc, "selected": best[1], "constant_tags": constant}


def out_dir(workdir: str, data_cfg, kind: str) -> str:
  name = report.dataset_name(data_cfg).replace(" ", "_").replace("/", "_")
  return os.path.join(report.report_dir(workdir), "probe" if kind == "logreg" else "probe_mlp", name)


def probe_one(workdir: str, data_cfg, kind: str = "logreg", batch: int = 64, seed: int = 0) -> dict:
  """Embeds, fits, scores and writes the report of one backbone; returns its eval JSON object."""
  emb, targets, tags, info = song_embeddings(workdir, data_cfg, batch=batch)
  res = fit_probe(emb, targets, kind, seed)
  cfg = info["data_cfg"]
  stats = report.train_label_stats(targets["train"])
  p = report.Predictions(song_ids=info["ids"]["test"], scores=res["test_scores"], targets=targets["test"],
                         tags=np.array(tags, str), dataset=report.dataset_name(cfg), split="test", step=info["step"],
                         train_pos=stats[0], train_cooc=stats[1], n_train=stats[2])
  out = out_dir(workdir, cfg, kind)
  report.save_predictions(os.path.join(out, "predictions_test.npz"), p)
  meta = {"title": report.title(cfg, "test") + f" ({kind} probe)", "model": f"{info['model']} ({kind} probe)",
          "checkpoint": "best", "workdir": str(workdir), "probe": kind, "selected": res["selected"],
          "valid_roc_auc": {str(k): v for k, v in res["valid_roc_auc"].items()},
          "constant_tags": [tags[t] for t in res["constant_tags"]], "embedding_dim": int(emb["train"].shape[1])}
  return report.write_report(out, p, meta)


def run(workdirs: list[str], config, kind: str = "logreg", batch: int = 64) -> dict:
  """One row per backbone: ``{"rows": [...], "table": markdown}``."""
  if config is None:
    raise ConfigError("probe needs --config=CONFIG naming the data set (e.g. configs/finetune.py with "
                     "--config.data.manifest=...)")
  rows = [probe_one(w, config.data, kind, batch or int(config.eval.batch_size), int(config.seed))
          for w in workdirs]
  table = report.markdown_table(
      ["backbone", "model", "dim", "selected", "ROC AUC %", "PR AUC %", "sqrt(MSE)", "songs", "tags"],
      [[r["workdir"], r["model"], r["embedding_dim"], r["selected"], f"{100 * r['roc_auc']:.2f}",
        f"{100 * r['pr_auc']:.2f}", f"{r['rmse']:.4f}", r["n_songs"], r["n_tags"]] for r in rows])
  return {"rows": rows, "table": table}
