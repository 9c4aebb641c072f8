"""The paper's question in one command: waveform vs spectrogram over training-set size, with seeds.

  python -m jaxtag.study --config=configs/study.py --workdir=runs/study

``config.study`` names the front-ends, the train sizes (nested subsets of one train pool, see
``data.index.subset_train``) and the seeds; valid and test stay fixed. Every cell (front-end, size, seed)
is a normal run directory ``WORKDIR/cells/<front-end>-n<size>-s<seed>`` built from the config file's
``get_config("<front-end>,train_size=N,seed=S")``, loaded and checked as every command's config is
(``jaxtag.core.config.load``; every cell's config is checked before the first cell starts): training
resumes from its newest checkpoint, and a cell whose test evaluation is written (``study_cell.json``) is
skipped, so rerunning the command after a stop picks up exactly where it was. The per-tag GBT baseline runs
once per train size. At the end it writes ``WORKDIR/study.md`` (the seed's table, mean +- spread over seeds),
``study.json``, ``study.png`` (ROC-AUC and PR-AUC vs train size with the seed spread) and
``jaxtag.analyze scaling``'s report in ``scaling/``.

Sizes: ``"all"`` (or 0) is the whole train pool; the pool is read once at start and a size above it is
refused there, in one line, before any cell trains. Cells train with early stopping on validation under a
step cap (``train.steps``); ``study_stats`` gives the intervals (paired bootstrap over artists), the
per-family differences, the learning curves and the crossover verdict, and marks under-trained cells.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import app, flags, logging

from jaxtag.core import choices, config as config_lib

CELL_DONE = "study_cell.json"


ALL = "all"


def resolve_sizes(sizes, pool: int) -> list[int]:
  """The study's train sizes as song counts: ``"all"`` / 0 is the whole pool; a size above the pool is a
  UserError naming the pool (raised at start, before any cell trains, never mid-study)."""
  from jaxtag.core.errors import UserError
  out = []
  for n in sizes:
    if str(n).strip().lower() in (ALL, "0"):
      out.append(int(pool))
      continue
    try:
      n = int(n)
    except ValueError:
      raise UserError(f"study.train_sizes: {n!r} is not a number of songs or 'all'") from None
    if n > pool or n < 1:
      raise UserError(f"study.train_sizes: {n} is outside the train pool of {pool} songs; use a size in "
                      f"1..{pool} or 'all' for the whole pool")
    out.append(n)
  return sorted(set(out))


def cells(study, pool: int | None = None) -> list[dict]:
  """Every (front-end, train size, seed), smallest size first (the cheap cells finish first). With ``pool``
  the sizes go through ``resolve_sizes`` ("all" -> the pool)."""
  sizes = resolve_sizes(study.train_sizes, pool) if pool is not None else [int(n) for n in study.train_sizes]
  return [{"frontend": f, "train_size": int(n), "seed": int(s), "name": f"{f}-n{n}-s{s}"}
          for n in sizes for s in study.seeds for f in study.frontends]


def cell_arg(cell: dict, extra: str = "") -> str:
  return ",".join(filter(None, [cell["frontend"], f"train_size={cell['train_size']}", f"seed={cell['seed']}", extra]))


def cell_config(config_path: str, arg: str, overrides: dict | None):
  """The config file's ``get_config(arg)`` with dotted ``overrides`` (``{"data.cache_dir": "/tmp/c"}``) applied,
  checked against the config schema."""
  return config_lib.load(f"{config_path}:{arg}" if arg else config_path, overrides)


def parse_overrides(items) -> dict:
  """``--set KEY=VALUE`` items as a dict; an item without ``=`` is a one-line error."""
  bad = [kv for kv in items if "=" not in kv or not kv.split("=", 1)[0].strip()]
  if bad:
    raise choices.ConfigError(f"--set={bad[0]}: give KEY=VALUE, e.g. --set=data.cache_dir=/tmp/c")
  return dict(kv.split("=", 1) for kv in items)


class Interrupted(Exception):
  """A cell's training was stopped by a signal (preemption, Ctrl-C): nothing is marked done, the study stops."""


def _once(workdir: str, compute) -> dict:
  """A cell's result row: read from its done marker, or ``compute()``d and written atomically, so a rerun
  skips every finished cell and an interrupted one is simply computed again (its run resumes)."""
  done = os.path.join(workdir, CELL_DONE)
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f)
  row = compute()
  with open(done + ".tmp", "w") as f:
    json.dump(row, f)
  os.replace(done + ".tmp", done)
  return row


def run_cell(config, cell: dict, workdir: str) -> dict:
  """Trains (or resumes) one cell with its ``config``, evaluates it on the test split, marks it done; returns its
  test metrics."""
  from jaxtag.evaluation import evaluate
  from jaxtag.training import train

  def compute():
    t0 = time.time()
    summary = train.train_and_evaluate(config, workdir)
    if summary.get("stopped_by") not in (None, "", "early_stopping"):   # SIGTERM/SIGINT: not finished
      raise Interrupted(f"study stopped by {summary['stopped_by']} in cell {cell['name']} at step "
                        f"{summary.get('step')}; rerun the same command to resume it")
    e = evaluate.evaluate(workdir, "test")
    return {**cell, "model": cell["frontend"], "n_train": int(e["n_train"]), "roc_auc": float(e["roc_auc"]),
            "pr_auc": float(e["pr_auc"]), "rmse": float(e["rmse"]), "seconds": round(time.time() - t0, 1),
            "best_step": int(summary.get("best_step") or summary.get("step") or 0),
            "cap": int(config.train.steps), "stopped_by": summary.get("stopped_by") or ""}
  return _once(workdir, compute)


def baseline_sizes(config_path: str, extra: str = "", overrides: dict | None = None) -> list[int]:
  """The study's resolved train sizes (what ``run_baselines`` fits a GBT for)."""
  study = cell_config(config_path, extra, overrides).study
  return sorted({c["train_size"] for c in cells(study, study_data(config_path, extra, overrides)["pool"])})


def baseline_config(config_path: str, size: int, extra: str = "", overrides: dict | None = None):
  return cell_config(config_path, ",".join(filter(None, [f"train_size={size}", extra])), overrides)


def run_baselines(config_path: str, workdir: str, extra: str = "", overrides: dict | None = None) -> None:
  """Only the GBT baselines of every size (the CPU half of ``launch/study_gpu.sh``)."""
  for size in baseline_sizes(config_path, extra, overrides):
    run_baseline(baseline_config(config_path, size, extra, overrides), size,
                 os.path.join(workdir, "baseline", f"n{size}"))


def run_baseline(config, size: int, workdir: str) -> dict:
  from jaxtag.analyze import baseline

  def compute():
    e = baseline.run(config, workdir, "test")
    return {"frontend": "baseline", "model": "baseline", "train_size": size, "seed": 0,
            "n_train": int(e["n_train"]), "roc_auc": float(e["roc_auc"]), "pr_auc": float(e["pr_auc"]),
            "rmse": float(e["rmse"])}
  return _once(workdir, compute)


def aggregate(rows: list[dict]) -> list[dict]:
  """Mean and spread (sample std; 0 for one seed) per (model, train size)."""
  out = []
  for key in sorted({(r["model"], r["n_train"]) for r in rows}):
    mine = [r for r in rows if (r["model"], r["n_train"]) == key]
    agg = {"model": key[0], "n_train": key[1], "seeds": len(mine)}
    for m in ("roc_auc", "pr_auc", "rmse"):
      v = np.array([r[m] for r in mine])
      agg[m], agg[m + "_std"] = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
    out.append(agg)
  return out


def table(agg: list[dict]) -> str:
  """The seed's layout (Models | train size | ROC AUC | PR AUC | sqrt(MSE)), each cell mean +- std over seeds."""
  from jaxtag.evaluation import report
  from jaxtag.analyze import scaling
  body = [[a["model"].capitalize(), scaling.size_label(a["n_train"]),
           f"{100 * a['roc_auc']:.2f} ± {100 * a['roc_auc_std']:.2f}%",
           f"{100 * a['pr_auc']:.2f} ± {100 * a['pr_auc_std']:.2f}%",
           f"{a['rmse']:.4f} ± {a['rmse_std']:.4f}"] for a in scaling.sort_rows(agg)]
  return report.markdown_table(["Models", "train size", "ROC AUC", "PR AUC", "sqrt(MSE)"], body)


def plot(path: str, agg: list[dict], title: str = "") -> None:
  from jaxtag.core import plots   # the headless backend and the readable log axis
  plt = plots.plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, (m, name) in zip(axes, (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"))):
    for model in sorted({a["model"] for a in agg}):
      pts = sorted((a["n_train"], a[m], a[m + "_std"]) for a in agg if a["model"] == model)
      x, y, s = np.array(pts, np.float64).T
      ax.errorbar(x, y, yerr=s, marker="o", capsize=3, label=model, ls="--" if model == "baseline" else "-")
    plots.log_axis(ax, "x")
    ax.set_xlabel("training songs")
    ax.set_ylabel(f"test {name} (mean ± std over seeds)")
  axes[0].legend(fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def study_data(config_path: str, extra: str, overrides: dict | None) -> dict:
  """The train pool's size, the test songs' artists and the tag families, read once before any cell runs
  (for a rendered corpus this is where it is made)."""
  from jaxtag.data import index as data_index
  config = cell_config(config_path, ",".join(filter(None, [extra, "train_size=0"])), overrides)
  idx = data_index.load_songs(config.data)
  test = idx.split("test")
  return {"pool": int(idx.train_pool), "artist_of": {str(s.id): str(s.artist or s.id) for s in test},
          "families": data_index.tag_families(config.data, idx.tags), "kinds": data_index.family_kinds(config.data),
          "title": config.data.get("dataset_title", "") or config.data.dataset}


def copy_cell(cell_dir: str, dest: str) -> None:
  """A finished cell's small results (done marker, summary, metrics, test eval and predictions) into
  ``dest`` (e.g. the lent machine's $OUT), so they survive a run cut short."""
  import shutil
  from jaxtag.evaluation import report
  os.makedirs(dest, exist_ok=True)
  for src in (os.path.join(cell_dir, CELL_DONE), os.path.join(cell_dir, "summary.json"),
              os.path.join(cell_dir, "metrics.jsonl"), report.eval_json_path(cell_dir, "test"),
              report.predictions_path(cell_dir, "test")):
    if os.path.exists(src):
      shutil.copy2(src, os.path.join(dest, os.path.basename(src)))


def run(config_path: str, workdir: str, extra: str = "", overrides: dict | None = None, copy_to: str = "",
        baseline: bool = True) -> dict:
  """Runs every missing cell (and baseline), then writes the table, the figures and the statistics.
  ``baseline=False`` runs no GBT but reports the finished ones (``launch/study_gpu.sh`` fits them on the CPU
  cores in a second process while the GPU trains, then reruns the study to write the final tables)."""
  from jaxtag.analyze import scaling, study_stats
  study = cell_config(config_path, extra, overrides).study
  if not (study.frontends and study.train_sizes and study.seeds):
    raise choices.ConfigError(f"--config={config_path}: the study has no cells (study.frontends, "
                              "study.train_sizes and study.seeds must each list at least one)")
  data = study_data(config_path, extra, overrides)
  todo = cells(study, data["pool"])          # sizes checked against the pool here, before any training
  sizes = sorted({c["train_size"] for c in todo})
  # every cell's config is checked before the first one trains (a mistake in the last cell fails now)
  configs = [cell_config(config_path, cell_arg(cell, extra), overrides) for cell in todo]
  logging.info("study: train pool %d songs, sizes %s, %d cells", data["pool"], sizes, len(todo))
  rows, t0 = [], time.time()
  for k, (cell, config) in enumerate(zip(todo, configs)):
    cdir = os.path.join(workdir, "cells", cell["name"])
    was_done = os.path.exists(os.path.join(cdir, CELL_DONE))
    rows.append({**run_cell(config, cell, cdir), "dir": cdir})
    if copy_to:
      copy_cell(cdir, os.path.join(copy_to, "cells", cell["name"]))
    if not was_done:
      rate = (time.time() - t0) / (k + 1)
      logging.info("study: cell %s done (%d/%d), ETA %.0f s", cell["name"], k + 1, len(todo),
                   rate * (len(todo) - k - 1))
  baseline_dirs = {}
  base_rows = []
  if study.baseline:
    for size in sizes:
      bdir = os.path.join(workdir, "baseline", f"n{size}")
      if not baseline and not os.path.exists(os.path.join(bdir, CELL_DONE)):
        continue
      base_rows.append(run_baseline(baseline_config(config_path, size, extra, overrides), size, bdir))
      baseline_dirs[base_rows[-1]["n_train"]] = bdir
  for r in rows:   # cells finished before the cap / best step were recorded: read them from summary.json
    if "best_step" not in r:
      with open(os.path.join(r["dir"], "summary.json")) as f:
        summ = json.load(f)
      r.update(best_step=int(summ.get("best_step") or summ.get("step") or 0),
               cap=int(cell_config(config_path, cell_arg(r, extra), overrides).train.steps))
  stats = study_stats.analyse(rows, data["artist_of"], data["families"], data["kinds"],
                              int(study.get("min_test_positives", 30)), int(study.get("n_boot", 1000)), 0,
                              float(study.get("undertrained_fraction", 0.2)), baseline_dirs)
  agg = aggregate(rows + base_rows)
  title = (f"Study: waveform vs spectrogram over training size ({data['title']}, test split, "
           f"{len(study.seeds)} seeds)")
  md = study_stats.write(workdir, {**stats, "aggregate": agg}, title)
  study_stats.plot_curves(os.path.join(workdir, "curves.png"), rows)
  dirs = [r["dir"] for r in rows] + ([baseline_dirs[max(baseline_dirs)]] if baseline_dirs else [])
  scaling_result = scaling.run(dirs, "test", os.path.join(workdir, "scaling"))
  result = {**stats, "rows": [{k: v for k, v in r.items() if k != "dir"} for r in rows + base_rows],
            "aggregate": agg, "table": md, "train_pool": data["pool"],
            "crossover_train_size": scaling_result["crossover_train_size"]}
  with open(os.path.join(workdir, "study.json"), "w") as f:
    json.dump(result, f, indent=1)
  if copy_to:
    import shutil
    for name in ("study.md", "study.json", "study.png", "curves.png"):
      shutil.copy2(os.path.join(workdir, name), os.path.join(copy_to, name))
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config_path, _, extra = FLAGS.config.partition(":")
  overrides = parse_overrides(FLAGS.set)
  if os.path.isfile(FLAGS.workdir):
    raise choices.ConfigError(f"--workdir={FLAGS.workdir} is a file; give a directory (new, or a study to resume)")
  try:
    res = run(config_path, FLAGS.workdir, extra, overrides, FLAGS.copy_to or os.environ.get("OUT", "") if
              FLAGS.copy_to != "-" else "", FLAGS.baseline)
  except Interrupted as e:
    logging.warning("%s", e)
    return
  print(res["table"])
  print(f"figure: {os.path.join(FLAGS.workdir, 'study.png')}; crossover: {res['crossover'].get('all')}")


def define_flags():
  """Flags exist only when run as a program, so that tools can be imported together (tests)."""
  flags.DEFINE_string("config", None, "Study config file (optionally :args), e.g. configs/study.py:testbed.")
  flags.DEFINE_string("workdir", None, "Study directory (one run directory per cell under cells/).")
  flags.DEFINE_multi_string("set", [], "KEY=VALUE config overrides for every cell, e.g. data.cache_dir=/tmp/c.")
  flags.DEFINE_bool("baseline", True, "Fit the per-size GBT baselines (false: report only finished ones).")
  flags.DEFINE_string("copy_to", "", "Copy each finished cell's results here as it finishes (default $OUT if "
                      "set; '-' for never).")


FLAGS = flags.FLAGS


if __name__ == "__main__":   # grain workers re-import __main__
  from jaxtag.core import cli
  cli.run(main, define_flags, required=("config", "workdir"))
