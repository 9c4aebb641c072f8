"""The bias towards popular tags ("lead vocals", "English", "male vocals" in the paper), measured.

For each tag: the fraction of songs with the tag in the model's top-k against the fraction where it is true.
A model biased towards popular tags puts them in its top-k more often than they are true, and its top-k rate
follows prevalence more steeply; the Spearman correlation and the share of top-k slots taken by the most
popular tenth of the tags say how much.
"""
from __future__ import annotations

import json
import os

import numpy as np
from scipy import stats

from jaxtag.evaluation import report
from jaxtag.core import scoring


def top_k_rate(scores, k: int) -> np.ndarray:
  """Fraction of songs whose k highest-scored tags include each tag."""
  scores = np.asarray(scores)
  top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
  return np.bincount(top.ravel(), minlength=scores.shape[1]) / len(scores)


def popularity(targets, scores, tags, k: int = 0, n_list: int = 10) -> dict:
  """Top-k rate against true rate per tag. ``k`` = 0 uses the mean number of true tags per song (at least 1)."""
  y = np.asarray(targets) >= scoring.POSITIVE_THRESHOLD
  keep = ~np.isnan(np.asarray(scores, np.float64)).any(axis=1)
  y, scores = y[keep], np.asarray(scores)[keep]
  k = k or max(1, int(round(y.sum(axis=1).mean())))
  true_rate, pred_rate = y.mean(axis=0), top_k_rate(scores, k)
  rho = stats.spearmanr(true_rate, pred_rate).statistic if np.ptp(true_rate) and np.ptp(pred_rate) else np.nan
  over = [t for t in np.argsort(-(pred_rate - true_rate), kind="stable")[:n_list] if pred_rate[t] > true_rate[t]]
  n_pop = max(1, len(tags) // 10)
  popular = np.argsort(-true_rate, kind="stable")[:n_pop]
  return {
      "k": k, "n_songs": int(len(y)), "spearman": float(rho),
      "popular_tags": [str(tags[t]) for t in popular],
      "popular_share_true": float(y[:, popular].sum() / max(y.sum(), 1)),
      "popular_share_topk": float(pred_rate[popular].sum() / k),
      "over_predicted": [{"tag": str(tags[t]), "true_rate": float(true_rate[t]), "topk_rate": float(pred_rate[t])}
                         for t in over],
      "per_tag": {"tags": [str(t) for t in tags], "true_rate": true_rate.tolist(), "topk_rate": pred_rate.tolist()},
  }


def run(workdir: str, split: str, k: int, out_dir: str = "") -> dict:
  """Writes ``popularity_<split>.{json,md,png}`` next to the evaluation report; returns the JSON object."""
  from jaxtag.core import plots
  report.require_evaluated(workdir, split)
  p = report.load_predictions(report.predictions_path(workdir, split))
  res = popularity(p.targets, p.scores, p.tags, k)
  out_dir = out_dir or report.report_dir(workdir)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, f"popularity_{split}.json"), "w") as f:
    json.dump(res, f, indent=1)
  md = (f"# Popular-tag bias ({p.dataset}, {split}, top-{res['k']})\n\n"
        f"Spearman(true rate, top-{res['k']} rate) = {res['spearman']:.3f}; the {len(res['popular_tags'])} most "
        f"popular tags hold {100 * res['popular_share_true']:.1f}% of true labels and "
        f"{100 * res['popular_share_topk']:.1f}% of top-{res['k']} slots.\n\n## Most over-predicted\n\n"
        + report.markdown_table(["tag", "true %", f"top-{res['k']} %"],
                                [[o["tag"], f"{100 * o['true_rate']:.1f}", f"{100 * o['topk_rate']:.1f}"]
                                 for o in res["over_predicted"]]))
  with open(os.path.join(out_dir, f"popularity_{split}.md"), "w") as f:
    f.write(md)
  plots.popularity(os.path.join(out_dir, f"popularity_{split}.png"), p.tags,
                   np.array(res["per_tag"]["true_rate"]), np.array(res["per_tag"]["topk_rate"]), res["k"])
  return res
