"""Won et al.'s optimisation recipe (``train.recipe = "won"``), beside jaxtag's default (Adam + plateau halving).

Won et al. 2020 (minzwon/sota-music-tagging-models, ``training/solver.py``) train with Adam at 1e-4 and weight
decay 1e-4; after 80 epochs they reload the best model by validation loss and switch to SGD (Nesterov,
momentum 0.9, weight decay 1e-4) at 1e-3; 20 epochs later they reload the best model again and drop to 1e-4;
20 more and again, 1e-5, until the end. Epochs count from the previous switch, whatever the validation did. The
SGD optimizer is created once, at the first switch (zero momentum); the two later drops keep its momentum
and change only the rate, as ``param_groups[...]['lr'] = ...`` does.

Here the phases are counted in steps (``train.won_phase_steps``, or ``train.won_phase_epochs`` times the
steps of one pass over the training songs), the validation every ``train.eval_every`` steps picks the best
checkpoint as usual, and the switch happens *before* the first step of a new phase. The phase, its start and
lengths live in the checkpointed host schedule (``host``), and the optimizer state holds both Adam's moments and
SGD's momentum with a flag for which one updates, so its layout never changes and one jitted step serves every
phase. A run stopped anywhere (also right at a switch: its checkpoint holds the state before the switch)
resumes to the same bits as an uninterrupted one, because the switch itself is a pure function of the host
schedule and the best checkpoint, both on disk.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from absl import logging


PHASES = ("adam", "sgd_1", "sgd_2", "sgd_3")


class WonState(NamedTuple):
  sgd: jax.Array        # int32 scalar: 0 = Adam updates, 1 = SGD updates
  adam: optax.OptState
  momentum: optax.OptState


def optimizer(weight_decay: float) -> optax.GradientTransformation:
  """The update direction of Won's optimizers (the step multiplies it by ``-lr``): PyTorch's coupled weight
  decay (``g + wd * p`` on every parameter), then Adam (PyTorch's defaults equal optax's) or SGD with Nesterov
  momentum 0.9 (``optax.trace(nesterov=True)`` is PyTorch's ``buf = 0.9 buf + g; g + 0.9 buf``)."""
  adam, sgd = optax.scale_by_adam(), optax.trace(decay=0.9, nesterov=True)

  def init(params):
    return WonState(jnp.zeros((), jnp.int32), adam.init(params), sgd.init(params))

  def update(grads, state, params):
    g = jax.tree.map(lambda d, p: d + weight_decay * p.astype(d.dtype), grads, params)

    def adam_update():
      u, a = adam.update(g, state.adam, params)
      return u, a, state.momentum

    def sgd_update():
      u, m = sgd.update(g, state.momentum, params)
      return u, state.adam, m

    u, a, m = jax.lax.cond(state.sgd > 0, sgd_update, adam_update)
    return u, WonState(state.sgd, a, m)

  return optax.GradientTransformation(init, update)


def to_sgd(opt: WonState) -> WonState:
  """The optimizer state at the first switch: SGD updates from now on, with fresh (zero) momentum."""
  return WonState(jnp.ones_like(opt.sgd), opt.adam, jax.tree.map(jnp.zeros_like, opt.momentum))


def is_won(config) -> bool:
  return str(config.train.get("recipe", "default")) == "won"


def initial_host(config, steps_per_epoch: int) -> dict:
  """The recipe's part of the host schedule at step 0 (empty for the default recipe)."""
  if not is_won(config):
    return {}
  tc = config.train
  lengths = ([int(n) for n in tc.won_phase_steps] if tuple(tc.won_phase_steps)
             else [int(n) * steps_per_epoch for n in tc.won_phase_epochs])
  return {"recipe": "won", "phase": 0, "phase_start": 0, "phase_steps": lengths,
          "phase_lrs": [float(r) for r in tc.won_learning_rates], "lr": float(tc.won_learning_rates[0]),
          "reloads": []}


def steps_per_epoch(n_train_chunks: int, global_batch: int) -> int:
  return max(1, math.ceil(n_train_chunks / global_batch))


def uses_plateau(host: dict) -> bool:
  """Whether the plateau halving runs: not under Won's recipe, whose rates are its phases'."""
  return host.get("recipe") != "won"


def switch_due(host: dict, step: int) -> bool:
  """Whether a new phase starts before step ``step + 1``."""
  if host.get("recipe") != "won" or host["phase"] >= len(host["phase_steps"]):
    return False
  return step - host["phase_start"] >= host["phase_steps"][host["phase"]]


def next_phase(host: dict, step: int) -> tuple[dict, int | None, bool]:
  """``(host, reload_step, reset_momentum)`` of the switch at ``step``: the new schedule, the best step to
  reload (None before any validation) and whether the optimizer becomes SGD with fresh momentum."""
  phase = host["phase"] + 1
  reload = host.get("best_step")
  new = {**host, "phase": phase, "phase_start": step, "lr": host["phase_lrs"][phase],
         "reloads": [*host["reloads"], [step, reload]]}
  return new, reload, phase == 1


def switch(run, step: int) -> None:
  """Applies ``next_phase`` to a training ``run`` (``jaxtag.training.train.Run``): reloads the best checkpoint's
  parameters and BatchNorm/RNG state, switches the optimizer, sets the rate."""
  from jaxtag.training import train_state
  host, reload, reset = next_phase(run.host, step)
  state = dict(run.state)
  if reload is not None:
    run.ckpts.wait()   # the best step may still be being written
    best = run.ckpts.restore_state(reload, run.state)
    state["params"], state["rest"] = best["params"], best["rest"]
  if reset:
    state["opt"] = to_sgd(state["opt"])
  run.state = train_state.on_mesh(state, run.mesh)
  run.host = host
  logging.info("recipe won: step %d -> %s at lr %g%s", step, PHASES[host["phase"]], host["lr"],
               f", reloaded best step {reload}" if reload is not None else " (no validation yet: nothing reloaded)")
