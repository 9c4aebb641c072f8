"""Train-step loss, gradient norm, updated parameters and eval logits of one spectrogram and one waveform
model on a fixed batch: the reference that proves the speed work on the layers did not change the math.

``PYTHONPATH=$PWD python tests/step_reference.py`` (from the repository root) rewrites ``tests/data/step_reference.npz``;
it was run once, op by op, on the code *before* the layer rewrite (main 985c8f7: reduce-window
max-pools, gather framing) and is only to be re-run when the math is meant to change. ``tests/test_step_reference.py``
recomputes the same quantities with the current code and compares.
"""
from __future__ import annotations

import functools
import os

import jax
import numpy as np

from configs import mtt
from jaxtag.models import registry
from jaxtag.core import sharding
from jaxtag.training import step as step_lib

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "step_reference.npz")
MODELS = {"spec-k8-f64-u200": lambda: mtt.get_config("spectrogram,small"),
          "wave-x2-f64-u200": lambda: mtt.get_config("waveform,small")}
BATCH = 4
MICRO = "logits, micro-batches of 1"   # computed, compared with the reference logits, not stored


def _put(out: dict, prefix: str, tree):
  """Small leaves whole; of large ones the first 2,000 values and the sum of |w| (keeps the file small)."""
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      continue
    leaf = np.asarray(leaf).ravel()
    out[f"{prefix}/{jax.tree_util.keystr(path)}"] = leaf[:2000]
    out[f"abs_sum_{prefix}/{jax.tree_util.keystr(path)}"] = np.abs(leaf).sum(dtype=np.float64)


def compute(name: str, eager: bool = False) -> dict[str, np.ndarray]:
  """Loss and gradients of one training-mode step (dropout on, BN batch statistics), the BN running
  statistics it produces, and the eval logits with those statistics; one device, fixed seeds.

  Gradients, not Adam-updated parameters: Adam turns a near-zero gradient into a +-lr step whose sign
  is float noise, so parameters after a step are not a stable thing to compare. ``eager`` runs op by op
  (``jax.disable_jit``): the reference is the old code's math evaluated that way, because the old jitted
  program itself was off: XLA:CPU's compiled reduce-window max-pool gradient of the waveform model differed
  from its own op-by-op gradient by up to 4.7 % of a leaf's scale (frontend block 5's conv bias; ~0.5 % in
  the blocks before), while loss, BN statistics and logits were exact (docs/design.md, "CPU kernels").
  """
  if eager:
    with jax.disable_jit():
      return compute(name)
  c = MODELS[name]()
  mesh = sharding.make_mesh(jax.devices()[:1])
  n = int(round(c.data.chunk_seconds * c.data.sample_rate))
  graphdef, params, rest = step_lib.split_model(registry.new_model(c, 50))
  rng = np.random.default_rng(0)
  x = (0.1 * rng.standard_normal((BATCH, n))).astype(np.float32)
  y = (rng.random((BATCH, 50)) < 0.5).astype(np.float32)
  state = jax.device_put({"params": params, "rest": rest}, sharding.replicated(mesh))
  grads_fn = jax.jit(functools.partial(step_lib.loss_and_grads, graphdef=graphdef, loss_kind="bce", l2=1e-5))
  (total, (loss, new_rest)), grads = grads_fn(state, {"audio": x, "targets": y})
  out = {"loss": np.asarray(loss), "total_loss": np.asarray(total)}
  _put(out, "grad", grads)
  _put(out, "rest", new_rest)
  logits = jax.jit(functools.partial(step_lib.eval_logits, graphdef=graphdef, rows=0))(params, new_rest, x)
  out["logits"] = np.asarray(logits)
  if not eager:   # the same logits one row at a time (step.in_microbatches, the CPU's inference path)
    one_by_one = functools.partial(step_lib.eval_logits, graphdef=graphdef, rows=1)
    out[MICRO] = np.asarray(jax.jit(one_by_one)(params, new_rest, x))
  return out


def main():
  arrays = {f"{name}|{k}": v for name in MODELS for k, v in compute(name, eager=True).items()}
  np.savez_compressed(PATH, **arrays)
  print(f"wrote {PATH}: {len(arrays)} arrays")


if __name__ == "__main__":
  main()
