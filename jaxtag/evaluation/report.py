"""Predictions files and the evaluation report built from them.

``W/report/predictions_<split>.npz`` holds song-level scores and targets so that ensembles, ``analyze`` and the
baseline need no model re-run. ``W/report/eval_<split>.json`` holds the headline numbers plus what
``analyze scaling`` needs (model name, number of training songs). Both are written here and only here.
Every file goes through ``etils.epath`` (``_write`` / ``_read``), so ``W`` may be a ``gs://`` workdir.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json

import numpy as np
from etils import epath

from jaxtag.core import rundir, scoring


@dataclasses.dataclass
class Predictions:
  """Song-level outputs of one model (or ensemble) on one split, plus the train-label statistics.

  ``train_pos`` (T,) and ``train_cooc`` (T, T) count training positives and co-occurrences: ``analyze
  exclusive`` finds mutually exclusive tags from them without reloading the data set.
  """
  song_ids: np.ndarray
  scores: np.ndarray
  targets: np.ndarray
  tags: np.ndarray
  dataset: str
  split: str
  step: int = 0
  chunk_scores: np.ndarray | None = None
  chunk_song: np.ndarray | None = None
  train_pos: np.ndarray | None = None
  train_cooc: np.ndarray | None = None
  n_train: int = 0


def _write(path: str, data: bytes | str) -> None:
  """One whole file, local or remote (an object store writes whole objects anyway); its folder made first."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(data.encode() if isinstance(data, str) else data)


def exists(path: str) -> bool:
  return epath.Path(path).exists()


def read_json(path: str) -> dict:
  return json.loads(epath.Path(path).read_text())


def report_dir(workdir: str) -> str:
  return f"{str(workdir).rstrip('/')}/{rundir.REPORT}"


def predictions_path(workdir: str, split: str) -> str:
  return f"{report_dir(workdir)}/predictions_{split}.npz"


def eval_json_path(workdir: str, split: str) -> str:
  return f"{report_dir(workdir)}/eval_{split}.json"


def require_evaluated(workdir: str, split: str, saved: str = "predictions") -> None:
  """``errors.MissingInput`` (one line) unless ``workdir`` has its ``split`` evaluated: the analyses read what
  evaluation saved (``saved``: ``predictions`` or ``eval`` for ``eval_<split>.json``) rather than running
  the model again."""
  from jaxtag.core import errors
  path = predictions_path(workdir, split) if saved == "predictions" else eval_json_path(workdir, split)
  if not epath.Path(path).exists():
    what = "no such directory" if not epath.Path(workdir).is_dir() else f"no {epath.Path(path).name}"
    raise errors.MissingInput(f"{workdir}: {what}; evaluate the run first: jaxtag evaluate --workdir={workdir} "
                              f"--split={split}")


def save_predictions(path: str, p: Predictions) -> None:
  arrays = {
      "song_ids": np.asarray(p.song_ids, str), "scores": np.asarray(p.scores, np.float32),
      "targets": np.asarray(p.targets, np.float32), "tags": np.asarray(p.tags, str),
      "dataset": np.asarray(p.dataset), "split": np.asarray(p.split), "step": np.asarray(int(p.step)),
      "n_train": np.asarray(int(p.n_train)),
  }
  for key in ("chunk_scores", "chunk_song", "train_pos", "train_cooc"):
    if getattr(p, key) is not None:
      arrays[key] = np.asarray(getattr(p, key))
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  _write(path, buffer.getvalue())


def load_predictions(path: str) -> Predictions:
  with np.load(io.BytesIO(epath.Path(path).read_bytes()), allow_pickle=False) as z:
    opt = {k: z[k] for k in ("chunk_scores", "chunk_song", "train_pos", "train_cooc") if k in z}
    return Predictions(song_ids=z["song_ids"], scores=z["scores"], targets=z["targets"], tags=z["tags"],
                       dataset=str(z["dataset"]), split=str(z["split"]), step=int(z["step"]),
                       n_train=int(z["n_train"]) if "n_train" in z else 0, **opt)


def train_label_stats(train_targets) -> tuple[np.ndarray, np.ndarray, int]:
  """Training positives per tag and pairwise co-occurrence counts (binarised as scoring does)."""
  y = (np.asarray(train_targets) >= scoring.POSITIVE_THRESHOLD).astype(np.int64)
  return y.sum(axis=0), y.T @ y, len(y)


def ensemble(preds: list[Predictions]) -> Predictions:
  """Mean of the members' song scores, aligned by song id (the authors' evaluate.py -l id1 id2 ...).

  Members must score the same split with the same tags; songs missing from any member are dropped.
  """
  first = preds[0]
  for p in preds[1:]:
    if list(p.tags) != list(first.tags) or p.split != first.split:
      raise ValueError(f"ensemble members differ in tags or split ({p.split!r} vs {first.split!r})")
  common = set(first.song_ids.tolist())
  for p in preds[1:]:
    common &= set(p.song_ids.tolist())
  ids = [s for s in first.song_ids.tolist() if s in common]
  rows = [dict(zip(p.song_ids.tolist(), range(len(p.song_ids)))) for p in preds]
  scores = np.mean([p.scores[[r[s] for s in ids]] for p, r in zip(preds, rows)], axis=0)
  return dataclasses.replace(first, song_ids=np.asarray(ids), scores=scores.astype(np.float32),
                             targets=first.targets[[rows[0][s] for s in ids]], chunk_scores=None,
                             chunk_song=None)


def dataset_name(data_cfg) -> str:
  """``config.data.dataset_title`` if set (e.g. "MagnaTagATune"), else the loader's name."""
  return data_cfg.get("dataset_title", "") or data_cfg.dataset


def title(data_cfg, split: str) -> str:
  """The line every report starts with, e.g. ``MagnaTagATune, pons split, test``: MTT has two protocols."""
  parts = [dataset_name(data_cfg)]
  if data_cfg.dataset == "mtt":
    parts.append(f"{data_cfg.get('mtt_split', 'pons')} split")
  return ", ".join(parts + [split])


def per_tag_rows(metrics: dict, tags) -> list[dict]:
  """One row per tag, most prevalent first: the table that shows where a macro mean comes from."""
  pt = metrics["per_tag"]
  rows = [{"tag": str(t), "n_pos": int(pt["n_pos"][i]), "prevalence": float(pt["prevalence"][i]),
           "roc_auc": float(pt["roc_auc"][i]), "pr_auc": float(pt["pr_auc"][i])} for i, t in enumerate(tags)]
  return sorted(rows, key=lambda r: (-r["n_pos"], r["tag"]))


def write_csv(path: str, rows: list[dict]) -> None:
  f = io.StringIO(newline="")
  w = csv.DictWriter(f, fieldnames=list(rows[0]))
  w.writeheader()
  w.writerows(rows)
  _write(path, f.getvalue())


def markdown_table(header: list[str], rows: list[list]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
  return "\n".join(lines) + "\n"


def _fmt(x: float, pct: bool = True) -> str:
  if x is None or not np.isfinite(x):
    return "n/a"
  return f"{100 * x:.2f}" if pct else f"{x:.4f}"


def write_report(out_dir: str, p: Predictions, meta: dict) -> dict:
  """Scores ``p`` and writes eval JSON, per-tag CSV/markdown, a summary markdown and the plots.

  ``meta`` carries what the predictions do not know: ``title``, ``model`` (config.model.name), ``checkpoint``.
  Returns the JSON object that was written.
  """
  from jaxtag.core import plots   # matplotlib only when a report is written
  out_dir = str(out_dir).rstrip("/")
  m = scoring.macro_scores(p.targets, p.scores, p.tags)
  rows = per_tag_rows(m, p.tags)
  split = p.split
  summary = {k: m[k] for k in ("roc_auc", "pr_auc", "rmse", "n_songs", "n_tags", "missing_songs",
                               "skipped_tags")}
  summary.update(dataset=p.dataset, split=split, step=int(p.step), n_train=int(p.n_train), **meta)
  _write(f"{out_dir}/eval_{split}.json", json.dumps(summary, indent=1))
  write_csv(f"{out_dir}/per_tag_{split}.csv", rows)
  table = markdown_table(["tag", "positives", "prevalence %", "ROC-AUC %", "PR-AUC %"],
                         [[r["tag"], r["n_pos"], f"{100 * r['prevalence']:.2f}", _fmt(r["roc_auc"]),
                           _fmt(r["pr_auc"])] for r in rows])
  _write(f"{out_dir}/per_tag_{split}.md", table)
  head = (f"# {meta.get('title', p.dataset)}\n\nmodel {meta.get('model', '?')}, step {p.step}, "
          f"{m['n_songs']} songs, {m['n_tags']} tags scored\n\n"
          + markdown_table(["ROC AUC %", "PR AUC %", "sqrt(MSE)"],
                           [[_fmt(m["roc_auc"]), _fmt(m["pr_auc"]), _fmt(m["rmse"], pct=False)]])
          + f"\nskipped tags (one class only): {', '.join(map(str, m['skipped_tags'])) or 'none'}\n"
          + f"songs without any readable chunk: {m['missing_songs']}\n\n## Per tag, by prevalence\n\n" + table)
  _write(f"{out_dir}/report_{split}.md", head)
  plots.per_tag_vs_prevalence(f"{out_dir}/per_tag_vs_prevalence_{split}.png", rows)
  plots.pr_curves(f"{out_dir}/pr_curves_{split}.png", p.targets, p.scores, p.tags)
  return summary
