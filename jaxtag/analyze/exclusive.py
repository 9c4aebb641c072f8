"""Mutually exclusive tags scored high together: joint prediction vs one model per tag.

The paper's per-tag GBT baseline gave high scores to both "East Coast" and "West Coast" rap, or to "Baroque
period" and "Classic period", on the same song; a model predicting all tags from one representation should do
so less. We measure it: on songs where exactly one tag of an exclusive pair is true, the rate at which both are
scored above a threshold and the rate at which both sit in the song's top-k.
"""
from __future__ import annotations

import json
import os

import numpy as np

from jaxtag.evaluation import report
from jaxtag.core import scoring
from jaxtag.core.choices import ConfigError


def find_pairs(train_pos, train_cooc, n_train: int, min_prevalence: float = 0.02, max_pairs: int = 10):
  """Tag pairs that never co-occur in training labels, each tag at least ``min_prevalence`` common.

  Ranked by the co-occurrence count expected if the tags were independent, so the pairs whose absence is
  least likely to be chance (the most clearly exclusive) come first.
  """
  pos, cooc = np.asarray(train_pos, np.float64), np.asarray(train_cooc)
  common = pos >= min_prevalence * n_train
  cand = [(pos[i] * pos[j] / n_train, i, j) for i in range(len(pos)) for j in range(i + 1, len(pos))
          if common[i] and common[j] and cooc[i, j] == 0]
  return [(i, j) for _, i, j in sorted(cand, key=lambda c: (-c[0], c[1], c[2]))[:max_pairs]]


def pair_rates(targets, scores, pairs, threshold: float = 0.5, k: int = 3) -> list[dict]:
  """Per pair, over songs with exactly one of the two tags true: both-high rates and the absent tag's score."""
  y = np.asarray(targets) >= scoring.POSITIVE_THRESHOLD
  scores = np.asarray(scores, np.float64)
  keep = ~np.isnan(scores).any(axis=1)
  y, scores = y[keep], scores[keep]
  kth = -np.sort(-scores, axis=1)[:, min(k, scores.shape[1]) - 1]   # k-th highest score per song
  out = []
  for i, j in pairs:
    one = y[:, i] ^ y[:, j]
    si, sj = scores[one, i], scores[one, j]
    absent = np.where(y[one, i], sj, si)
    n = int(one.sum())
    rate = lambda b: float(b.mean()) if n else float("nan")   # noqa: E731
    out.append({"pair": [int(i), int(j)], "n_songs": n,
                "both_above_threshold": rate((si > threshold) & (sj > threshold)),
                "both_in_top_k": rate((si >= kth[one]) & (sj >= kth[one])),
                "absent_tag_mean_score": float(absent.mean()) if n else float("nan")})
  return out


def _pairs_from_names(names, tags):
  index = {str(t): i for i, t in enumerate(tags)}
  out = []
  for spec in names:
    if ":" not in spec:
      raise ConfigError(f"--pairs={spec}: give a pair of tags as 'a:b'")
    a, b = (s.strip() for s in spec.split(":", 1))
    missing = [t for t in (a, b) if t not in index]
    if missing:
      raise ConfigError(f"--pairs={spec}: unknown tags {missing}; this run's tags are {sorted(index)}")
    out.append((index[a], index[b]))
  return out


def _model_name(workdir: str, split: str) -> str:
  try:
    with open(report.eval_json_path(workdir, split)) as f:
      return str(json.load(f).get("model", os.path.basename(workdir.rstrip("/"))))
  except FileNotFoundError:
    return os.path.basename(workdir.rstrip("/"))


def run(workdirs, split: str, pairs=(), threshold: float = 0.5, k: int = 3, min_prevalence: float = 0.02,
        max_pairs: int = 10, out_dir: str = "") -> dict:
  """Rates for every workdir side by side; pairs given as ``"a:b"`` or found in the first run's training labels."""
  from jaxtag.core import plots
  for w in workdirs:
    report.require_evaluated(w, split)
  preds = [report.load_predictions(report.predictions_path(w, split)) for w in workdirs]
  tags = preds[0].tags
  if pairs:
    idx, source = _pairs_from_names(pairs, tags), "given"
  elif preds[0].train_cooc is not None:
    idx, source = find_pairs(preds[0].train_pos, preds[0].train_cooc, preds[0].n_train, min_prevalence,
                             max_pairs), "never co-occur in training labels"
  else:
    idx = find_pairs(*report.train_label_stats(preds[0].targets), min_prevalence, max_pairs)
    source = f"never co-occur in {split} labels (no training statistics saved)"
  names = [f"{tags[i]} / {tags[j]}" for i, j in idx]
  models = {}
  for w, p in zip(workdirs, preds):
    if list(p.tags) != list(tags):
      raise ValueError(f"{w} scores other tags than {workdirs[0]}")
    name = _model_name(w, split)
    models[name if name not in models else f"{name} ({w})"] = pair_rates(p.targets, p.scores, idx, threshold, k)
  res = {"pairs": names, "pair_source": source, "threshold": threshold, "k": k, "models": models}
  out_dir = out_dir or report.report_dir(workdirs[0])
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, f"exclusive_{split}.json"), "w") as f:
    json.dump(res, f, indent=1)
  header = ["pair", "songs (one true)"] + [f"{m}: both > {threshold} %" for m in models] + \
           [f"{m}: both in top-{k} %" for m in models] + [f"{m}: absent tag's mean score" for m in models]
  body = [[n, next(iter(models.values()))[r]["n_songs"]]
          + [f"{100 * v[r]['both_above_threshold']:.1f}" for v in models.values()]
          + [f"{100 * v[r]['both_in_top_k']:.1f}" for v in models.values()]
          + [f"{v[r]['absent_tag_mean_score']:.3f}" for v in models.values()] for r, n in enumerate(names)]
  with open(os.path.join(out_dir, f"exclusive_{split}.md"), "w") as f:
    f.write(f"# Mutually exclusive pairs ({preds[0].dataset}, {split}; pairs {source})\n\n"
            + report.markdown_table(header, body))
  plots.exclusive(os.path.join(out_dir, f"exclusive_{split}.png"), names,
                  {m: [r["both_in_top_k"] for r in v] for m, v in models.items()})
  return res
