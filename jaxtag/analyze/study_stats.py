"""The study's statistics and outputs, from finished cells alone (no training here).

Given the cells' test predictions (``report/predictions_test.npz`` of each cell directory), the test songs'
artists and a tag -> family map, it scores the tags with at least ``min_positives`` test positives, and per
training size, overall, per family and per family kind, gives each front-end's macro ROC-AUC and the
waveform - spectrogram difference with a 95 % interval from the artist-resampling paired bootstrap
(``bootstrap``). It fits a learning curve ``metric = a + b * log10(size)`` per front-end, claims a crossover
only where the difference's interval changes sign between measured sizes, flags cells whose best validation
step lies in the last ``undertrained_fraction`` of their step cap, and writes ``study.md`` (the paper's table
layout, mean with its interval), ``study.png`` (metric vs size with interval bands, one panel per family
kind), ``curves.png`` (every cell's validation curve) and the JSON object ``study.json`` holds.
"""
from __future__ import annotations

import json
import os

import numpy as np

from jaxtag.analyze import bootstrap

A, B = "waveform", "spectrogram"


def load_cell_predictions(cell_dir: str):
  from jaxtag.evaluation import report
  return report.load_predictions(report.predictions_path(cell_dir, "test"))


def scored_tags(targets: np.ndarray, tags, min_positives: int) -> tuple[list[int], dict]:
  """Indices of the tags with >= ``min_positives`` test positives (and at least one negative); all counts."""
  pos = (np.asarray(targets) > 0.5).sum(0)
  counts = {str(t): int(p) for t, p in zip(tags, pos)}
  keep = [j for j, p in enumerate(pos) if p >= min_positives and p < len(targets)]
  return keep, counts


def tag_sets(tags, keep: list[int], families: dict, kinds: dict) -> dict[str, list[int]]:
  """"all" plus one set per family and per family kind (``kind:visible`` ...), over the scored tags."""
  sets = {"all": list(keep)}
  for j in keep:
    fam = families.get(str(tags[j]), "all")
    if fam != "all":
      sets.setdefault(fam, []).append(j)
      sets.setdefault(f"kind:{kinds.get(fam, fam)}", []).append(j)
  return sets


def under_trained(best_step: int, cap: int, fraction: float = 0.2) -> bool:
  """Whether the best validation step lies in the last ``fraction`` of the step cap (more steps might help)."""
  return cap > 0 and best_step > (1 - fraction) * cap


def fit_curve(sizes, values) -> dict | None:
  """Least squares ``value = a + b * log10(size)`` (the learning curve); None below two sizes."""
  x = np.log10(np.asarray(sizes, np.float64))
  if len(set(x)) < 2:
    return None
  b, a = np.polyfit(x, np.asarray(values, np.float64), 1)
  resid = np.asarray(values) - (a + b * x)
  return {"a": float(a), "b_per_decade": float(b), "rmse": float(np.sqrt(np.mean(resid**2)))}


def analyse(cells: list[dict], artist_of: dict, families: dict, kinds: dict, min_positives: int = 30,
            n_boot: int = 1000, seed: int = 0, undertrained_fraction: float = 0.2, baseline: dict | None = None) -> dict:
  """``cells``: rows with frontend, train_size, n_train, seed, dir, best_step, cap; ``baseline``: size -> dir.
  Returns the study's JSON object (cells, scored tags, per size and tag set: each model and the difference)."""
  preds = {c["name"]: load_cell_predictions(c["dir"]) for c in cells}
  ref = next(iter(preds.values()))
  ids = [str(i) for i in ref.song_ids]
  for name, p in preds.items():
    if [str(i) for i in p.song_ids] != ids:
      raise ValueError(f"cell {name} was tested on other songs than the others")
  targets, tags = np.asarray(ref.targets), [str(t) for t in ref.tags]
  groups = np.array([artist_of.get(i, i) for i in ids])
  keep, counts = scored_tags(targets, tags, min_positives)
  if not keep:
    keep = [j for j in range(len(tags)) if 0 < counts[tags[j]] < len(ids)]
  sets = tag_sets(tags, keep, families, kinds)
  rows = []
  for c in cells:
    rows.append({k: c[k] for k in ("name", "frontend", "train_size", "n_train", "seed", "best_step", "cap")}
                | {"test_songs": len(ids), "under_trained": under_trained(c["best_step"], c["cap"], undertrained_fraction),
                   "roc_auc": float(np.mean(bootstrap.per_tag_auc(preds[c["name"]].scores[:, keep], targets[:, keep],
                                                                    np.ones((1, len(ids))))))})
  sizes = sorted({c["n_train"] for c in cells})
  per_size = []
  for n in sizes:
    mine = {f: [preds[c["name"]].scores for c in cells if c["n_train"] == n and c["frontend"] == f] for f in (A, B)}
    entry = {"n_train": n, "seeds": {f: len(v) for f, v in mine.items()}}
    if mine[A] and mine[B]:
      entry["sets"] = bootstrap.paired_difference(mine[A], mine[B], targets, groups, sets, n_boot, seed)
    else:   # one front-end only: its own interval (a paired "difference" with itself is 0)
      f = A if mine[A] else B
      one = bootstrap.paired_difference(mine[f], mine[f], targets, groups, sets, n_boot, seed)
      entry["sets"] = {k: {**v, "b": None, "b_ci": None, "diff": None, "diff_ci": None} if f == A else
                       {**v, "a": None, "a_ci": None, "diff": None, "diff_ci": None} for k, v in one.items()}
    if baseline and n in baseline:
      p = load_cell_predictions(baseline[n])
      base = bootstrap.paired_difference([p.scores], [p.scores], targets, groups, sets, n_boot, seed)
      entry["baseline"] = {k: {"roc_auc": v["a"], "ci": v["a_ci"]} for k, v in base.items()}
    per_size.append(entry)
  curves, crossovers = {}, {}
  for name in sets:
    for key, f in (("a", A), ("b", B)):
      pts = [(e["n_train"], e["sets"][name][key]) for e in per_size if e["sets"][name][key] is not None]
      curves[f"{f}/{name}"] = fit_curve(*zip(*pts)) if len(pts) >= 2 else None
    cis = [(e["n_train"], e["sets"][name]["diff_ci"]) for e in per_size if e["sets"][name]["diff_ci"]]
    cross = bootstrap.crossover([s for s, _ in cis], [c for _, c in cis]) if cis else None
    if cross:
      cross = {"between": cross["between"], "from": A if cross["from"] == "a" else B,
               "to": A if cross["to"] == "a" else B}
    crossovers[name] = cross
  return {"cells": rows, "test_songs": len(ids), "test_artists": int(len(set(groups))),
          "min_test_positives": min_positives,
          "scored_tags": {tags[j]: counts[tags[j]] for j in keep},
          "unscored_tags": {t: c for t, c in counts.items() if tags.index(t) not in keep},
          "families": {name: [tags[j] for j in idx] for name, idx in sets.items()},
          "per_size": per_size, "learning_curves": curves, "crossover": crossovers,
          "bootstrap": {"n_boot": n_boot, "seed": seed, "unit": "artist", "level": 0.95}}


def _ci(v, ci, scale=100.0) -> str:
  return "-" if v is None else f"{scale * v:.2f} [{scale * ci[0]:.2f}, {scale * ci[1]:.2f}]"


def markdown(res: dict) -> str:
  """study.md: the paper's table (Models | train size | ROC-AUC with 95 % interval), the differences per
  size and family, the crossover verdicts, the cells and the scored tags."""
  from jaxtag.analyze import scaling
  from jaxtag.evaluation import report
  rows = []
  for e in sorted(res["per_size"], key=lambda e: -e["n_train"]):
    s = e["sets"]["all"]
    if "baseline" in e:
      rows.append(["Baseline (GBT)", scaling.size_label(e["n_train"]), _ci(e["baseline"]["all"]["roc_auc"], e["baseline"]["all"]["ci"]), ""])
    for f, key in ((A, "a"), (B, "b")):
      if s[key] is None:
        continue
      mine = [c for c in res["cells"] if c["frontend"] == f and c["n_train"] == e["n_train"]]
      seeds = np.array([c["roc_auc"] for c in mine])
      under = sum(c["under_trained"] for c in mine)
      rows.append([f.capitalize(), scaling.size_label(e["n_train"]), _ci(s[key], s[key + "_ci"]),
                   f"{len(mine)} seeds, spread {100 * seeds.std(ddof=1) if len(seeds) > 1 else 0:.2f}"
                   + (f"; {under} under-trained" if under else "")])
  out = [f"Test split: {res['test_songs']} songs, {res['test_artists']} artists; "
         f"{len(res['scored_tags'])} scored tags (>= {res['min_test_positives']} test positives). "
         f"Intervals: 95 %, paired bootstrap over artists ({res['bootstrap']['n_boot']} replicates).", "",
         report.markdown_table(["Models", "train size", "ROC AUC % [95 % CI]", "cells"], rows), ""]
  names = list(res["per_size"][0]["sets"])
  head = ["train size"] + names
  body = [[scaling.size_label(e["n_train"])] + [_ci(e["sets"][k]["diff"], e["sets"][k]["diff_ci"]) for k in names]
          for e in res["per_size"]]
  out += ["Waveform - spectrogram ROC-AUC (points, 95 % CI), overall, per family kind and per family:", "",
          report.markdown_table(head, body), ""]
  verdicts = []
  for k in names:
    c = res["crossover"].get(k)
    verdicts.append(f"- {k}: " + (f"crossover from {c['from']} to {c['to']} between {c['between'][0]} and "
                                  f"{c['between'][1]} training songs" if c else "no crossover claimed "
                                  "(the interval does not change sign inside the measured sizes)"))
  out += ["Crossover (claimed only where the difference's interval changes sign):", "", *verdicts, ""]
  fits = [f"- {k}: {v['a'] * 100:.2f} + {v['b_per_decade'] * 100:.2f} log10(size) (rmse {v['rmse'] * 100:.2f})"
          for k, v in res["learning_curves"].items() if v]
  if fits:
    out += ["Learning curves, ROC-AUC % = a + b log10(training songs):", "", *fits, ""]
  cells = [[c["frontend"], c["n_train"], c["seed"], c["test_songs"], c["best_step"], c["cap"],
            "yes" if c["under_trained"] else "", f"{100 * c['roc_auc']:.2f}"] for c in res["cells"]]
  out += ["Cells (under-trained: best validation step in the last 20 % of the cap):", "",
          report.markdown_table(["front-end", "train songs", "seed", "test songs", "best step", "step cap",
                                 "under-trained", "ROC AUC %"], cells), "",
          "Scored tags (test positives): " + ", ".join(f"{t} ({n})" for t, n in res["scored_tags"].items()), ""]
  if res["unscored_tags"]:
    out += ["Not scored (too few test positives): " + ", ".join(f"{t} ({n})" for t, n in res["unscored_tags"].items()), ""]
  return "\n".join(out)


def plot(path: str, res: dict) -> None:
  """Macro ROC-AUC vs training size per front-end with 95 % bands, one panel per family kind (or "all")."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  panels = [k for k in res["per_size"][0]["sets"] if k.startswith("kind:")] or ["all"]
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
  for ax, name in zip(axes[0], panels):
    for f, key in ((A, "a"), (B, "b")):
      pts = [(e["n_train"], e["sets"][name][key], *e["sets"][name][key + "_ci"]) for e in res["per_size"]
             if e["sets"][name][key] is not None]
      if not pts:
        continue
      x, y, lo, hi = np.array(pts, np.float64).T
      ax.plot(x, y, marker="o", label=f)
      ax.fill_between(x, lo, hi, alpha=0.2)
    base = [(e["n_train"], e["baseline"][name]["roc_auc"]) for e in res["per_size"] if "baseline" in e]
    if base:
      ax.plot(*np.array(base).T, ls="--", marker="s", color="grey", label="GBT baseline")
    ax.set_xscale("log")
    ax.set_xlabel("training songs")
    ax.set_ylabel("test macro ROC-AUC (95 % CI, artist bootstrap)")
    ax.set_title(name.replace("kind:", "") + " families" if name.startswith("kind:") else "all tags", fontsize=9)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_curves(path: str, cells: list[dict]) -> None:
  """Every cell's validation ROC-AUC against step (its learning curve), one panel per front-end."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from jaxtag.training import metrics
  fronts = sorted({c["frontend"] for c in cells})
  fig, axes = plt.subplots(1, len(fronts), figsize=(5 * len(fronts), 4), squeeze=False)
  for ax, f in zip(axes[0], fronts):
    for c in (c for c in cells if c["frontend"] == f):
      recs = [r for r in metrics.read_jsonl(os.path.join(c["dir"], "metrics.jsonl")) if "val/roc_auc" in r]
      if recs:
        ax.plot([r["step"] for r in recs], [r["val/roc_auc"] for r in recs], marker=".",
                label=f"n{c['n_train']} s{c['seed']}")
    ax.set_title(f, fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("validation ROC-AUC")
    ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write(workdir: str, res: dict, title: str = "") -> str:
  md = markdown(res)
  with open(os.path.join(workdir, "study.md"), "w") as f:
    f.write(f"# {title or 'Study: waveform vs spectrogram over training size'}\n\n{md}\n")
  with open(os.path.join(workdir, "study.json"), "w") as f:
    json.dump(res, f, indent=1)
  plot(os.path.join(workdir, "study.png"), res)
  return md
