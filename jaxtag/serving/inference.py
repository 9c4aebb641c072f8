"""The one inference path: a run's model on the device mesh, fed model inputs made by the run's preprocessing
contract (``jaxtag.models.contract``), computed by ``step.eval_outputs`` (micro-batches on CPU).

Two ways to feed it, one forward pass:

- **A split** (``make_eval_fn`` + ``predict_on_mesh``): validation, ``evaluate``, the probe's embeddings. Every
  process feeds its own shard of songs (the data layer's eval pipeline); a process that runs out of chunks keeps
  feeding all-padding batches until every process is done, so the collective jitted step stays in lock-step
  across hosts. Outputs come back replicated, so each process sees every chunk's result.
- **Inputs in hand** (``RunModel``): ``predict`` (a few files), ``tag`` (a library, many files' chunks per
  batch), the export's parity check. One fixed batch shape; each process passes its own rows
  (``jax.make_array_from_process_local_data``: ``jax.device_put`` onto a mesh spanning other processes fails)
  and the outputs stay sharded along ``data``, so each process reads back only its own rows.
"""
from __future__ import annotations

import functools

import jax
import numpy as np

from jaxtag.core import distributed, scoring, sharding
from jaxtag.models import contract as contract_lib
from jaxtag.training import checkpoint, train_state
from jaxtag.training import step as step_lib


def make_eval_fn(graphdef, mesh, output: str = "logits"):
  """Jitted ``(params, rest, audio, song) -> (output, song)`` (``"logits"`` or ``"embed"``), batch in along
  ``data``, results replicated: what ``predict_on_mesh`` feeds."""
  repl, data = sharding.replicated(mesh), sharding.data_sharded(mesh)
  fn = functools.partial(step_lib.eval_outputs, graphdef=graphdef, outputs=(output,), shards=mesh.devices.size)
  return jax.jit(lambda p, r, audio, song: (fn(p, r, audio)[0], song),
                 in_shardings=(repl, repl, data, data), out_shardings=(repl, repl))


def predict_on_mesh(eval_fn, params, rest, data_cfg, songs, *, global_batch: int, mesh, contract=None):
  """All non-overlapping chunks of ``songs``: ``(chunk_outputs (C, T), chunk_song (C,), stats)``; with a
  preprocessing ``contract``, all its model inputs of each song instead.

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


class RunModel:
  """A run's model on every local device with its preprocessing contract: ``model(inputs)`` for exactly
  ``model.batch`` local rows, ``model.run(inputs)`` for any number (one process; padded to the batch shape).

  Outputs are tag probabilities and, with ``embeddings=True``, the penultimate features from the same pass.
  Works on trained runs and on runs written by the musicnn weight import alike."""

  def __init__(self, workdir: str, which="best", *, batch: int = 32, embeddings: bool = False,
               input_overlap: float = 0.0):
    self.mesh = sharding.make_mesh()
    self.config, self.tags, model, self.step = checkpoint.load_for_inference(workdir, which, mesh=self.mesh)
    self.contract = contract_lib.for_run(workdir, self.config, input_overlap)
    self.sample_rate = self.contract.sample_rate
    n_local = jax.local_device_count()
    self.batch = max(n_local, -(-batch // n_local) * n_local)   # a multiple of the local devices
    self.embeddings = embeddings
    graphdef, params, rest = step_lib.split_model(model)
    self._params, self._rest = train_state.on_mesh((params, rest), self.mesh)   # restored there already
    self._data = sharding.data_sharded(self.mesh)
    repl = sharding.replicated(self.mesh)
    fn = functools.partial(step_lib.eval_outputs, graphdef=graphdef, shards=self.mesh.devices.size,
                           outputs=("logits", "embed") if embeddings else ("logits",))
    self._fn = jax.jit(fn, in_shardings=(repl, repl, self._data), out_shardings=self._data)

  def __call__(self, inputs: np.ndarray):
    """``(probs (batch, T), embeddings (batch, D) or None)`` for exactly ``self.batch`` rows of this process."""
    x = jax.make_array_from_process_local_data(self._data, np.asarray(inputs, np.float32))
    out = [_local(y) for y in self._fn(self._params, self._rest, x)]
    probs = scoring.sigmoid(out[0]).astype(np.float32)
    return probs, (out[1].astype(np.float32) if self.embeddings else None)

  def run(self, inputs: np.ndarray):
    """``__call__`` over any number of rows: batches of ``self.batch``, the last one zero-padded."""
    probs, embs = [], []
    for i in range(0, len(inputs), self.batch):
      x = inputs[i:i + self.batch]
      p, e = self(np.pad(x, ((0, self.batch - len(x)),) + ((0, 0),) * (x.ndim - 1)))
      probs.append(p[:len(x)])
      embs.append(e[:len(x)] if e is not None else None)
    return np.concatenate(probs), (np.concatenate(embs) if self.embeddings else None)


def _local(x: jax.Array) -> np.ndarray:
  """This process's rows of a ``data``-sharded array, in the order it passed them."""
  shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
  return np.concatenate([np.asarray(s.data) for s in shards])
