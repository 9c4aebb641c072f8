"""The one facade over Orbax: save, resume, keep-best, and loading a run for inference.

A run directory's files are named in ``jaxtag.core.rundir``; this module owns ``checkpoints/``::

  checkpoints/<step>/{state, data_iter, host[, metrics]}   latest ``train.keep`` steps plus the best one
  checkpoints/<step>.corrupt                      a step that failed to restore, set aside (never deleted)

``state`` is the train-state pytree of ``jaxtag.training.step`` (params, BatchNorm stats, dropout RNG, Adam moments,
step); ``data_iter`` the grain iterator position (one JSON per process); ``host`` the host-side schedule
(learning rate, plateau counters, best score); ``metrics`` (validation scores) only on the step saved as
best-by-validation, which Orbax's ``BestN`` policy keeps beside the latest N. Orbax writes
each step into a temporary directory and renames it when complete, so a process killed at any moment
leaves only whole checkpoints behind (the half-written temporary one is ignored and cleaned up on the next
start).
"""
from __future__ import annotations

import json

import grain
import jax
import numpy as np
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from flax import nnx

from jaxtag.models import registry
from jaxtag.core import choices, distributed, errors, paths, rundir, sharding
from jaxtag.training import train_state


# train.best_metric -> direction (choices.BEST_METRICS: loss is lower-is-better, the scores higher)
BEST_METRICS = {m: "min" if m == "loss" else "max" for m in choices.BEST_METRICS}
CORRUPT_SUFFIX = ".corrupt"


def _best_fn(metric: str):
  """Orbax ranks checkpoints by this; a NaN score (e.g. ROC-AUC of a split without positives) ranks last."""
  worst = float("inf") if BEST_METRICS[metric] == "min" else float("-inf")

  def score(metrics) -> float:
    value = float(metrics.get(metric, worst))
    return worst if value != value else value
  return score


def _manager(path, keep: int, best_metric: str | None = "loss") -> ocp.CheckpointManager:
  """One async manager: the latest ``keep`` steps plus the best by ``best_metric`` (Orbax's combined
  preservation policy: ``AnyPreservationPolicy([LatestN, BestN])``). Only best-so-far saves carry metrics,
  so ``BestN(n=1)`` keeps exactly the step the trainer recorded as best. Barriers are named after the
  directory, so two managers of one process never collide."""
  path = epath.Path(path)
  pp = ocp.checkpoint_managers
  policy = pp.LatestN(n=keep)
  kwargs = {}
  if best_metric is not None:
    policy = pp.AnyPreservationPolicy([policy, pp.BestN(
        get_metric_fn=_best_fn(best_metric), reverse=BEST_METRICS[best_metric] == "min", n=1,
        keep_checkpoints_without_metrics=False)])
    kwargs = {"best_fn": _best_fn(best_metric), "best_mode": BEST_METRICS[best_metric]}
  return ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(
      preservation_policy=policy, create=True, enable_async_checkpointing=True, cleanup_tmp_directories=True,
      keep_checkpoints_without_metrics=False,
      multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=path.name), **kwargs))


absolute = paths.absolute


def abstract(tree):
  """Shape/dtype/sharding skeleton of ``tree``: restores land on the *current* mesh (orbax#648)."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _one_line(error: BaseException) -> str:
  """The first line of an error (tensorstore's run to 40 lines), capped, with its type."""
  text = str(error).strip().splitlines()[0] if str(error).strip() else ""
  if len(text) > 300:   # the OS error ("No space left on device") is at the end of tensorstore's messages
    text = f"{text[:140]} ... {text[-160:]}"
  return f"{type(error).__name__}: {text}"


class Checkpoints:
  """``checkpoints/<step>``: the latest ``keep`` steps plus the best-by-validation one, one Orbax manager.

  Resume falls back past unreadable steps (``restore_latest``); a failed save raises
  ``errors.CheckpointSaveError`` and leaves every earlier step as it was (Orbax writes into a temporary
  directory and renames it only when complete, and deletes old steps only after a save has committed)."""

  def __init__(self, workdir: str, keep: int, best_metric: str = "loss"):
    workdir = absolute(workdir)
    self.workdir = workdir
    self.latest = _manager(workdir / rundir.CHECKPOINTS, keep, best_metric)
    # the last step saved by this process: a best save and a periodic one at the same step write once
    self._saved = None
    self._failed = False   # a save failed and was reported: wait() in the trainer's clean-up must not raise it again

  def latest_step(self) -> int | None:
    """The newest complete step; with several processes, checked to be the same on all (each lists the
    directory itself, and a disagreement would otherwise hang the collective restore)."""
    step = self.latest.latest_step()
    distributed.assert_same(-1 if step is None else step, "processes see different latest checkpoints")
    return step

  def corrupt_steps(self) -> list[str]:
    """Steps set aside by an earlier fallback (``<step>.corrupt``)."""
    directory = self.latest.directory
    return sorted(p.name for p in directory.iterdir() if CORRUPT_SUFFIX in p.name) if directory.exists() else []

  def best_step(self) -> int | None:
    """The step saved as best (it carries validation metrics), or None before the first validation."""
    step = self.latest.best_step()
    return step if step is not None and self.latest.metrics(step) is not None else None

  def save(self, step: int, state, data_iter, host: dict, metrics: dict | None = None) -> None:
    """Saves ``step`` (async). ``metrics`` marks it as the new best. A step already saved is not re-saved."""
    if step == self._saved:
      return
    items = {"state": ocp.args.StandardSave(state), "data_iter": grain.checkpoint.CheckpointSave(data_iter),
             "host": ocp.args.JsonSave(host)}
    try:   # a failure of the previous (async) save surfaces first, under its own step
      self.latest.check_for_errors()
    except Exception as e:   # noqa: BLE001
      raise self._save_error(self._saved if self._saved is not None else step, e) from e
    try:
      self.latest.save(step, force=True, metrics=None if metrics is None else _plain(metrics),
                       args=ocp.args.Composite(**items))
    except Exception as e:   # noqa: BLE001 - disk full, quota, permissions
      raise self._save_error(step, e) from e
    self._saved = step
    logging.info("checkpoint step %d%s -> %s", step, " (best)" if metrics is not None else "",
                 self.latest.directory / str(step))

  def save_best(self, step: int, state, data_iter, host: dict, metrics: dict) -> None:
    """The new best-by-validation step: a full checkpoint whose metrics Orbax's ``BestN`` keeps it by."""
    self.save(step, state, data_iter, host, metrics=metrics)

  def _save_error(self, step: int, error: BaseException) -> errors.CheckpointSaveError:
    """The one-line error of a failed save; its temporary directory is removed now, to free the space."""
    self._failed = True
    if jax.process_index() == 0 and step >= 0:
      for tmp in self.latest.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
        try:
          tmp.rmtree()
        except OSError:
          pass   # removed on the next start (cleanup_tmp_directories)
    good = [s for s in self.latest.all_steps() if s != step]
    return errors.CheckpointSaveError(
        f"saving checkpoint step {step} failed ({_one_line(error)}); the run stops here. Earlier checkpoints "
        f"are intact (newest: {max(good) if good else 'none'}). Free space in {self.latest.directory} (or fix "
        f"its permissions) and run the same command again to resume.")

  def _restore(self, step: int, state_like, data_iter):
    items = {"state": ocp.args.StandardRestore(abstract(state_like)), "host": ocp.args.JsonRestore()}
    index, count = jax.process_index(), jax.process_count()
    if (self.latest.directory / str(step) / "data_iter" / f"process_{index}-of-{count}.json").exists():
      items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
    else:
      logging.warning("checkpoint %d holds no data-iterator state for %d processes (written by a different "
                      "process count): parameters, optimizer, RNG and schedule resume exactly; the data stream "
                      "restarts from the beginning of this process's new shard", step, count)
    out = self.latest.restore(step, args=ocp.args.Composite(**items))
    return out["state"], dict(out["host"])

  def restore_state(self, step: int, state_like):
    """The train state of ``step`` alone, on ``state_like``'s shardings (a recipe's reload of the best step)."""
    out = self.latest.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract(state_like))))
    return out["state"]

  def restore_latest(self, state_like, data_iter):
    """Restores the newest *readable* step into ``data_iter`` (in place); returns ``(step, state, host)``.

    The iterator state is one file per process, ``process_<i>-of-<n>.json``. A checkpoint written by a
    different number of processes has none for this layout (each process now reads a different shard), so
    the train state and schedule resume exactly and the data stream starts over (docs/design.md).

    A step that fails to restore (missing or truncated files, bad metadata) on any process is skipped on
    all of them (one allgather per try), with one warning naming the step and the error; once an older
    step restores, the failed newer ones are renamed ``<step>.corrupt`` (kept for inspection, ignored by
    Orbax). If no step restores, nothing is renamed (the cause is then more likely the config or the
    storage than every checkpoint) and a ``UserError`` says what to do."""
    steps = sorted(self.latest.all_steps(), reverse=True)
    if not steps and self.corrupt_steps():
      raise errors.UserError(
          f"{self.latest.directory} holds only checkpoints set aside as unreadable "
          f"({', '.join(self.corrupt_steps())}); "
          "refusing to start from scratch over them: move the directory away (or use a new --workdir) to start over")
    failed = []
    for step in steps:
      try:
        state, host = self._restore(step, state_like, data_iter)
        ok, error = True, None
      except Exception as e:   # noqa: BLE001 - any unreadable file; the message is logged, the step skipped
        ok, error, state, host = False, e, None, None
      if distributed.all_processes(ok):   # every process tries the same step (one allgather)
        if failed:
          self._set_aside([s for s, _ in failed])
        return step, state, host
      reason = _one_line(error) if error is not None else "unreadable on another process"
      logging.warning("checkpoint step %d cannot be restored (%s); trying the previous step", step, reason)
      failed.append((step, reason))
    raise errors.UserError(
        f"no checkpoint in {self.latest.directory} can be restored (" +
        "; ".join(f"step {s}: {r}" for s, r in failed) + "). If the config changed, run with the config the "
        "run was started with; if the files are damaged, move the directory away (or use a new --workdir) to "
        "start over")

  def _set_aside(self, steps: list[int]) -> None:
    """Renames unreadable steps to ``<step>.corrupt`` (process 0; the others wait) and refreshes the list."""
    self.latest.wait_until_finished()
    if jax.process_index() == 0:
      for step in steps:
        src = self.latest.directory / str(step)
        dst = self.latest.directory / f"{step}{CORRUPT_SUFFIX}"
        n = 1
        while dst.exists():
          dst, n = self.latest.directory / f"{step}{CORRUPT_SUFFIX}.{n}", n + 1
        if src.exists():
          src.rename(dst)
          logging.warning("set aside unreadable checkpoint step %d as %s", step, dst)
    distributed.barrier("jaxtag_checkpoints_set_aside")
    self.latest.reload()

  def wait(self) -> None:
    try:
      self.latest.wait_until_finished()
    except Exception as e:   # noqa: BLE001 - an async save that failed after save() returned
      if not self._failed:
        raise self._save_error(self._saved if self._saved is not None else -1, e) from e

  def close(self) -> None:
    self.latest.close()


def _plain(metrics: dict) -> dict:
  """JSON-safe scalars only (Orbax writes metrics as JSON)."""
  return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.floating, np.integer))}


def write_run_info(workdir: str, config: ml_collections.ConfigDict, tags: list[str]) -> None:
  """``config.json`` and ``tags.json``: everything needed to rebuild the model for inference."""
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  rundir.path(workdir, rundir.CONFIG).write_text(config.to_json_best_effort(indent=2, sort_keys=True))
  rundir.path(workdir, rundir.TAGS).write_text(json.dumps(list(tags), indent=1))
  from jaxtag.models import contract
  contract.save(workdir, config)   # the preprocessing contract, readable without jaxtag (ONNX users, tag)


def read_run_info(workdir: str, flag: str = "--workdir") -> tuple[ml_collections.ConfigDict, list[str]]:
  """A run's config and tags; ``errors.MissingInput`` (one line) when ``workdir`` is not a run directory."""
  config, tags = rundir.read_config_and_tags(workdir, flag)
  return ml_collections.ConfigDict(config), tags


# Kept under its old name: the PyTorch peer's benchmark script (shared/peer/bench_jaxtag.py) calls it.
new_model = registry.new_model


def save_inference_checkpoint(workdir: str, config, model, tags: list[str], step: int = 0) -> None:
  """Writes a model that was not trained here (e.g. imported musicnn weights) as a normal jaxtag run."""
  write_run_info(workdir, config, tags)
  state = train_state.from_model(model)
  mngr = _manager(absolute(workdir) / rundir.CHECKPOINTS, 1, best_metric=None)
  mngr.save(step, force=True, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), host=ocp.args.JsonSave({"imported": True})))
  mngr.wait_until_finished()
  mngr.close()


def load_for_inference(workdir: str, which: str | int = "best", mesh=None):
  """``(config, tags, model, step)`` of a run: ``which`` is ``best``, ``latest`` or a step number.

  ``best`` is the step saved with the best validation metrics, and falls back to ``latest`` for a run that has not validated yet. The arrays are restored straight onto
  ``mesh`` (default: all devices), replicated. Call the model with ``train=False``.
  """
  which = choices.checkpoint(which)
  config, tags = read_run_info(workdir)
  root = absolute(workdir)
  if not (root / rundir.CHECKPOINTS).exists():
    raise errors.MissingInput(f"--workdir={workdir} holds no checkpoint yet (no {rundir.CHECKPOINTS}/ directory)")
  mngr = _manager(root / rundir.CHECKPOINTS, max(int(config.train.keep), 1),
                  config.train.get("best_metric", "loss"))
  try:
    best = mngr.best_step()
    if best is not None and mngr.metrics(best) is None:
      best = None   # no step carries validation metrics yet: "best" means the newest
    if which == "best" and best is not None:
      step = best
    elif which in ("best", "latest"):
      step = mngr.latest_step()
    else:
      step = int(which)
    if step is None:
      raise errors.MissingInput(f"--workdir={workdir} holds no checkpoint yet")
    if step not in mngr.all_steps():
      have = sorted(mngr.all_steps())
      raise errors.MissingInput(f"--checkpoint={step}: no checkpoint at step {step} in {workdir}; it has "
                                f"{', '.join(map(str, have)) or 'none'} (or give best or latest)")
    from jaxtag.training import trainable
    target = train_state.abstract(config, len(tags), mesh or sharding.make_mesh(),
                                  tx=trainable.optimizer_for(config))   # the run's optimizer-state layout
    out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
  finally:
    mngr.close()
  model = nnx.merge(train_state.graphdef(config, len(tags)), out["state"]["params"], out["state"]["rest"])
  return config, tags, model, int(step)
