"""Building blocks shared by every jaxtag model: conv -> ReLU -> BN, pooling helpers, parameter counting.

The authors' TF code applies BatchNorm *after* the ReLU everywhere and trains with TF's BN defaults
(epsilon 1e-3, momentum 0.99), so one block type with those knobs covers the paper, musicnn and most
baselines. Parameters are always float32; ``dtype`` only sets the compute precision.
"""
from __future__ import annotations

import dataclasses
import functools
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
    return BatchNorm(features, epsilon=self.bn_epsilon, momentum=self.bn_momentum,
                         dtype=self.dtype, param_dtype=jnp.float32, rngs=rngs)

  def conv(self, in_ch: int, out_ch: int, kernel: Sequence[int], rngs: nnx.Rngs, *,
           strides: int | Sequence[int] = 1, padding="VALID") -> nnx.Conv:
    return nnx.Conv(in_ch, out_ch, tuple(kernel), strides=strides, padding=padding, kernel_init=HE,
                    dtype=self.dtype, param_dtype=jnp.float32, rngs=rngs)

  def dense(self, in_f: int, out_f: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(in_f, out_f, kernel_init=HE, dtype=self.dtype, param_dtype=jnp.float32, rngs=rngs)


class BatchNorm(nnx.BatchNorm):
  """``nnx.BatchNorm`` that can be frozen: with ``frozen = True`` (set by ``jaxtag.trainable`` on the layers of a
  run's frozen part) it normalises with its running statistics even in training mode and never updates them, so
  a frozen layer computes exactly the function of the model it came from. The state tree is nnx.BatchNorm's."""
  frozen: bool = False

  def __call__(self, x, use_running_average=None, *, mask=None):
    return super().__call__(x, True if self.frozen else use_running_average, mask=mask)


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
  """VALID max-pooling over axis 1 of ``(batch, time, ...)``; trailing remainder frames are dropped.

  Non-overlapping windows (the only kind the models use) are a reshape plus a max over the new axis, whose
  gradient goes to one arg-max element: the same values and parameter gradients as ``reduce_window`` max,
  without its cost on XLA:CPU (a variadic reduce-window over four materialised index arrays forward and a
  scatter backward, ~40 % of a waveform training step). Overlapping windows keep ``reduce_window``.
  """
  stride = stride or size
  if stride != size:
    window = (size,) + (1,) * (x.ndim - 3)          # flax pools the axes between batch and features
    return nnx.max_pool(x, window, strides=(stride,) + (1,) * (x.ndim - 3), padding="VALID")
  n = x.shape[1] // size
  x = x[:, :n * size].reshape((x.shape[0], n, size) + x.shape[2:])
  return max_argmax_grad(x, 2)


def max_over(x: jax.Array, axis: int | tuple[int, ...]) -> jax.Array:
  """Max over whole axes whose gradient goes to one arg-max element (the first), as the authors'
  ``max_pooling2d`` over all bins.

  Not ``jnp.max``: its gradient splits between ties by dividing by their count, and when XLA recomputes
  the operand with different rounding in the backward pass no element equals the max, giving 0/0 = NaN
  (seen on CPU for musicnn's timbral branches). Here the backward pass uses the arg-max index saved by the
  forward pass, so it never compares recomputed values.
  """
  axes = (axis,) if isinstance(axis, int) else tuple(axis)
  axes = tuple(a % x.ndim for a in axes)
  if len(axes) > 1:   # move the axes together at the end and flatten them into one
    keep = [a for a in range(x.ndim) if a not in axes]
    x = jnp.transpose(x, keep + list(axes)).reshape([x.shape[a] for a in keep] + [-1])
    return max_argmax_grad(x, x.ndim - 1)
  return max_argmax_grad(x, axes[0])


def max_argmax_grad(x: jax.Array, axis: int) -> jax.Array:
  """``x.max(axis)`` whose gradient is routed to the first arg-max element only (like max-pooling)."""
  return _max_argmax(x, axis % x.ndim, x.shape[axis])


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_argmax(x: jax.Array, axis: int, size: int) -> jax.Array:
  return jnp.max(x, axis=axis)


def _max_fwd(x, axis, size):
  idx = jnp.argmax(x, axis=axis).astype(jnp.int8 if size <= 127 else jnp.int32)   # the residual is small
  return jnp.max(x, axis=axis), idx


def _max_bwd(axis, size, idx, g):
  shape = list(g.shape)
  shape.insert(axis, size)
  hit = jax.lax.broadcasted_iota(idx.dtype, shape, axis) == jnp.expand_dims(idx, axis)
  return (jnp.where(hit, jnp.expand_dims(g, axis), jnp.zeros((), g.dtype)),)


_max_argmax.defvjp(_max_fwd, _max_bwd)


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
