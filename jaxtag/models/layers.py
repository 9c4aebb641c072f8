"""Building blocks shared by every jaxtag model: conv -> ReLU -> BN, pooling helpers, parameter counting.

The authors' TF code applies BatchNorm *after* the ReLU everywhere and trains with TF's BN defaults
(epsilon 1e-3, momentum 0.99), so one block type with those knobs covers the paper, musicnn and most
baselines. Parameters are always float32; ``dtype`` only sets the compute precision.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

# TF's variance_scaling_initializer() default (He, fan-in, truncated normal), as the authors used.
HE = nnx.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


@dataclasses.dataclass(frozen=True)
class Hyper:
  """The per-model knobs every block needs: BN constants and the compute dtype."""
  bn_epsilon: float = 1e-3
  bn_momentum: float = 0.99
  dtype: jnp.dtype = jnp.float32

  @classmethod
  def from_config(cls, model_cfg) -> "Hyper":
    if model_cfg.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"model.dtype must be 'float32' or 'bfloat16', got {model_cfg.dtype!r}")
    return cls(float(model_cfg.bn_epsilon), float(model_cfg.bn_momentum), jnp.dtype(model_cfg.dtype))

  def bn(self, features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(features, epsilon=self.bn_epsilon, momentum=self.bn_momentum,
                         dtype=self.dtype, param_dtype=jnp.float32, rngs=rngs)

  def conv(self, in_ch: int, out_ch: int, kernel: Sequence[int], rngs: nnx.Rngs, *,
           strides: int | Sequence[int] = 1, padding="VALID") -> nnx.Conv:
    return nnx.Conv(in_ch, out_ch, tuple(kernel), strides=strides, padding=padding, kernel_init=HE,
                    dtype=self.dtype, param_dtype=jnp.float32, rngs=rngs)

  def dense(self, in_f: int, out_f: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(in_f, out_f, kernel_init=HE, dtype=self.dtype, param_dtype=jnp.float32, rngs=rngs)


class ConvReluBN(nnx.Module):
  """conv -> ReLU -> BatchNorm (per output channel), the authors' block order."""

  def __init__(self, hp: Hyper, in_ch: int, out_ch: int, kernel: Sequence[int], *, rngs: nnx.Rngs,
               strides: int | Sequence[int] = 1, padding="VALID"):
    self.conv = hp.conv(in_ch, out_ch, kernel, rngs, strides=strides, padding=padding)
    self.bn = hp.bn(out_ch, rngs)

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    return self.bn(jax.nn.relu(self.conv(x)), use_running_average=not train)


def pad_time(x: jax.Array, before: int, after: int) -> jax.Array:
  """Zero-pads axis 1 (time) only, as the authors' ``tf.pad`` before a 'valid' conv."""
  widths = [(0, 0)] * x.ndim
  widths[1] = (before, after)
  return jnp.pad(x, widths)


def max_pool_time(x: jax.Array, size: int, stride: int | None = None) -> jax.Array:
  """VALID max-pooling over axis 1 of ``(batch, time, ...)``; trailing remainder frames are dropped."""
  window = (size,) + (1,) * (x.ndim - 3)          # flax pools the axes between batch and features
  strides = (stride or size,) + (1,) * (x.ndim - 3)
  return nnx.max_pool(x, window, strides=strides, padding="VALID")


def global_max_mean(x: jax.Array) -> jax.Array:
  """Max and mean over time of ``(batch, time, C)``, interleaved as ``[max_0, mean_0, max_1, ...]``.

  The authors concatenate the two on a new last axis and flatten, which interleaves them; the order
  matters for imported weights and for exact equivalence of the dense layer that follows.
  """
  stacked = jnp.stack([x.max(axis=1), x.mean(axis=1)], axis=-1)
  return stacked.reshape(x.shape[0], -1)


def count_params(model: nnx.Module) -> int:
  """Number of trainable values: ``nnx.Param`` leaves only (BN running statistics are excluded)."""
  return sum(int(p.size) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
