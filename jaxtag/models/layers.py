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

from jaxtag import choices

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
    choices.check("model.dtype", model_cfg.dtype, choices.DTYPES)
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


class ConvBNAct(nnx.Module):
  """conv -> BatchNorm -> activation, the order of SampleCNN's and Choi et al.'s Keras code."""

  def __init__(self, hp: Hyper, in_ch: int, out_ch: int, kernel: Sequence[int], *, rngs: nnx.Rngs,
               strides: int | Sequence[int] = 1, padding="SAME", act=jax.nn.relu):
    self.conv = hp.conv(in_ch, out_ch, kernel, rngs, strides=strides, padding=padding)
    self.bn = hp.bn(out_ch, rngs)
    self.act = act

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    return self.act(self.bn(self.conv(x), use_running_average=not train))


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


def max_over(x: jax.Array, axis: int | tuple[int, ...]) -> jax.Array:
  """Max over whole axes as a max-pool (``reduce_window``), the authors' ``max_pooling2d`` over all bins.

  Not ``jnp.max``: its gradient splits between ties by dividing by their count, and when XLA recomputes
  the operand with different rounding in the backward pass no element equals the max, giving 0/0 = NaN
  (seen on CPU for musicnn's timbral branches). The max-pool gradient goes to one arg-max element.
  """
  axes = (axis,) if isinstance(axis, int) else axis
  window = tuple(x.shape[a] if a in axes else 1 for a in range(x.ndim))
  pooled = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, (1,) * x.ndim, "VALID")
  return pooled.squeeze(axes)


def split_windows(x: jax.Array, size: int) -> tuple[jax.Array, int]:
  """Cuts axis 1 into ``n`` non-overlapping windows of ``size``, folded into the batch: ``(B*n, size, ...)``.

  For models whose flatten ties them to one input length: longer inputs are cut (the tail is dropped,
  as musicnn does), shorter ones are zero-padded to one window. ``mean_windows`` undoes the fold.
  """
  length = x.shape[1]
  if length < size:
    x = pad_time(x, 0, size - length)
  n = max(1, length // size)
  x = x[:, :n * size]
  return x.reshape((x.shape[0] * n, size) + x.shape[2:]), n


def mean_windows(y: jax.Array, n: int) -> jax.Array:
  """``(B*n, ...)`` per-window outputs -> ``(B, ...)`` mean over each example's windows."""
  return y.reshape((-1, n) + y.shape[1:]).mean(axis=1)


class Windowed(nnx.Module):
  """Base of the models that score fixed windows (or the whole input when ``window`` is None).

  Subclasses set ``self.window`` and define ``prepare(wave)`` (waveform -> model input, e.g. a log-mel),
  ``features(x, train)`` (-> the penultimate representation) and ``head(h, train)`` (-> logits). Window
  logits and embeddings are averaged per example, as the authors average their patch predictions.
  """
  window: int | None = None

  def _windows(self, wave: jax.Array) -> tuple[jax.Array, int]:
    x = self.prepare(wave)
    return (x, 1) if self.window is None else split_windows(x, self.window)

  def __call__(self, wave: jax.Array, train: bool = False) -> jax.Array:
    x, n = self._windows(wave)
    return mean_windows(self.head(self.features(x, train), train).astype(jnp.float32), n)

  def embed(self, wave: jax.Array, train: bool = False) -> jax.Array:
    x, n = self._windows(wave)
    return mean_windows(self.features(x, train).astype(jnp.float32), n)


def global_max_mean(x: jax.Array) -> jax.Array:
  """Max and mean over time of ``(batch, time, C)``, interleaved as ``[max_0, mean_0, max_1, ...]``.

  The authors concatenate the two on a new last axis and flatten, which interleaves them; the order
  matters for imported weights and for exact equivalence of the dense layer that follows.
  """
  stacked = jnp.stack([max_over(x, 1), x.mean(axis=1)], axis=-1)
  return stacked.reshape(x.shape[0], -1)


def count_params(model: nnx.Module) -> int:
  """Number of trainable values: ``nnx.Param`` leaves only (BN running statistics are excluded)."""
  return sum(int(p.size) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
