"""``python -m jaxtag.evaluate --workdir=W [--split=test] [--checkpoint=best|latest|STEP] [--ensemble W2 ...]``.

The protocol every peer uses (``peers_and_protocol.md`` §0.5): all non-overlapping chunks of each song, the
mean of their sigmoids as the song's scores, then macro ROC-AUC and macro average precision over tags as
scikit-learn computes them (``jaxtag.core.scoring``), plus sqrt(MSE) as in the paper's private-data table. Writes
``W/report/``: ``predictions_<split>.npz`` (so ensembles and ``analyze`` need no re-run), ``eval_<split>.json``,
the per-tag table (CSV and markdown, by prevalence), ``report_<split>.md`` and the plots. An ensemble averages
the members' song scores (the authors' ``evaluate.py -l id1 id2``) and is reported in ``W/report/ensemble``.
"""
from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags, logging
from etils import epath

from jaxtag.evaluation import report
from jaxtag.core import choices, scoring


def define_flags():
  """Flags exist only when run as a program, so that tools can be imported together (tests)."""
  flags.DEFINE_string("workdir", None, "Run directory (holds config.json, tags.json and checkpoints).")
  from jaxtag.core import choices, cli
  flags.DEFINE_enum("split", "test", list(choices.SPLITS), "Split to evaluate.")
  cli.checkpoint_flag()
  flags.DEFINE_list("ensemble", [], "Other run directories whose song scores are averaged with this run's.")
  flags.DEFINE_integer("batch", 0, "Chunks per evaluation batch (0 = config.eval.batch_size).",
                       lower_bound=0)
  flags.DEFINE_enum("protocol", None, choices.EVAL_PROTOCOLS, "chunks (all non-overlapping chunks) | crops16 "
                    "(Won et al.'s 16 crops); default: the run's eval.protocol.")
  flags.DEFINE_bool("json", False, "Print one JSON object (roc_auc, pr_auc, rmse, n_songs, n_tags, ...).")


FLAGS = flags.FLAGS


def align_columns(scores: np.ndarray, model_tags, data_tags) -> np.ndarray:
  """Model output columns reordered to the data set's tag order (an imported model may list them otherwise).

  A data-set tag the model does not predict is an error: silently scoring it as zero would bias the macro means.
  """
  model_tags, data_tags = [str(t) for t in model_tags], [str(t) for t in data_tags]
  if model_tags == data_tags:
    return scores
  missing = [t for t in data_tags if t not in model_tags]
  if missing:
    raise choices.ConfigError(f"the model does not predict the data set's tags {missing[:10]}: evaluate it on "
                              "a data set with its own tags (config.json's data)")
  return scores[:, [model_tags.index(t) for t in data_tags]]


def predict_split(workdir: str, split: str = "test", which="best", batch: int = 0, protocol: str = ""):
  """Runs the model of ``workdir`` over ``split``: ``(Predictions, meta)`` with meta for the report.
  ``protocol``: ``choices.EVAL_PROTOCOLS`` ("" = the run's ``eval.protocol``)."""
  from jaxtag.data import protocols
  from jaxtag.training import checkpoint
  from jaxtag.models import contract
  from jaxtag.serving import inference
  from jaxtag.data import index as index_lib
  config, model_tags, model, step = checkpoint.load_for_inference(workdir, which)
  idx = index_lib.load_songs(config.data)
  songs, train = idx.split(split), idx.split("train")
  if not songs:
    raise choices.ConfigError(f"{report.title(config.data, split)} has no songs; choose another --split")
  protocol = protocol or str(config.eval.get("protocol", "chunks"))
  inputs = protocols.inputs_for(contract.for_run(workdir, config), protocol)
  logits, chunk_song = inference.predict_chunks(model, config, songs, batch=batch, contract=inputs)
  chunk_scores = align_columns(scoring.sigmoid(logits), model_tags, idx.tags).astype(np.float32)
  song_scores = scoring.aggregate_chunks(chunk_scores, chunk_song, len(songs))
  stats = report.train_label_stats(np.stack([s.targets for s in train])) if train else (None, None, 0)
  p = report.Predictions(
      song_ids=np.array([str(s.id) for s in songs]), scores=song_scores.astype(np.float32),
      targets=np.stack([s.targets for s in songs]).astype(np.float32), tags=np.array(idx.tags, str),
      dataset=report.dataset_name(config.data), split=split, step=step, chunk_scores=chunk_scores,
      chunk_song=np.asarray(chunk_song, np.int32), train_pos=stats[0], train_cooc=stats[1], n_train=stats[2])
  meta = {"title": report.title(config.data, split), "model": str(config.model.name), "checkpoint": str(which),
          "workdir": str(workdir), "protocol": protocol}
  return p, meta


def evaluate(workdir: str, split: str = "test", which="best", batch: int = 0, protocol: str = "") -> dict:
  """Predicts, saves the predictions and writes the report of one run; returns the eval JSON object. A
  protocol other than ``chunks`` reports in ``W/report/<protocol>/`` (the all-chunks report stays as it is)."""
  import jax
  p, meta = predict_split(workdir, split, which, batch, protocol)
  if jax.process_index() != 0:
    return {}
  if meta["protocol"] == "chunks":
    report.save_predictions(report.predictions_path(workdir, split), p)
    return report.write_report(report.report_dir(workdir), p, meta)
  out = os.path.join(report.report_dir(workdir), meta["protocol"])
  report.save_predictions(os.path.join(out, f"predictions_{split}.npz"), p)
  return report.write_report(out, p, meta)


def member_predictions(workdir: str, split: str, batch: int = 0) -> report.Predictions:
  """A member's saved predictions, evaluating its best checkpoint first if it has none (e.g. baseline runs
  are saved predictions only)."""
  path = report.predictions_path(workdir, split)
  if not report.exists(path):
    logging.info("%s has no %s predictions yet: evaluating it", workdir, split)
    evaluate(workdir, split, "best", batch)
  return report.load_predictions(path)


def evaluate_ensemble(workdir: str, members: list[str], split: str = "test", batch: int = 0) -> dict:
  """Mean song scores of ``workdir`` and ``members`` (from their saved predictions) in ``W/report/ensemble``."""
  runs = [workdir, *members]
  preds = [member_predictions(w, split, batch) for w in runs]
  p = report.ensemble(preds)
  names = []
  for w in runs:
    names.append(report.read_json(report.eval_json_path(w, split)).get("model", os.path.basename(w.rstrip("/"))))
  head = report.read_json(report.eval_json_path(workdir, split))
  meta = {"title": head.get("title", p.dataset), "model": "ensemble(" + "+".join(names) + ")",
          "checkpoint": "ensemble", "members": runs}
  out = f"{report.report_dir(workdir)}/ensemble"
  report.save_predictions(f"{out}/predictions_{split}.npz", p)
  return report.write_report(out, p, meta)


def summary_line(e: dict) -> str:
  return (f"{e['title']} | {e['model']} step {e['step']} | {e['n_songs']} songs, {e['n_tags']} tags | "
          f"ROC AUC {100 * e['roc_auc']:.2f}% PR AUC {100 * e['pr_auc']:.2f}% sqrt(MSE) {e['rmse']:.4f}"
          + (f" | skipped tags: {', '.join(map(str, e['skipped_tags']))}" if e["skipped_tags"] else ""))


def main(argv):
  from jaxtag.training import checkpoint
  members = FLAGS.ensemble + argv[1:] if FLAGS.ensemble else []
  if len(argv) > 1 and not FLAGS.ensemble:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from jaxtag.core import remote
  remote.require_gcs(workdir=FLAGS.workdir, **{f"ensemble_{i}": w for i, w in enumerate(members)})
  if members and FLAGS.protocol not in (None, "chunks"):
    raise app.UsageError("an ensemble averages the members' all-chunks predictions: drop --protocol")
  checkpoint.read_run_info(FLAGS.workdir)   # every run directory checked before the first (long) evaluation
  for w in members:   # a member with saved predictions (a baseline run) needs no checkpoint
    if not epath.Path(report.predictions_path(w, FLAGS.split)).exists():
      checkpoint.read_run_info(w, "--ensemble member")
  e = evaluate(FLAGS.workdir, FLAGS.split, FLAGS.checkpoint, FLAGS.batch, FLAGS.protocol)
  if members and e:
    e = evaluate_ensemble(FLAGS.workdir, members, FLAGS.split, FLAGS.batch)
  if e:
    print(json.dumps(e) if FLAGS.json else summary_line(e))


if __name__ == "__main__":   # required: grain workers re-import __main__
  from jaxtag.core import cli
  cli.run(main, define_flags, required=("workdir",))
