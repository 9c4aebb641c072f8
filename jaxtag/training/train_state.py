"""The train state, made one way and made on the mesh.

Every caller that needs a model's state (training, restore, inference, imports, benchmarks) comes here; a model
alone comes from ``jaxtag.models.registry.new_model``. ``create`` runs the model's initialisers inside ``jax.jit(..., out_shardings=replicated)``, as big_vision
does: every process computes the same replicated arrays directly on its devices, so there is no host copy and no
multi-process special case. ``abstract`` is its ``jax.eval_shape`` twin (shapes, dtypes and the target shardings,
nothing allocated): what a restore lands on. ``from_model`` wraps a model built elsewhere (imported weights).

The state is a plain pytree ``{"params", "rest", "opt", "step", "nan_step"}``, see ``jaxtag.training.step``.
"""
from __future__ import annotations

import jax

from jaxtag.core import sharding
from jaxtag.models import registry
from jaxtag.training import step as step_lib


def graphdef(config, n_tags: int):
  """The static half of the model (layers, shapes); the arrays live in the state."""
  return step_lib.split_model(registry.abstract_model(config, n_tags))[0]


def _init_fn(config, n_tags: int, seed: int, tx):
  def init():
    _, params, rest = step_lib.split_model(registry.new_model(config, n_tags, seed))
    return step_lib.init_state(params, rest, tx)
  return init


def _seed(config, seed):
  return int(config.seed if seed is None else seed)


def create(config, n_tags: int, mesh, *, seed: int | None = None, tx=None):
  """``(graphdef, state)``: a fresh state, replicated on ``mesh``; ``seed`` defaults to ``config.seed``."""
  tx = tx or step_lib.optimizer()
  init = _init_fn(config, n_tags, _seed(config, seed), tx)
  state = jax.jit(init, out_shardings=sharding.replicated(mesh))()
  return graphdef(config, n_tags), state


def abstract(config, n_tags: int, mesh, *, tx=None):
  """Shape, dtype and replicated sharding of ``create``'s state: the target of a restore."""
  tx = tx or step_lib.optimizer()
  shapes = jax.eval_shape(_init_fn(config, n_tags, 0, tx))
  repl = sharding.replicated(mesh)
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=repl), shapes)


def from_model(model, mesh=None, *, tx=None) -> dict:
  """The state of a model built elsewhere (imported weights), with a fresh optimizer; on ``mesh`` if given."""
  tx = tx or step_lib.optimizer()
  _, params, rest = step_lib.split_model(model)
  state = step_lib.init_state(params, rest, tx)
  return state if mesh is None else on_mesh(state, mesh)


def on_mesh(tree, mesh):
  """``tree`` replicated on ``mesh``; arrays already placed that way are kept as they are.

  Trees from ``create`` or a restore are already on the mesh (also across processes); a tree of host or
  single-device arrays (a model built in memory by a tool or a test, one process) is placed by a jitted
  identity, the same mechanism as ``create``."""
  repl = sharding.replicated(mesh)
  leaves = jax.tree.leaves(tree)
  if all(isinstance(x, jax.Array) and x.sharding.is_equivalent_to(repl, x.ndim) for x in leaves):
    return tree
  return jax.jit(lambda t: t, out_shardings=repl)(tree)
