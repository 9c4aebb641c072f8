"""The one facade over Orbax: save, resume, keep-best, and loading a run for inference.

Layout of a workdir::

  config.json        the run's full config        tags.json   the model's output tags, in order
  checkpoints/<step>/{state, data_iter, host}     latest ``train.keep`` steps (async saves)
  best/<step>/{state, host}                       the best-by-validation step, kept apart

``state`` is the train-state pytree of ``jaxtag.step`` (params, BatchNorm stats, dropout RNG, Adam moments,
step); ``data_iter`` the grain iterator position (one JSON per process); ``host`` the host-side schedule
(learning rate, plateau counters, best score). Orbax writes each step into a temporary directory and renames
it when complete, so a process killed at any moment leaves only whole checkpoints behind (the half-written
temporary one is ignored and cleaned up on the next start).
"""
from __future__ import annotations

import json

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from flax import nnx

from jaxtag import distributed, paths, sharding, train_state


def _manager(path, keep: int) -> ocp.CheckpointManager:
  """An async manager whose multi-process barriers are named after its directory: ``latest`` and ``best``
  save the same step at the same time, and with one shared prefix their barriers collide
  ("Barrier _async_write_complete.<step> is already ongoing")."""
  path = epath.Path(path)
  return ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=True, cleanup_tmp_directories=True,
      multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=path.name)))


absolute = paths.absolute


def abstract(tree):
  """Shape/dtype/sharding skeleton of ``tree``: restores land on the *current* mesh (orbax#648)."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpoints:
  """Latest-N checkpoints with the data iterator, plus the best-by-validation one."""

  def __init__(self, workdir: str, keep: int):
    workdir = absolute(workdir)
    self.latest = _manager(workdir / "checkpoints", keep)
    self.best = _manager(workdir / "best", 1)

  def latest_step(self) -> int | None:
    """The newest complete step; with several processes, checked to be the same on all (each lists the
    directory itself, and a disagreement would otherwise hang the collective restore)."""
    step = self.latest.latest_step()
    distributed.assert_same(-1 if step is None else step, "processes see different latest checkpoints")
    return step

  def save(self, step: int, state, data_iter, host: dict) -> None:
    self.latest.save(step, force=True, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data_iter=grain.checkpoint.CheckpointSave(data_iter),
        host=ocp.args.JsonSave(host)))

  def save_best(self, step: int, state, host: dict) -> None:
    self.best.save(step, force=True, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), host=ocp.args.JsonSave(host)))

  def restore_latest(self, state_like, data_iter):
    """Restores the newest step into ``data_iter`` (in place) and returns ``(step, state, host)``.

    The iterator state is one file per process, ``process_<i>-of-<n>.json``. A checkpoint written by a
    different number of processes has none for this layout (each process now reads a different shard), so
    the train state and schedule resume exactly and the data stream starts over (docs/design.md)."""
    step = self.latest.latest_step()
    items = {"state": ocp.args.StandardRestore(abstract(state_like)), "host": ocp.args.JsonRestore()}
    index, count = jax.process_index(), jax.process_count()
    if (self.latest.directory / str(step) / "data_iter" / f"process_{index}-of-{count}.json").exists():
      items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
    else:
      logging.warning("checkpoint %d holds no data-iterator state for %d processes (written by a different "
                      "process count): parameters, optimizer, RNG and schedule resume exactly; the data stream "
                      "restarts from the beginning of this process's new shard", step, count)
    out = self.latest.restore(step, args=ocp.args.Composite(**items))
    return step, out["state"], dict(out["host"])

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def write_run_info(workdir: str, config: ml_collections.ConfigDict, tags: list[str]) -> None:
  """``config.json`` and ``tags.json``: everything needed to rebuild the model for inference."""
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))
  (workdir / "tags.json").write_text(json.dumps(list(tags), indent=1))


def read_run_info(workdir: str) -> tuple[ml_collections.ConfigDict, list[str]]:
  workdir = epath.Path(workdir)
  if not (workdir / "config.json").exists():
    raise FileNotFoundError(f"{workdir} has no config.json: not a jaxtag run directory")
  config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
  return config, json.loads((workdir / "tags.json").read_text())


# Kept under its old name: the PyTorch peer's benchmark script (shared/peer/bench_jaxtag.py) calls it.
new_model = train_state.new_model


def save_inference_checkpoint(workdir: str, config, model, tags: list[str], step: int = 0) -> None:
  """Writes a model that was not trained here (e.g. imported musicnn weights) as a normal jaxtag run."""
  write_run_info(workdir, config, tags)
  state = train_state.from_model(model)
  mngr = Checkpoints(workdir, keep=1)
  mngr.best.save(step, force=True, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), host=ocp.args.JsonSave({"imported": True})))
  mngr.wait()
  mngr.close()


def load_for_inference(workdir: str, which: str | int = "best", mesh=None):
  """``(config, tags, model, step)`` of a run: ``which`` is ``best``, ``latest`` or a step number.

  ``best`` falls back to ``latest`` for a run that has not validated yet. The arrays are restored straight
  onto ``mesh`` (default: all devices), replicated. Call the model with ``train=False``.
  """
  config, tags = read_run_info(workdir)
  ckpts = Checkpoints(workdir, keep=max(int(config.train.keep), 1))
  try:
    if which == "best" and ckpts.best.latest_step() is not None:
      mngr, step = ckpts.best, ckpts.best.latest_step()
    elif which in ("best", "latest"):
      mngr, step = ckpts.latest, ckpts.latest.latest_step()
    else:
      step = int(which)
      mngr = ckpts.best if step in ckpts.best.all_steps() else ckpts.latest
    if step is None:
      raise FileNotFoundError(f"{workdir} holds no checkpoint")
    if step not in mngr.all_steps():
      raise FileNotFoundError(f"no checkpoint at step {step} in {workdir}; have "
                              f"{sorted(set(ckpts.latest.all_steps()) | set(ckpts.best.all_steps()))}")
    target = train_state.abstract(config, len(tags), mesh or sharding.make_mesh())
    out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
  finally:
    ckpts.close()
  model = nnx.merge(train_state.graphdef(config, len(tags)), out["state"]["params"], out["state"]["rest"])
  return config, tags, model, int(step)
