"""``train_and_evaluate(config, workdir)``: the one place that wires data, model, step, checkpoints, metrics.

The loop: next global batch (already on the devices: ``feed.device_feed`` copies ahead in a thread) -> jitted
step (state donated) -> every ``metrics_every`` steps one host fetch (NaN guard, running means) -> progress
line / metrics every ``log_every`` -> song-level validation and the learning-rate plateau every ``eval_every``
-> checkpoint every ``checkpoint_every``. A workdir that holds a checkpoint is resumed from it with the exact
next batch. SIGTERM/SIGINT save the current step and
return normally (exit 0), which is what a preempted TPU VM needs.
"""
from __future__ import annotations

import json
import math
import signal
import time

import jax
import numpy as np
from absl import logging
from etils import epath

from jaxtag import checkpoint, early_stopping, feed, inference, metrics, scoring, sharding, trainable, transfer
from jaxtag import step as step_lib


class _StopFlag:
  """Set by SIGTERM/SIGINT; the loop saves and returns at the next step boundary."""

  def __init__(self):
    self.signal = None
    self._old = {}

  def install(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._old[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    self.signal = signal.Signals(signum).name

  def restore(self):
    for sig, old in self._old.items():
      signal.signal(sig, old)

  def requested(self, step: int, every: int) -> bool:
    """Single process: checked every step. Multi-process: agreed on every ``every`` steps (one allgather),
    so that all processes stop, and save, at the same step."""
    flag = self.signal is not None
    if jax.process_count() > 1:
      if step % every:
        return False
      from jax.experimental import multihost_utils
      flag = bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))
    return flag


def _chunk_loss(logits, targets, kind: str) -> float:
  """Validation loss on chunks, the same definition as the training loss (numerically stable BCE)."""
  if kind == "mse":
    return float(np.mean((scoring.sigmoid(logits) - targets) ** 2))
  return float(np.mean(np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))))


def validate(eval_fn, state, config, songs, mesh, targets) -> dict:
  """Song-level validation: mean chunk sigmoid per song, macro ROC-AUC / PR-AUC, sqrt(MSE), chunk loss."""
  logits, chunk_song, stats = inference.predict_on_mesh(
      eval_fn, state["params"], state["rest"], config.data, songs, global_batch=config.eval.batch_size, mesh=mesh)
  probs = scoring.sigmoid(logits)
  song_scores = scoring.aggregate_chunks(probs, chunk_song, len(songs))
  seen = ~np.isnan(song_scores).any(axis=1)
  result = scoring.macro_scores(targets[seen], song_scores[seen])
  out = {"roc_auc": result["roc_auc"], "pr_auc": result["pr_auc"], "rmse": result["rmse"],
         "loss": _chunk_loss(logits, targets[chunk_song], config.train.loss),
         "songs": int(seen.sum()), "songs_unreadable": int((~seen).sum()), "chunks": int(len(chunk_song))}
  return out


def plateau_update(host: dict, val_loss: float, patience: int, factor: float) -> dict:
  """The authors' schedule: count evaluations whose loss is not below the best so far (the count is not reset
  by an improvement); at ``patience`` such evaluations, multiply the learning rate by ``factor``, reset."""
  host = dict(host)
  if val_loss < host["best_val_loss"]:
    host["best_val_loss"] = val_loss
  else:
    host["plateau_count"] += 1
  if host["plateau_count"] >= patience:
    host["lr"] *= factor
    host["plateau_count"] = 0
    logging.info("validation plateau: learning rate -> %g", host["lr"])
  return host


def _is_better(value: float, best, metric: str) -> bool:
  if best is None:
    return True
  return value < best if metric == "loss" else value > best


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains ``config`` in ``workdir`` (resuming if it holds a checkpoint); returns the final summary."""
  from jaxtag.data import decode, index as index_lib, pipeline
  t_start = time.time()
  workdir = str(workdir)
  is_main = jax.process_index() == 0
  tc = config.train
  _check_config(config)
  resuming = _has_checkpoint(workdir)
  if config.init.workdir and not (resuming and not epath.Path(config.init.workdir).exists()):
    transfer.check(config)   # before any data work; a resumed run no longer needs the source
  index = index_lib.load_songs(config.data)
  train_songs, val_songs = index.split("train"), index.split(config.eval.split)
  if config.eval.max_songs:
    val_songs = val_songs[:config.eval.max_songs]
  if not train_songs:
    raise ValueError(f"dataset {config.data.dataset!r} has no training songs")
  val_targets = np.stack([s.targets for s in val_songs]) if val_songs else None

  mesh = sharding.make_mesh()
  local_batch = sharding.local_batch_size(tc.global_batch_size, mesh)
  sharding.local_batch_size(config.eval.batch_size, mesh)   # fail at start, not at the first validation
  if is_main:
    checkpoint.write_run_info(workdir, config, index.tags)
  writer = metrics.MetricWriter(workdir, is_writer=is_main)

  model = checkpoint.new_model(config, len(index.tags), seed=config.seed)
  frozen_counts = trainable.freeze(model, tc.trainable)
  graphdef, params, rest = step_lib.split_model(model)
  n_params = metrics.log_parameter_overview(params)
  if config.init.workdir and not resuming:   # resuming restores this run's own checkpoint, never the source's
    params, rest, init_info = transfer.apply(params, rest, config, index.tags)
    if is_main:
      (epath.Path(workdir) / "init.json").write_text(json.dumps(init_info, indent=2))
  tx = trainable.optimizer_for(config, params)
  frozen = trainable.frozen_mask(params, tc.trainable)
  if frozen is not None:
    n_frozen = sum(int(p.size) for p, f in zip(jax.tree.leaves(params), jax.tree.leaves(frozen)) if f)
    logging.info("train.trainable=%s: %d of %d parameters frozen, %s", tc.trainable, n_frozen, n_params,
                 frozen_counts)
  state = sharding.put_replicated(step_lib.init_state(params, rest, tx), mesh)
  del model, params, rest

  ckpts = checkpoint.Checkpoints(workdir, keep=tc.keep)
  data_cfg = feed.pin_loader(config.data, workdir, resuming=ckpts.latest_step() is not None, write=is_main)
  train_iter = feed.device_feed(
      pipeline.train_dataset(data_cfg, train_songs, local_batch=local_batch, seed=config.seed,
                             process_index=jax.process_index(), process_count=jax.process_count()),
      mesh, prefetch=data_cfg.device_prefetch)
  host = {"lr": float(tc.learning_rate), "best_val_loss": math.inf, "plateau_count": 0, "best": None,
          "best_step": None, "bad": {r: 0 for r in decode.BAD_REASONS}, early_stopping.KEY: 0}
  start = 0
  if ckpts.latest_step() is not None:
    start, state, host = ckpts.restore_latest(state, train_iter)
    logging.info("resumed from %s/checkpoints/%d", workdir, start)
  writer.write_hparams({"params": n_params, **_flat(config.to_dict())})
  logging.info("training %s (%d params) on %d songs, %d tags, %d devices, global batch %d, steps %d..%d",
               config.model.name, n_params, len(train_songs), len(index.tags), mesh.devices.size,
               tc.global_batch_size, start, tc.steps)

  train_step = step_lib.jit_train_step(graphdef, tx, mesh, loss_kind=tc.loss, l2=float(tc.l2), frozen=frozen)
  eval_fn = inference.make_eval_fn(graphdef, mesh)
  progress = metrics.Progress(tc.steps, tc.global_batch_size, start)
  stop = _StopFlag().install()
  pending, window, last_val, step = [], [], {}, start
  bad = np.zeros(len(decode.BAD_REASONS), np.int64)
  try:
    while step < tc.steps:
      batch = next(train_iter)   # already on the devices (feed.device_feed)
      bad += batch["bad"].sum(axis=0)
      audio = batch["audio"]
      if step == tc.inject_nan_at:   # testing aid for the NaN guard
        audio = feed.poison(audio)
      state, m = train_step(state, {"audio": audio, "targets": batch["targets"]}, np.float32(host["lr"]))
      pending.append(m)
      step += 1
      stopping = stop.requested(step, tc.metrics_every)
      boundary = step == tc.steps or step % tc.checkpoint_every == 0 or step % tc.eval_every == 0 or stopping
      if step % tc.metrics_every == 0 or step % tc.log_every == 0 or boundary:
        window += _fetch_and_guard(pending, state, step - len(pending), ckpts)
        pending = []
      if step % tc.log_every == 0 or step == tc.steps:
        host["bad"] = _add_bad(host["bad"], bad, decode.BAD_REASONS)
        bad[:] = 0
        rates = progress.rates(step)
        scalars = {k: float(np.mean([w[k] for w in window])) for k in window[0]} if window else {}
        scalars.update(rates, lr=host["lr"], **{f"bad/{k}": v for k, v in host["bad"].items()})
        writer.write_scalars(step, scalars)
        if is_main:
          logging.info(progress.line(step, scalars.get("loss", float("nan")), rates))
        window = []
      if val_songs and (step % tc.eval_every == 0 or step == tc.steps):
        last_val = validate(eval_fn, state, config, val_songs, mesh, val_targets)
        writer.write_scalars(step, {f"val/{k}": v for k, v in last_val.items()})
        logging.info("validation at step %d: %s", step, json.dumps(last_val))
        host = plateau_update(host, last_val["loss"], tc.plateau_patience, tc.plateau_factor)
        improved = _is_better(last_val[tc.best_metric], host["best"], tc.best_metric)
        host, stop_early = early_stopping.update(host, improved, int(tc.early_stopping_patience))
        if improved:
          host["best"], host["best_step"] = last_val[tc.best_metric], step
          ckpts.save_best(step, state, host)
        if stop_early and not stopping:
          logging.info("early stopping at step %d: %d validations without a better %s (best %.4f at step %s)",
                       step, host[early_stopping.KEY], tc.best_metric, host["best"], host["best_step"])
          stopping, stop.signal = True, "early_stopping"
      if step % tc.checkpoint_every == 0 or step == tc.steps or stopping:
        ckpts.save(step, state, train_iter, host)
        if step == tc.stall_at and step > start:   # testing aid: hang here so a test can kill -9 mid-run
          while True:
            time.sleep(1)
      if stopping:
        logging.warning("%s received: saved step %d, exiting", stop.signal or "stop", step)
        break
  finally:
    stop.restore()
    ckpts.wait()
    ckpts.close()
    getattr(train_iter, "close", lambda: None)()
  summary = {"step": step, "params": n_params, "train_songs": len(train_songs), "bad_files": host["bad"],
             "validation": last_val, "best": host["best"], "best_step": host["best_step"], "lr": host["lr"],
             "wall_s": round(time.time() - t_start, 1), "stopped_by": stop.signal}
  if is_main:
    (epath.Path(workdir) / "summary.json").write_text(json.dumps(summary, indent=2))
    logging.info("run summary: %s", json.dumps(summary))
  writer.close()
  return summary


def _has_checkpoint(workdir: str) -> bool:
  """Whether ``workdir`` holds a complete latest checkpoint (step-named directories; Orbax's temporary ones are
  not digits)."""
  path = epath.Path(workdir) / "checkpoints"
  return path.exists() and any(p.name.isdigit() for p in path.iterdir())


def _check_config(config) -> None:
  """Config mistakes fail here, before any data is generated or read, naming the valid choices."""
  from jaxtag.models import registry
  from jaxtag.data import index as index_lib
  if config.model.name not in registry.MODELS:
    raise ValueError(f"unknown model {config.model.name!r}; valid names: {', '.join(registry.MODELS)}")
  if config.train.best_metric not in ("loss", "roc_auc", "pr_auc"):
    raise ValueError(f"unknown train.best_metric {config.train.best_metric!r}; valid: 'loss', 'roc_auc', 'pr_auc'")
  if config.train.loss not in ("bce", "mse"):
    raise ValueError(f"unknown train.loss {config.train.loss!r}; valid: 'bce', 'mse'")
  if config.model.dtype not in ("float32", "bfloat16"):
    raise ValueError(f"unknown model.dtype {config.model.dtype!r}; valid: 'float32', 'bfloat16'")
  trainable.check_mode(str(config.train.trainable))
  index_lib.validate(config.data)


def _fetch_and_guard(pending, state, first_step: int, ckpts) -> list[dict]:
  """One host sync for the last steps' metrics; stops the run on a non-finite loss or gradient."""
  values = jax.device_get(pending)
  nan_step = int(jax.device_get(state["nan_step"]))
  if nan_step != step_lib.NAN_NONE:
    bad = values[nan_step - first_step] if 0 <= nan_step - first_step < len(values) else {}
    which = [k for k, v in bad.items() if not np.isfinite(v)] or ["loss"]
    ckpts.wait()
    raise FloatingPointError(
        f"NaN guard: non-finite {', '.join(which)} at step {nan_step + 1}; the run stops here. The update was "
        f"not applied and the last checkpoint (step {ckpts.latest_step()}) is intact.")
  return [{k: float(v) for k, v in m.items()} for m in values]


def _add_bad(totals: dict, counts: np.ndarray, reasons) -> dict:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    counts = multihost_utils.process_allgather(counts).sum(axis=0)
  return {r: int(totals.get(r, 0)) + int(c) for r, c in zip(reasons, counts)}


def _flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out
