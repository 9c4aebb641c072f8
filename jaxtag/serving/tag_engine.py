"""The run's model on every local device, one fixed batch shape, fed chunks from many files at once.

Each process passes its own ``(batch, samples)`` slice; ``jax.make_array_from_process_local_data`` builds
the global batch over all processes' devices (``jax.device_put`` onto a mesh that spans other processes
fails), the parameters are restored replicated onto the same mesh (``checkpoint.load_for_inference``), and the outputs stay
sharded along ``data`` so each process reads back only its own rows (no all-gather of results).
"""
from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from jaxtag.training import checkpoint, train_state
from jaxtag.core import scoring, sharding
from jaxtag.training import step as step_lib


class Engine:
  """``engine(chunks) -> (probs, embeddings or None)`` for exactly ``engine.batch`` local chunks."""

  def __init__(self, workdir: str, which="best", *, batch: int = 32, embeddings: bool = False):
    self.mesh = sharding.make_mesh()
    self.config, self.tags, model, self.step = checkpoint.load_for_inference(workdir, which, mesh=self.mesh)
    n_local = jax.local_device_count()
    self.batch = max(n_local, -(-batch // n_local) * n_local)   # a multiple of the local devices
    self.embeddings = embeddings
    graphdef, params, rest = step_lib.split_model(model)
    self._params, self._rest = train_state.on_mesh((params, rest), self.mesh)   # restored there already
    self._data = sharding.data_sharded(self.mesh)
    repl = sharding.replicated(self.mesh)

    def one_pass(p, r, x):
      m = nnx.merge(graphdef, p, r, copy=True)
      logits = m(x, train=False).astype(np.float32)
      return (logits, m.embed(x, train=False)) if embeddings else (logits,)

    def forward(p, r, x):   # the CPU's micro-batches (step.in_microbatches), split like x over the mesh
      return step_lib.in_microbatches(lambda a: one_pass(p, r, a), x, shards=self.mesh.devices.size)
    self._fn = jax.jit(forward, in_shardings=(repl, repl, self._data), out_shardings=self._data)

  def __call__(self, chunks: np.ndarray):
    x = jax.make_array_from_process_local_data(self._data, np.asarray(chunks, np.float32))
    out = [_local(y) for y in self._fn(self._params, self._rest, x)]
    probs = scoring.sigmoid(out[0]).astype(np.float32)
    return probs, (out[1].astype(np.float32) if self.embeddings else None)


def _local(x: jax.Array) -> np.ndarray:
  """This process's rows of a ``data``-sharded array, in the order it passed them."""
  shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
  return np.concatenate([np.asarray(s.data) for s in shards])
