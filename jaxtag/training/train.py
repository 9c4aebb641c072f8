"""``train_and_evaluate(config, workdir, hooks)``: the one place that wires data, model, step, checkpoints, metrics.

It reads as its phases, each a short function:

* ``setup``: check the config, index the songs, make the mesh, the state (on the mesh), the checkpoints and
  the device feed; resume from the newest checkpoint if the workdir holds one.
* ``loop``: next global batch (already on the devices) -> jitted step (state donated) -> the periodic
  actions, each decided by ``schedule.itstime``:
  * ``fetch``: one host sync for the pending steps' metrics, with the NaN guard;
  * ``log``: progress line and scalars;
  * ``validate_and_keep_best``: song-level validation, the plateau schedule, ``best/``;
  * ``checkpoint``: the latest-N checkpoints with the data iterator's position.
* ``shutdown`` and ``finish``: wait for saves, stop the loader, write ``summary.json``.

SIGTERM/SIGINT save the current step and return normally (exit 0), which is what a preempted TPU VM needs.

``hooks`` (``Hook`` subclasses) see the loop without living in it: profiling, extra evaluations, and the tests'
fault injection (a NaN batch, a stall after a save) plug in here, so no testing aid lives in the package.
"""
from __future__ import annotations

import dataclasses
import json
import time

import jax
import numpy as np
from absl import logging
from etils import epath

from jaxtag.core import choices, distributed, rundir, scoring, sharding
from jaxtag.serving import inference
from jaxtag.training import (augment, checkpoint, early_stopping, feed, metrics, profiling, recipe, schedule,
                             train_state, trainable, transfer)
from jaxtag.training import step as step_lib


class Hook:
  """A plug-in of the loop; every method is optional. ``run`` is the loop's ``Run``."""

  def on_batch(self, run, step: int, batch: dict) -> dict:
    """Before step ``step + 1``; may return a different batch."""
    return batch

  def after_step(self, run, step: int) -> None:
    """After step ``step`` was dispatched (not waited for)."""

  def after_validation(self, run, step: int, result: dict) -> None:
    """After the validation at ``step``."""

  def after_checkpoint(self, run, step: int) -> None:
    """After the checkpoint of ``step`` was queued."""

  def at_end(self, run, summary: dict) -> None:
    """Once, with the run's summary."""


@dataclasses.dataclass
class Run:
  """What ``setup`` builds and the phases share."""
  config: object
  workdir: str
  index: object
  train_songs: list
  val_songs: list
  val_targets: np.ndarray | None
  mesh: object
  writer: metrics.MetricWriter
  n_params: int
  state: dict
  ckpts: checkpoint.Checkpoints
  train_iter: object
  host: dict
  start: int
  train_step: object
  eval_fn: object
  hooks: list
  stop: distributed.StopFlag
  t_start: float
  last_val: dict = dataclasses.field(default_factory=dict)

  @property
  def is_main(self) -> bool:
    return jax.process_index() == 0


def train_and_evaluate(config, workdir: str, hooks=()) -> dict:
  """Trains ``config`` in ``workdir`` (resuming if it holds a checkpoint); returns the final summary."""
  run = setup(config, str(workdir), profiling.hooks_from_config(config, str(workdir)) + list(hooks))
  step = run.start
  try:
    step = loop(run)
  finally:
    shutdown(run)
  return finish(run, step)


def setup(config, workdir: str, hooks: list) -> Run:
  """Everything the loop needs, created once; a workdir with a checkpoint is resumed from it."""
  from jaxtag.data import decode, index as index_lib, pipeline
  t_start = time.time()
  tc = config.train
  _check_config(config)
  if config.init.workdir and not (_has_checkpoint(workdir) and not epath.Path(config.init.workdir).exists()):
    transfer.check(config)   # before any data work; a resumed fine-tune run no longer needs its source
  index = index_lib.load_songs(config.data)
  train_songs, val_songs = index.split("train"), index.split(config.eval.split)
  if config.eval.max_songs:
    val_songs = val_songs[:config.eval.max_songs]
  if not train_songs:
    raise choices.ConfigError(f"dataset {config.data.dataset!r} has no training songs")
  mesh = sharding.make_mesh()
  local_batch = sharding.local_batch_size(tc.global_batch_size, mesh)
  sharding.local_batch_size(config.eval.batch_size, mesh)   # fail at start, not at the first validation
  if jax.process_index() == 0:
    checkpoint.write_run_info(workdir, config, index.tags)
  writer = metrics.MetricWriter(workdir, is_writer=jax.process_index() == 0)

  tx = trainable.optimizer_for(config)
  _, state = train_state.create(config, len(index.tags), mesh, tx=tx)
  graphdef = trainable.graphdef(config, len(index.tags))   # frozen parts in inference mode
  frozen = trainable.frozen_mask(state["params"], tc.trainable)
  n_params = metrics.log_parameter_overview(state["params"])
  ckpts = checkpoint.Checkpoints(workdir, keep=tc.keep, best_metric=tc.best_metric)
  if config.init.workdir and ckpts.latest_step() is None:   # resuming restores its own checkpoint, never W's
    params, rest, init_info = transfer.apply(state["params"], state["rest"], config, index.tags)
    state = {**state, "params": train_state.on_mesh(params, mesh), "rest": train_state.on_mesh(rest, mesh)}
    if jax.process_index() == 0:
      rundir.path(workdir, rundir.INIT).write_text(json.dumps(init_info, indent=2))
  data_cfg = feed.pin_loader(config.data, workdir, resuming=ckpts.latest_step() is not None,
                             write=jax.process_index() == 0)
  train_iter = feed.device_feed(
      pipeline.train_dataset(data_cfg, train_songs, local_batch=local_batch, seed=config.seed,
                             process_index=jax.process_index(), process_count=jax.process_count()),
      mesh, prefetch=data_cfg.device_prefetch)
  host, start = {**schedule.initial(tc.learning_rate, decode.BAD_REASONS), early_stopping.KEY: 0}, 0
  host.update(recipe.initial_host(config, recipe.steps_per_epoch(
      len(train_songs) * data_cfg.chunks_per_song, tc.global_batch_size)))   # Won's phases (empty by default)
  if ckpts.latest_step() is not None:
    start, state, host = ckpts.restore_latest(state, train_iter)
    logging.info("resumed from %s/checkpoints/%d", workdir, start)
  writer.write_hparams({"params": n_params, **choices.flatten(config.to_dict())})
  logging.info("training %s (%d params) on %d songs, %d tags, %d devices, global batch %d, steps %d..%d",
               config.model.name, n_params, len(train_songs), len(index.tags), mesh.devices.size,
               tc.global_batch_size, start, tc.steps)
  return Run(
      config=config, workdir=workdir, index=index, train_songs=train_songs, val_songs=val_songs,
      val_targets=np.stack([s.targets for s in val_songs]) if val_songs else None, mesh=mesh, writer=writer,
      n_params=n_params, state=state, ckpts=ckpts, train_iter=train_iter, host=host, start=start,
      train_step=step_lib.jit_train_step(graphdef, tx, mesh, loss_kind=tc.loss, l2=float(tc.l2), frozen=frozen,
                                         augment=augment.from_config(config)),
      eval_fn=inference.make_eval_fn(graphdef, mesh), hooks=hooks, stop=distributed.StopFlag().install(),
      t_start=t_start)


def loop(run: Run) -> int:
  """Steps from ``run.start`` to ``train.steps`` (or a stop signal); returns the last step done."""
  from jaxtag.data import decode
  tc = run.config.train
  window = _Window(len(decode.BAD_REASONS))
  progress = metrics.Progress(tc.steps, tc.global_batch_size, run.start)
  step = run.start
  while step < tc.steps:
    if recipe.switch_due(run.host, step):   # Won's recipe: a new phase, from the best checkpoint
      recipe.switch(run, step)
    with window.timer.phase("data_wait"):
      batch = next(run.train_iter)   # already on the devices (feed.device_feed)
    for hook in run.hooks:
      batch = hook.on_batch(run, step, batch)
    window.bad += batch["bad"].sum(axis=0)
    with window.timer.phase("step"):
      run.state, m = run.train_step(run.state, {"audio": batch["audio"], "targets": batch["targets"]},
                                    np.float32(schedule.warmup_lr(run.host["lr"], step, tc.warmup_steps)))
    window.timer.count_step()
    window.pending.append(m)
    step += 1
    for hook in run.hooks:
      hook.after_step(run, step)
    stopping = run.stop.requested(step, tc.metrics_every)
    due = {name: schedule.itstime(step, every, tc.steps, force=stopping and name == "checkpoint")
           for name, every in (("metrics", tc.metrics_every), ("log", tc.log_every),
                               ("validate", tc.eval_every), ("checkpoint", tc.checkpoint_every))}
    if any(due.values()):
      with window.timer.phase("host_sync"):
        fetch(run, window, step)
    if due["log"]:
      log(run, window, progress, step)
    if due["validate"] and run.val_songs:
      validate_and_keep_best(run, step)
      if early_stopping.due(run.host, tc.early_stopping_patience) and not stopping:
        logging.info("early stopping at step %d: %d validations without a better %s (best %s at step %s)", step,
                     run.host[early_stopping.KEY], tc.best_metric, run.host["best"], run.host["best_step"])
        stopping, due["checkpoint"] = True, True   # the same decision on every process (same validation)
        run.stop.signal = run.stop.signal or "early_stopping"
    if due["checkpoint"]:
      run.ckpts.save(step, run.state, run.train_iter, run.host)
      for hook in run.hooks:
        hook.after_checkpoint(run, step)
    if stopping:
      logging.warning("%s received: saved step %d, exiting", run.stop.signal or "stop", step)
      break
  return step


class _Window:
  """Metrics of the steps since the last log: device values not yet fetched, host values, bad-file counts."""

  def __init__(self, n_reasons: int):
    self.pending, self.values = [], []
    self.bad = np.zeros(n_reasons, np.int64)
    self.timer = profiling.StepTimer()   # data wait / step / host sync of the window (profiling.py)


def fetch(run: Run, window: _Window, step: int) -> None:
  """One host sync for the pending steps' metrics; stops the run on a non-finite loss or gradient."""
  first = step - len(window.pending)
  values = jax.device_get(window.pending)
  window.pending = []
  nan_step = int(jax.device_get(run.state["nan_step"]))
  if nan_step != step_lib.NAN_NONE:
    bad = values[nan_step - first] if 0 <= nan_step - first < len(values) else {}
    which = [k for k, v in bad.items() if not np.isfinite(v)] or ["loss"]
    run.ckpts.wait()
    raise FloatingPointError(
        f"NaN guard: non-finite {', '.join(which)} at step {nan_step + 1}; the run stops here. The update was "
        f"not applied and the last checkpoint (step {run.ckpts.latest_step()}) is intact.")
  window.values += [{k: float(v) for k, v in m.items()} for m in values]


def log(run: Run, window: _Window, progress: metrics.Progress, step: int) -> None:
  """The progress line and the window's mean scalars (loss, rates, lr, bad files by reason)."""
  from jaxtag.data import decode
  run.host["bad"] = schedule.add_counts(run.host["bad"], distributed.sum_over_processes(window.bad),
                                        decode.BAD_REASONS)
  window.bad[:] = 0
  rates = progress.rates(step)
  scalars = {k: float(np.mean([w[k] for w in window.values])) for k in window.values[0]} if window.values else {}
  lr = schedule.warmup_lr(run.host["lr"], step - 1, run.config.train.warmup_steps)   # the window's last step's
  scalars.update(rates, lr=lr, **{f"bad/{k}": v for k, v in run.host["bad"].items()})
  scalars.update(window.timer.window())
  run.writer.write_scalars(step, scalars)
  if run.is_main:
    logging.info(progress.line(step, scalars.get("loss", float("nan")), rates) + profiling.progress_suffix(scalars))
  window.values = []


def validate_and_keep_best(run: Run, step: int) -> None:
  """Song-level validation; then the plateau schedule and, if it improved, a checkpoint marked best (its
  metrics: Orbax keeps it beside the latest N)."""
  tc = run.config.train
  run.last_val = validate(run.eval_fn, run.state, run.config, run.val_songs, run.mesh, run.val_targets)
  run.writer.write_scalars(step, {f"val/{k}": v for k, v in run.last_val.items()})
  logging.info("validation at step %d: %s", step, json.dumps(run.last_val))
  if recipe.uses_plateau(run.host):
    run.host = schedule.plateau_update(run.host, run.last_val["loss"], tc.plateau_patience, tc.plateau_factor)
  run.host, improved = schedule.keep_best(run.host, run.last_val, tc.best_metric, step)
  run.host = early_stopping.update(run.host, improved)
  if improved:
    run.ckpts.save_best(step, run.state, run.train_iter, run.host, run.last_val)
  for hook in run.hooks:
    hook.after_validation(run, step, run.last_val)


def validate(eval_fn, state, config, songs, mesh, targets) -> dict:
  """Song-level validation: mean chunk sigmoid per song, macro ROC-AUC / PR-AUC, sqrt(MSE), chunk loss."""
  logits, chunk_song, _ = inference.predict_on_mesh(
      eval_fn, state["params"], state["rest"], config.data, songs, global_batch=config.eval.batch_size, mesh=mesh,
      contract=_protocol_inputs(config))
  song_scores = scoring.aggregate_chunks(scoring.sigmoid(logits), chunk_song, len(songs))
  seen = ~np.isnan(song_scores).any(axis=1)
  result = scoring.macro_scores(targets[seen], song_scores[seen])
  return {"roc_auc": result["roc_auc"], "pr_auc": result["pr_auc"], "rmse": result["rmse"],
          "loss": scoring.chunk_loss(logits, targets[chunk_song], config.train.loss),
          "songs": int(seen.sum()), "songs_unreadable": int((~seen).sum()), "chunks": int(len(chunk_song))}


def _protocol_inputs(config):
  """``eval.protocol``'s input maker for validation; None for jaxtag's all-chunks protocol (the plain path)."""
  protocol = str(config.eval.get("protocol", "chunks"))
  if protocol == "chunks":
    return None
  from jaxtag.data import protocols
  from jaxtag.models import contract
  return protocols.inputs_for(contract.from_config(config), protocol)


def shutdown(run: Run) -> None:
  """Signal handlers back, queued saves finished, checkpoint managers and loader workers closed."""
  run.stop.restore()
  run.ckpts.wait()
  run.ckpts.close()
  getattr(run.train_iter, "close", lambda: None)()


def finish(run: Run, step: int) -> dict:
  """``summary.json`` and the summary line; hooks see the summary."""
  summary = {"step": step, "params": run.n_params, "train_songs": len(run.train_songs),
             "bad_files": run.host["bad"], "validation": run.last_val, "best": run.host["best"],
             "best_step": run.host["best_step"], "lr": run.host["lr"],
             "wall_s": round(time.time() - run.t_start, 1), "stopped_by": run.stop.signal}
  if run.is_main:
    rundir.path(run.workdir, rundir.SUMMARY).write_text(json.dumps(summary, indent=2))
    logging.info("run summary: %s", json.dumps(summary))
  run.writer.close()
  for hook in run.hooks:
    hook.at_end(run, summary)
  return summary


def _has_checkpoint(workdir: str) -> bool:
  """Whether ``workdir`` holds a complete latest checkpoint, seen without opening Orbax (step-named folders;
  Orbax's temporary ones are not digits)."""
  path = rundir.path(workdir, rundir.CHECKPOINTS)
  return path.exists() and any(p.name.isdigit() for p in path.iterdir())


def _check_config(config) -> None:
  """Config mistakes fail here, before any data is generated or read, naming the key and what it accepts (the
  schema's one check; ``jaxtag.main`` has run it already, callers of ``train_and_evaluate`` may not have)."""
  from jaxtag.core import config as config_lib
  config_lib.validate(config)
