"""Side-by-side table and plot of several runs' ``analyze robustness`` reports.

``python -m benchmarks.robustness_summary --out=DIR RUN [RUN ...]`` reads ``DIR/RUN/robustness_test.json``
(written by ``python -m jaxtag.analyze robustness RUNDIR --out=DIR``) and writes ``DIR/summary.md``,
``DIR/summary.json`` and ``DIR/robustness.png``: ROC-AUC and PR-AUC per perturbation and strength, one column
(one line) per run, plus each run's mean change in ROC-AUC per perturbation kind. Used by
``benchmarks/robustness_smoke.sh``.
"""
from __future__ import annotations

import json
import os

from absl import app, flags

flags.DEFINE_string("out", "benchmarks/results/robustness_smoke", "Folder holding RUN/robustness_<split>.json.")
flags.DEFINE_string("split", "test", "Split of the reports.")
FLAGS = flags.FLAGS


def load(out: str, runs: list[str], split: str) -> dict:
  results = {}
  for run in runs:
    path = os.path.join(out, run, f"robustness_{split}.json")
    if not os.path.exists(path):
      raise app.UsageError(f"{path} is missing: run `python -m jaxtag.analyze robustness RUNDIR --out={out}`")
    with open(path) as f:
      results[run] = json.load(f)
  return results


def table(results: dict) -> tuple[list[dict], str, dict]:
  """Rows keyed by (kind, strength) with every run's scores, the markdown of both metrics, and the mean
  change in ROC-AUC per kind and run."""
  runs = list(results)
  first = results[runs[0]]
  keys = [("clean", None, "", None)] + [(r["kind"], r["strength"], r["unit"], r.get("kbps")) for r in first["rows"]]
  rows = []
  for kind, strength, unit, kbps in keys:
    row = {"kind": kind, "strength": strength, "unit": unit, "kbps": kbps}
    for run in runs:
      res = results[run]
      hit = res["clean"] if kind == "clean" else next(
          (r for r in res["rows"] if r["kind"] == kind and r["strength"] == strength), None)
      row[run] = None if hit is None else {"roc_auc": hit["roc_auc"], "pr_auc": hit["pr_auc"]}
    rows.append(row)

  def fmt(v):
    return "-" if v is None else f"{100 * v:.1f}"

  head = "| perturbation | strength | " + " | ".join(runs) + " |"
  sep = "|---|---|" + "---:|" * len(runs)
  md = ["Runs: " + ", ".join(f"`{r}` = {results[r]['model']} step {results[r]['step']}" for r in runs), ""]
  for metric, title in (("roc_auc", "ROC-AUC (%)"), ("pr_auc", "PR-AUC (%)")):
    md += [f"**{title}**, test split, {first['protocol']} protocol", "", head, sep]
    for row in rows:
      strength = "-" if row["strength"] is None else f"{row['strength']:g} {row['unit']}" + (
          f" ({row['kbps']:g} kbps)" if row["kbps"] else "")
      md.append(f"| {row['kind']} | {strength} | " + " | ".join(
          fmt(row[r][metric] if row[r] else None) for r in runs) + " |")
    md.append("")
  md += ["**Mean change in ROC-AUC against clean (points), per perturbation over its strengths**", "", head, sep]
  kinds = list(dict.fromkeys(r["kind"] for r in rows if r["kind"] != "clean"))
  means = {}
  for kind in kinds:
    cells = []
    for run in runs:
      clean = results[run]["clean"]["roc_auc"]
      vals = [row[run]["roc_auc"] - clean for row in rows if row["kind"] == kind and row[run]]
      means.setdefault(kind, {})[run] = sum(vals) / len(vals) if vals else None
      cells.append("-" if not vals else f"{100 * means[kind][run]:+.1f}")
    md.append(f"| {kind} | all | " + " | ".join(cells) + " |")
  return rows, "\n".join(md) + "\n", means


def plot(path: str, results: dict, rows: list[dict]) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  runs = list(results)
  kinds = list(dict.fromkeys(r["kind"] for r in rows if r["kind"] != "clean"))
  fig, axes = plt.subplots(2, len(kinds), figsize=(3.2 * len(kinds), 6), squeeze=False)
  for j, kind in enumerate(kinds):
    sub = [r for r in rows if r["kind"] == kind]
    for i, metric in enumerate(("roc_auc", "pr_auc")):
      ax = axes[i, j]
      for k, run in enumerate(runs):
        xs = [r["strength"] for r in sub if r[run]]
        ys = [100 * r[run][metric] for r in sub if r[run]]
        line, = ax.plot(xs, ys, "o-", label=run, color=f"C{k}")
        ax.axhline(100 * results[run]["clean"][metric], color=line.get_color(), ls=":", lw=1)
      ax.set_xlabel(f"{kind} ({sub[0]['unit']})")
      ax.set_ylabel(("ROC-AUC" if metric == "roc_auc" else "PR-AUC") + " (%)")
      ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=8)
  fig.suptitle("test scores under perturbation (dotted: each run's clean score)")
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def main(argv):
  runs = argv[1:]
  if not runs:
    raise app.UsageError("give the run names (folders under --out)")
  results = load(FLAGS.out, runs, FLAGS.split)
  rows, md, means = table(results)
  with open(os.path.join(FLAGS.out, "summary.md"), "w") as f:
    f.write(md)
  with open(os.path.join(FLAGS.out, "summary.json"), "w") as f:
    json.dump({"runs": {r: {"workdir": results[r]["workdir"], "model": results[r]["model"],
                            "step": results[r]["step"], "clean": results[r]["clean"]} for r in runs},
               "rows": rows, "mean_roc_change": means}, f, indent=1)
  plot(os.path.join(FLAGS.out, "robustness.png"), results, rows)
  print(md)


if __name__ == "__main__":
  app.run(main)
