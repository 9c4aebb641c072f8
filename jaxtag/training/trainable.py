"""What trains: ``config.train.trainable`` = ``all`` | ``top`` | ``head`` and ``train.backbone_lr_scale``.

Every model of the registry names its output layer ``out`` (``backend.out`` in the paper's Tagger) and, where it
has one, its dense block ``dense``/``bn_dense`` (Tagger), ``dense``/``dense_bn`` (musicnn), ``dense``
(Dieleman, Timbre CNN) or ``dense1``/``dense2`` (SampleCNN multi). Each parameter gets one label:

* ``head``     the output layer: always trains, at the full learning rate;
* ``backbone`` below the head and trainable: Adam at ``lr * backbone_lr_scale``;
* ``frozen``   ``optax.set_to_zero``: no optimizer state (no Adam moments are allocated) and an exactly zero
  update, so the leaf stays bitwise equal; the step also stops its gradient, so XLA drops the backward pass
  below the lowest trainable layer.

BatchNorm of a frozen part runs in inference mode (``layers.BatchNorm.frozen``): it normalises with the
source model's running statistics and never updates them. Training-mode BN with frozen statistics would
normalise with batch statistics during training and with running ones at test time, i.e. train a head on
features the evaluated model never produces. Dropout inside a frozen part (musicnn's ``drop1`` under ``head``,
musicnn-VGG's conv dropout) becomes the identity, so ``head`` is a linear probe on the deterministic embedding;
the dropout feeding a trainable layer stays.
"""
from __future__ import annotations

import jax
from absl import logging
from flax import nnx

from jaxtag.models import registry
from jaxtag.core import choices
from jaxtag.models.layers import BatchNorm

MODES = choices.TRAINABLE
HEAD = ("out",)
DENSE_BLOCK = ("dense", "bn_dense", "dense_bn", "dense1", "dense2")
SCOPES = ((), ("backend",))                       # where head and dense block live: the model or its back-end
FROZEN_DROPOUT = {"head": ("drop1", "drop_block"), "top": ("drop_block",), "all": ()}


def _keys(path) -> tuple:
  return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def group(path) -> str:
  """``head`` | ``top`` | ``rest`` for a parameter/module path such as ``("backend", "out", "kernel")``."""
  keys = _keys(path)
  for scope in SCOPES:
    n = len(scope)
    if keys[:n] == scope and len(keys) > n:
      if keys[n] in HEAD:
        return "head"
      if keys[n] in DENSE_BLOCK:
        return "top"
  return "rest"


def check_mode(mode: str) -> str:
  choices.check("train.trainable", mode, MODES)
  return mode


def trains(path, mode: str) -> bool:
  g = group(path)
  return g == "head" or mode == "all" or (mode == "top" and g == "top")


def labels(params, mode: str):
  """The label pytree of ``params`` (``head`` / ``backbone`` / ``frozen``) for ``optax.multi_transform``."""
  check_mode(mode)
  return jax.tree_util.tree_map_with_path(
      lambda p, _: "head" if group(p) == "head" else "backbone" if trains(p, mode) else "frozen", params)


def frozen_mask(params, mode: str):
  """``True`` for every parameter that must not change (``None`` when everything trains)."""
  if check_mode(mode) == "all":
    return None
  return jax.tree_util.tree_map_with_path(lambda p, _: not trains(p, mode), params)


def freeze(model: nnx.Module, mode: str) -> dict:
  """Puts the frozen part of ``model`` in inference mode (in place, static attributes only: the state tree
  and so the checkpoints are unchanged); returns counts for the log."""
  check_mode(mode)
  counts = {"frozen_batchnorm": 0, "identity_dropout": 0}
  if mode == "all":
    return counts
  for path, node in nnx.iter_graph(model):
    if isinstance(node, BatchNorm) and not trains(path, mode):
      node.frozen = True
      counts["frozen_batchnorm"] += 1
    elif isinstance(node, nnx.Dropout) and path and _keys(path)[-1] in FROZEN_DROPOUT[mode]:
      node.rate = 0.0
      counts["identity_dropout"] += 1
  return counts


def graphdef(config, n_tags: int):
  """The run's graphdef: ``train_state.graphdef`` with the frozen part in inference mode (``freeze``)."""
  from jaxtag.training import step as step_lib
  model = registry.abstract_model(config, n_tags)
  counts = freeze(model, str(config.train.get("trainable", "all")))
  if any(counts.values()):
    logging.info("train.trainable=%s: %s", config.train.trainable, counts)
  return step_lib.split_model(model)[0]


def optimizer_for(config):
  """The run's optimizer: plain Adam moments when everything trains at one rate (the state layout of runs
  from before this option), else ``step.optimizer`` with this module's labels (a function of the parameter
  paths, so it also works under ``jax.eval_shape`` for restore targets)."""
  from jaxtag.training import recipe, step as step_lib
  if recipe.is_won(config):   # Won et al.'s Adam -> SGD recipe (its own state layout)
    return recipe.optimizer(float(config.train.won_weight_decay))
  mode = check_mode(str(config.train.get("trainable", "all")))
  scale = float(config.train.get("backbone_lr_scale", 1.0))   # >= 0: the config schema
  if mode == "all" and scale == 1.0:
    return step_lib.optimizer()
  return step_lib.optimizer(lambda params: labels(params, mode), backbone_lr_scale=scale)
