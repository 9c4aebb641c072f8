"""Start any config from another run: ``--config.init.workdir=W [--config.init.checkpoint=best|latest|STEP]``.

W is any jaxtag run directory, trained here or imported (``python -m jaxtag.tools.import_musicnn``). Two steps:

* ``check(config)`` at start, before any data work: reads only ``W/config.json`` and fails with one message
  naming every model setting of the config that contradicts W (architecture, widths, front-end, log-mel,
  sample rate, chunk length); the training-only settings (dropout, BN momentum, compute dtype) may differ.
* ``apply(params, rest, config, tags)`` after the fresh state is built: every parameter and BatchNorm
  statistic is copied from W's checkpoint; the output layer is W's if the tag lists are equal, else the
  fresh one with W's column (kernel and bias) for every tag present in both. The dropout RNG stays the new
  run's (its seed). Resuming a fine-tune run restores its own checkpoint and never calls this.
"""
from __future__ import annotations

import jax
import numpy as np
from absl import logging

from jaxtag.core import choices, rundir
from jaxtag.training import trainable

TRAINING_ONLY = ("model.dropout", "model.bn_momentum", "model.dtype")
DATA_KEYS = ("data.sample_rate", "data.chunk_seconds")


def contract(config) -> dict:
  """The settings a model's weights are tied to: ``{"model.name": ..., "data.sample_rate": ..., ...}``."""
  c = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  out = {k: v for k, v in choices.flatten(c.get("model", {}), "model.").items() if k not in TRAINING_ONLY}
  for key in DATA_KEYS:
    section, name = key.split(".")
    if name in c.get(section, {}):
      out[key] = c[section][name]
  return out


def _same(a, b) -> bool:
  if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
  return a == b


def mismatches(config, source_config) -> list[str]:
  """``["model.backend_filters: config 512, source 64", ...]`` (keys absent from either side are skipped,
  so runs written before a key existed still match)."""
  mine, theirs = contract(config), contract(source_config)
  return [f"{k}: config {mine[k]!r}, source {theirs[k]!r}" for k in sorted(mine)
          if k in theirs and not _same(mine[k], theirs[k])]


def source_info(workdir: str):
  """``(source config dict, source tags)`` from W's ``config.json`` / ``tags.json`` (no checkpoint read)."""
  if not rundir.is_run(workdir):
    raise choices.ConfigError(f"init.workdir {workdir} has no {rundir.CONFIG}: not a jaxtag run directory (import "
                              f"musicnn with python -m jaxtag.tools.import_musicnn --weights=... --out={workdir})")
  return rundir.read_config_and_tags(workdir)


def check(config) -> None:
  """Fails (one ``choices.ConfigError`` naming every difference) if the config's model contradicts ``init.workdir``."""
  workdir = str(config.init.workdir)
  if not workdir:
    return
  source, _ = source_info(workdir)   # init.checkpoint and train.trainable: checked by the config schema
  bad = mismatches(config, source)
  if bad:
    flags = " ".join(f"--config.{b.split(':')[0]}={contract(source)[b.split(':')[0]]}" for b in bad)
    raise choices.ConfigError(f"the config's model does not match init.workdir {workdir}: {'; '.join(bad)}. "
                     f"Match the source run ({flags}) or start from scratch (init.workdir='').")


def _key(path) -> tuple:
  return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def _is_rng(path, leaf) -> bool:
  return "rngs" in _key(path) or jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def head_rows(source_tags, tags) -> list[tuple[int, int]]:
  """``[(new column, source column)]`` for every tag present in both lists."""
  where = {str(t): i for i, t in enumerate(source_tags)}
  return [(j, where[str(t)]) for j, t in enumerate(tags) if str(t) in where]


def _host(x) -> np.ndarray:
  """A replicated array as numpy, also when it spans other processes' devices (each holds a full copy)."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    x = x.addressable_data(0)
  return np.asarray(x)


def merge_trees(fresh, source, source_tags, tags):
  """``fresh`` with every leaf replaced by ``source``'s (same path), except RNG state and, when the vocabularies
  differ, the head, whose shared columns (last axis of kernel and bias) come from ``source``."""
  src = {_key(p): _host(leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(source)[0]
         if not _is_rng(p, leaf)}
  same_vocab = [str(t) for t in source_tags] == [str(t) for t in tags]
  rows = head_rows(source_tags, tags)

  def pick(path, leaf):
    key = _key(path)
    if _is_rng(path, leaf):
      return leaf
    if key not in src:
      raise ValueError(f"init.workdir has no {'/'.join(key[:-1])}: not the same architecture")
    value = src[key]
    if trainable.group(path) == "head" and not same_vocab:
      out = np.array(_host(leaf))
      if rows:
        new, old = zip(*rows)
        out[..., list(new)] = value[..., list(old)]
      return jax.numpy.asarray(out, leaf.dtype)
    if value.shape != leaf.shape:
      raise ValueError(f"init.workdir's {'/'.join(key[:-1])} has shape {value.shape}, the config's {leaf.shape}")
    return jax.numpy.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(pick, fresh)


def load_source(config):
  """``(source params, source rest, source tags, step)`` of ``init.workdir`` at ``init.checkpoint``."""
  from jaxtag.training import checkpoint
  from jaxtag.training import step as step_lib
  _, tags, model, step = checkpoint.load_for_inference(str(config.init.workdir), config.init.checkpoint)
  _, params, rest = step_lib.split_model(model)
  return params, rest, tags, step


def apply(params, rest, config, tags):
  """``(params, rest, info)`` initialised from ``config.init.workdir`` (see the module docstring)."""
  src_params, src_rest, src_tags, step = load_source(config)
  params = merge_trees(params, src_params, src_tags, tags)
  rest = merge_trees(rest, src_rest, src_tags, tags)
  shared = head_rows(src_tags, tags)
  info = {"workdir": str(config.init.workdir), "checkpoint": str(config.init.checkpoint), "step": int(step),
          "source_tags": len(src_tags), "tags": len(tags), "shared_tags": len(shared),
          "head": "kept" if list(map(str, src_tags)) == list(map(str, tags)) else "rebuilt"}
  logging.info("initialised from %s step %d: head %s, %d of %d tags shared with the source", info["workdir"],
               step, info["head"], len(shared), len(tags))
  return params, rest, info
