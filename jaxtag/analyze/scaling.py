"""Metric against training-set size, waveform vs spectrogram: the shape of the seed's 100k/500k/1M table.

The paper fits a line over log(size) per front-end; spectrogram wins at 100k and waveform at 1M. We fit the same
line per model family and report where the two fits cross, so a sweep on any corpus shows whether (and where)
the ranking flips.
"""
from __future__ import annotations

import json
import os

import numpy as np

from jaxtag.evaluation import report

METRICS = ("roc_auc", "pr_auc", "rmse")
_ORDER = {"baseline": 0, "waveform": 1, "spectrogram": 2}


def load_runs(workdirs, split: str = "test") -> list[dict]:
  """One row per workdir from its ``eval_<split>.json``: model, training songs and the three metrics."""
  rows = []
  for w in workdirs:
    report.require_evaluated(w, split, saved="eval")
  for w in workdirs:
    with open(report.eval_json_path(w, split)) as f:
      e = json.load(f)
    rows.append({"workdir": w, "model": str(e.get("model", "?")), "n_train": int(e["n_train"]),
                 "title": e.get("title", ""), **{k: float(e[k]) for k in METRICS}})
  return rows


def size_label(n: int) -> str:
  """1200000 -> '1.2M', 500000 -> '500k', 850 -> '850' (the seed's train-size column)."""
  for unit, div in (("M", 1e6), ("k", 1e3)):
    if n >= div:
      return f"{n / div:.3g}{unit}"
  return str(n)


def sort_rows(rows: list[dict]) -> list[dict]:
  """Baseline first, then largest training set first, waveform before spectrogram (the seed's order)."""
  return sorted(rows, key=lambda r: (r["model"] != "baseline", -r["n_train"], _ORDER.get(r["model"], 3),
                                     r["model"]))


def table(rows: list[dict]) -> str:
  """The seed's table: Models | train size | ROC AUC | PR AUC | sqrt(MSE)."""
  body = [[r["model"].capitalize(), size_label(r["n_train"]), f"{100 * r['roc_auc']:.2f}%",
           f"{100 * r['pr_auc']:.2f}%", f"{r['rmse']:.4f}"] for r in sort_rows(rows)]
  return report.markdown_table(["Models", "train size", "ROC AUC", "PR AUC", "sqrt(MSE)"], body)


def fit(rows: list[dict]) -> dict:
  """Least-squares line ``metric = slope * log10(n_train) + intercept`` per (model, metric), >= 2 sizes."""
  fits = {}
  for model in {r["model"] for r in rows}:
    mine = [r for r in rows if r["model"] == model]
    x = np.log10([r["n_train"] for r in mine])
    if len(set(x)) < 2:
      continue
    for key in METRICS:
      slope, icpt = np.polyfit(x, [r[key] for r in mine], 1)
      fits[(model, key)] = (float(slope), float(icpt))
  return fits


def crossover(fits: dict, a: str = "waveform", b: str = "spectrogram") -> dict:
  """Training size at which the fits of ``a`` and ``b`` cross, per metric (None if parallel or missing)."""
  out = {}
  for key in METRICS:
    if (a, key) in fits and (b, key) in fits:
      (sa, ia), (sb, ib) = fits[(a, key)], fits[(b, key)]
      out[key] = float(10 ** ((ib - ia) / (sa - sb))) if sa != sb else None
  return out


def run(workdirs, split: str, out_dir: str) -> dict:
  """Writes ``scaling.md``, ``scaling.json`` and ``scaling.png`` to ``out_dir``; returns the JSON object."""
  from jaxtag.core import plots
  rows = load_runs(workdirs, split)
  fits = fit(rows)
  os.makedirs(out_dir, exist_ok=True)
  md = table(rows)
  with open(os.path.join(out_dir, "scaling.md"), "w") as f:
    f.write(f"# Scaling ({rows[0]['title'] or split})\n\n" + md)
  result = {"rows": sort_rows(rows), "fits": {f"{m}/{k}": v for (m, k), v in fits.items()},
            "crossover_train_size": crossover(fits), "table": md}
  with open(os.path.join(out_dir, "scaling.json"), "w") as f:
    json.dump(result, f, indent=1)
  plots.scaling(os.path.join(out_dir, "scaling.png"), rows, fits)
  return result
