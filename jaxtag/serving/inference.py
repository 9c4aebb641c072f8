"""Chunk-level inference over a split on the device mesh: the one path that validation, ``evaluate`` and
analyses share.

Every process feeds its own shard of songs (the data layer's eval pipeline); a process that runs out of
chunks keeps feeding all-padding batches until every process is done, so the collective jitted step stays
in lock-step across hosts. Logits come back replicated, so each process sees every chunk's result.
"""
from __future__ import annotations

import functools

import jax
import numpy as np

from jaxtag.core import distributed, sharding
from jaxtag.training import train_state
from jaxtag.training import step as step_lib


def make_eval_fn(graphdef, mesh):
  """Jitted ``(params, rest, audio, song) -> (logits, song)``, batch in along ``data``, results replicated."""
  repl, data = sharding.replicated(mesh), sharding.data_sharded(mesh)
  fn = functools.partial(step_lib.eval_logits, graphdef=graphdef, shards=mesh.devices.size)
  return jax.jit(lambda p, r, audio, song: (fn(p, r, audio), song),
                 in_shardings=(repl, repl, data, data), out_shardings=(repl, repl))


def predict_on_mesh(eval_fn, params, rest, data_cfg, songs, *, global_batch: int, mesh, contract=None):
  """All non-overlapping chunks of ``songs``: ``(chunk_logits (C, T), chunk_song (C,), stats)``; with a
  preprocessing ``contract`` (``jaxtag.models.contract``), all its model inputs of each song instead.

  ``stats`` holds this process's bad-song counts by reason (``bad``) and their indices (``bad_songs``)."""
  from jaxtag.data import pipeline
  local = sharding.local_batch_size(global_batch, mesh)
  batches = pipeline.eval_batches(data_cfg, songs, batch=local, process_index=jax.process_index(),
                                  process_count=jax.process_count(), contract=contract)
  it = iter(batches)
  logits_out, song_out = [], []
  pad = None
  while True:
    batch = next(it, None)
    if distributed.all_processes(batch is None):
      break
    if batch is None:
      batch = pad
    elif pad is None:
      pad = {"audio": np.zeros_like(batch["audio"]), "song": np.full_like(batch["song"], -1)}
    if batch is None:   # this process had no chunk at all: build the padding from the chunk length
      batch = pad = {"audio": np.zeros((local, *batches.input_shape), np.float32),
                     "song": np.full((local,), -1, np.int32)}
    g = sharding.to_global({"audio": batch["audio"], "song": batch["song"].astype(np.int32)}, mesh)
    logits, song = eval_fn(params, rest, g["audio"], g["song"])
    logits_out.append(logits)
    song_out.append(song)
  stats = {"bad": dict(batches.bad_counts), "bad_songs": list(batches.bad_songs)}
  if not logits_out:
    return np.zeros((0, 0), np.float32), np.zeros((0,), np.int32), stats
  logits = np.concatenate([np.asarray(x) for x in logits_out])
  song = np.concatenate([np.asarray(x) for x in song_out])
  keep = song >= 0
  return logits[keep], song[keep], stats


def predict_chunks(model, config, songs, *, batch: int = 0, mesh=None, contract=None):
  """Convenience for tools: ``(chunk_logits, chunk_song)`` of an NNX model on all local devices; a run's
  ``contract`` decides its inputs (default: plain waveform chunks)."""
  mesh = mesh or sharding.make_mesh()
  graphdef, params, rest = step_lib.split_model(model)
  params, rest = train_state.on_mesh((params, rest), mesh)   # a restored model is already there
  batch = batch or int(config.eval.batch_size)
  batch = -(-batch // mesh.devices.size) * mesh.devices.size
  logits, song, _ = predict_on_mesh(make_eval_fn(graphdef, mesh), params, rest, config.data, songs,
                                    global_batch=batch, mesh=mesh, contract=contract)
  return logits, song
