"""Building blocks shared by every jaxtag model: conv -> ReLU -> BN, pooling helpers, parameter counting.

The authors' TF code applies BatchNorm *after* the ReLU everywhere and trains with TF's BN defaults
(epsilon 1e-3, momentum 0.99), so one block type with those knobs covers the paper, musicnn and most
baselines. Parameters are always float32; ``dtype`` only sets the compute precision.

Two forms of the same functions (``model.kernels``, resolved by ``resolve_kernels``): ``fused``, the rewrites
chosen because XLA:CPU's kernels were slow (the banded timbral convolution ``banded_mel_conv``, the arg-max
max-pool ``max_argmax_grad``, the fused conv -> ReLU -> BN -> pool ``relu_bn_pool``), and ``plain``, the forms
XLA's GPU and TPU back-ends are built for (``lax.conv``, ``reduce_window`` max, separate ReLU, BN and pool).
Both give the same outputs and gradients (tests/test_kernels.py); only their speed differs by backend.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxtag.core import choices


# TF's variance_scaling_initializer() default (He, fan-in, truncated normal), as the authors used.
HE = nnx.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


def resolve_kernels(kernels: str, backend: str) -> str:
  """``model.kernels`` on ``backend`` (``jax.default_backend()``: cpu, gpu, tpu) -> ``"fused"`` or ``"plain"``.
  ``auto``: the CPU rewrites on the CPU, where they were measured faster; the plain forms elsewhere, whose
  convolutions and pools cuDNN and XLA's fusions are built for (``benchmarks/device_check.sh`` measures both)."""
  choices.check("model.kernels", kernels, choices.KERNELS)
  if kernels != "auto":
    return kernels
  return "fused" if backend == "cpu" else "plain"


@dataclasses.dataclass(frozen=True)
class Hyper:
  """The per-model knobs every block needs: BN constants, the compute dtype and the kernel form (``fused``:
  the CPU rewrites; else the plain forms, see ``resolve_kernels``)."""
  bn_epsilon: float = 1e-3
  bn_momentum: float = 0.99
  dtype: jnp.dtype = jnp.float32
  fused: bool = True

  @classmethod
  def from_config(cls, model_cfg) -> "Hyper":
    kernels = resolve_kernels(model_cfg.get("kernels", "auto"), jax.default_backend())
    return cls(float(model_cfg.bn_epsilon), float(model_cfg.bn_momentum), jnp.dtype(model_cfg.dtype),
               fused=kernels == "fused")

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
  """``nnx.BatchNorm`` that can be frozen: with ``frozen = True`` (set by ``jaxtag.training.trainable`` on the layers of a
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
    self.fused = hp.fused

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    return self.bn(jax.nn.relu(self.conv(x)), use_running_average=not train)

  def pooled(self, x: jax.Array, train: bool, size: int) -> jax.Array:
    """``max_pool_time(self(x, train), size)`` for a ``(B, T, C)`` output (the waveform blocks' conv -> ReLU ->
    BN -> max-pool). Fused: through ``relu_bn_pool`` in training mode; in inference the pooling runs before
    BN's affine map, so the normalised tensor is never written. Plain: the four layers one after the other."""
    if not self.fused:
      return max_pool_time(self(x, train), size, fused=False)
    return self._pool(self.conv(x), train, size, lambda y: max_pool_time(y, size))

  def _pool(self, y, train, size, plain):
    bn = self.bn
    if not train or bn.frozen or bn.use_running_average:
      # BN on its running statistics is the per-channel affine map a*z + b: pool z itself (its max where a >= 0,
      # its min where a < 0) and map only the pooled values, in flax's order of operations
      mul = jax.lax.rsqrt(bn.var[...] + bn.epsilon) * bn.scale[...]
      sign = jnp.where(mul >= 0, 1.0, -1.0).astype(y.dtype)
      picked = plain(jax.nn.relu(y) * sign) * sign
      return ((picked - bn.mean[...]) * mul + bn.bias[...]).astype(bn.dtype or y.dtype)
    out, mean, var = relu_bn_pool(y, bn.scale[...], bn.bias[...], bn.epsilon, size)
    bn.mean[...] = jax.lax.stop_gradient(bn.momentum * bn.mean[...] + (1 - bn.momentum) * mean)
    bn.var[...] = jax.lax.stop_gradient(bn.momentum * bn.var[...] + (1 - bn.momentum) * var)
    return out.astype(bn.dtype or y.dtype)


class MelConvReluBN(ConvReluBN):
  """``ConvReluBN`` for a (time x height) kernel over a one-channel ``(batch, time, mels, 1)`` log-mel, 'valid'
  along the mels: the same parameters and the same output, computed as a 1-D conv over time whose input
  channels are the mels (``banded_mel_conv``).

  Why: a conv with one input channel and a 7 x 86 kernel has no channel axis to vectorise over, and
  XLA:CPU's direct kernels spend ~60 % of a spectrogram model's training step in it. The banded form is a
  dense (time x mels) x (mels x positions*filters) product: at most mels/height more multiply-adds (1.1x for
  the 0.9-mel kernels, 2.5x for the 0.4-mel ones), all of them in a matmul-shaped conv.
  """

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    return self.bn(jax.nn.relu(self._conv(x, train)), use_running_average=not train)

  def _conv(self, x: jax.Array, train: bool) -> jax.Array:
    """The form that is fastest for the shape (measured on XLA:CPU, 2 cores; same values in every form):
    - training: one band over all mels (the one-channel kernel's weight gradient is the slow part, 1.6-6x
      per branch);
    - inference (micro-batches of 4 chunks, ``step.in_microbatches``), per ``(B=4, 187 frames, 96 mels)``:
      few filters (<= 16) and more than one frame: groups of 4 positions (7x86x8: 3.5 -> 1.0 ms, 7x38x8
      6.7 -> 3.9); many filters (>= 64) on a tall kernel: groups of 2 (musicnn's 7x67x204: 38.6 ms direct,
      78.6 one band, 32.0 groups of 2); otherwise the direct convolution (one frame, or musicnn's 7x38x204:
      56.9 direct, 60-133 banded).
    Plain kernels: always the direct convolution."""
    kt, h, _, filters = self.conv.kernel.shape
    if not self.fused:
      return self.conv(x)
    if train:
      return banded_mel_conv(self.conv, x)
    if kt > 1 and filters <= 16:
      return banded_mel_conv(self.conv, x, group=4)
    if filters >= 64 and 2 * h >= x.shape[2]:
      return banded_mel_conv(self.conv, x, group=2)
    return self.conv(x)

  def pooled(self, x: jax.Array, train: bool) -> jax.Array:
    """``max_over(self(x, train), 2)``, the branch's max over all mel positions, ``(B, T', filters)``: the
    positions of one frame are one pooling window of ``relu_bn_pool`` (plain kernels: a ``reduce_window`` max
    over the positions of ``self(x, train)``)."""
    if not self.fused:
      return max_over(self(x, train), 2, fused=False)
    y = self._conv(x, train)                                            # (B, T', P, C)
    b, t, p, c = y.shape
    return self._pool(y.reshape(b, t * p, c), train, p, lambda z: max_over(z.reshape(b, t, p, c), 2))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def relu_bn_pool(y: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float, size: int):
  """``(max_pool_time(BN(relu(y)), size), batch mean, batch variance)`` for ``y`` of shape ``(B, T, C)`` and
  BatchNorm on the batch statistics over ``(B, T)`` (flax's fast variance, clipped at 0); the tail frames
  beyond the last whole window count in the statistics only, as in the unfused layers.

  Why: the same function as the three layers, without materialising the normalised tensor or a pooling mask
  the size of ``y``, forward or backward (memory traffic is most of these layers' cost on a CPU). The
  normalisation is a per-channel affine map ``a * z + b``, so the max of a window is ``a * max(z) + b`` where
  ``a >= 0`` and ``a * min(z) + b`` where ``a < 0``, taken at the same element (the first extremum, where the
  gradient goes, as ``max_argmax_grad``). The backward pass is BatchNorm's with the upstream gradient nonzero
  only at the chosen elements, in one fused elementwise pass over ``y``.
  """
  return _relu_bn_pool_fwd(y, scale, bias, epsilon, size)[0]


def _windows(z, size):
  n = z.shape[1] // size
  return z[:, :n * size].reshape(z.shape[0], n, size, z.shape[2])


def _relu_bn_pool_fwd(y, scale, bias, epsilon, size):
  z = jax.nn.relu(y.astype(jnp.float32))
  mean, mean2 = z.mean((0, 1)), jnp.square(z).mean((0, 1))
  var = jnp.maximum(0.0, mean2 - jnp.square(mean))
  mul = jax.lax.rsqrt(var + epsilon) * scale
  w = _windows(z, size)
  idx = jnp.argmax(w * jnp.where(mul >= 0, 1.0, -1.0), axis=2)                          # (B, n, C)
  picked = jnp.take_along_axis(w, idx[:, :, None, :], axis=2)[:, :, 0, :]
  out = (picked - mean) * mul + bias
  small = jnp.int8 if size <= 127 else jnp.int32
  return (out, mean, var), (y, idx.astype(small), mean, var, scale, picked)


def _relu_bn_pool_bwd(epsilon, size, res, cts):
  y, idx, mean, var, scale, picked = res
  g, g_mean, g_var = cts
  n = y.shape[0] * y.shape[1]
  inv = jax.lax.rsqrt(var + epsilon)
  d_bias = g.sum((0, 1))
  d_scale = (g * (picked - mean) * inv).sum((0, 1))
  # out = (z_sel - mean) * inv * scale + bias: through mean and var (plus the stats outputs' own cotangents)
  d_mean = -scale * inv * d_bias + g_mean
  d_var = (-0.5 * scale * inv * inv * d_scale + g_var) * (var > 0)
  z = jax.nn.relu(y.astype(jnp.float32))
  hit = jax.lax.broadcasted_iota(idx.dtype, (g.shape[0], g.shape[1], size, g.shape[2]), 2) == idx[:, :, None, :]
  direct = jnp.where(hit, (g * scale * inv)[:, :, None, :], 0.0).reshape(g.shape[0], -1, g.shape[2])
  direct = jnp.pad(direct, ((0, 0), (0, y.shape[1] - direct.shape[1]), (0, 0)))        # the tail: stats only
  dz = direct + d_mean / n + d_var * 2.0 * (z - mean) / n
  dy = jnp.where(y > 0, dz, 0.0).astype(y.dtype)
  return dy, d_scale.astype(scale.dtype), d_bias.astype(scale.dtype)


relu_bn_pool.defvjp(_relu_bn_pool_fwd, _relu_bn_pool_bwd)


def banded_mel_conv(conv: nnx.Conv, x: jax.Array, group: int | None = None) -> jax.Array:
  """``conv(x)`` for ``x`` of shape ``(B, T, F, 1)`` and a stride-1 'VALID' ``(kt, h)`` kernel: ``(B, T-kt+1,
  F-h+1, filters)``. The kernel is spread into a banded ``(kt, group+h-1, group * filters)`` one (position ``p``
  of a group sees its mels ``p..p+h-1``; the rest are exact zeros), so each output is the same sum of the same
  products. ``group=None``: all ``F-h+1`` positions in one group over all mels (one conv). Smaller groups: the
  mel axis is cut into overlapping windows of ``group+h-1`` mels, stacked into the batch, all through one
  shared band (fewer zero multiply-adds: ``(group+h-1)/h`` instead of ``F/h``)."""
  kernel = conv.kernel[...]
  kt, h, cin, filters = kernel.shape
  batch, frames, mels, _ = x.shape
  if cin != 1 or conv.padding != "VALID" or set(np.atleast_1d(conv.strides)) != {1}:
    raise ValueError("banded_mel_conv takes a one-channel, stride-1, 'VALID' conv")
  positions = mels - h + 1
  g = positions if group is None else min(group, positions)
  n = -(-positions // g)                                                            # groups
  width = g + h - 1                                                                 # mels a group sees
  offset = np.arange(width)[:, None] - np.arange(g)[None, :]                        # (mel, position) in a group
  take = np.where((offset >= 0) & (offset < h), offset, h)                          # h -> the zero row
  padded = jnp.concatenate([kernel[:, :, 0, :], jnp.zeros((kt, 1, filters), kernel.dtype)], axis=1)
  banded = padded[:, take, :].reshape(kt, width, g * filters)
  dtype = conv.dtype or x.dtype
  v = x[..., 0].astype(dtype)
  if n > 1:                        # (B, T, mels) -> (B * n, T, width): group j sees mels j*g .. j*g + width - 1
    v = jnp.pad(v, ((0, 0), (0, 0), (0, n * g + h - 1 - mels)))
    v = jnp.stack([v[:, :, j * g:j * g + width] for j in range(n)], axis=1).reshape(batch * n, frames, width)
  y = jax.lax.conv_general_dilated(v, banded.astype(dtype), (1,), "VALID",
                                   dimension_numbers=("NWC", "WIO", "NWC"), precision=conv.precision)
  if n > 1:                        # (B * n, T', g * filters) -> (B, T', n * g, filters), padded positions cut
    y = jnp.swapaxes(y.reshape(batch, n, frames - kt + 1, g, filters), 1, 2)
    y = y.reshape(batch, frames - kt + 1, n * g, filters)[:, :, :positions]
  else:
    y = y.reshape(batch, frames - kt + 1, positions, filters)
  return y + conv.bias[...].astype(y.dtype) if conv.use_bias else y


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


def max_pool_time(x: jax.Array, size: int, stride: int | None = None, *, fused: bool = True) -> jax.Array:
  """VALID max-pooling over axis 1 of ``(batch, time, ...)``; trailing remainder frames are dropped.

  Non-overlapping windows (the only kind the models use) are a reshape plus a max over the new axis, whose
  gradient goes to one arg-max element: the same values and parameter gradients as ``reduce_window`` max,
  without its cost on XLA:CPU (a variadic reduce-window over four materialised index arrays forward and a
  scatter backward, ~40 % of a waveform training step). Overlapping windows, and ``fused=False`` (the plain
  kernels), keep ``reduce_window``.
  """
  stride = stride or size
  if stride != size or not fused:
    window = (size,) + (1,) * (x.ndim - 3)          # flax pools the axes between batch and features
    return nnx.max_pool(x, window, strides=(stride,) + (1,) * (x.ndim - 3), padding="VALID")
  n = x.shape[1] // size
  x = x[:, :n * size].reshape((x.shape[0], n, size) + x.shape[2:])
  return max_argmax_grad(x, 2)


def max_over(x: jax.Array, axis: int | tuple[int, ...], *, fused: bool = True) -> jax.Array:
  """Max over whole axes whose gradient goes to one arg-max element (the first), as the authors'
  ``max_pooling2d`` over all bins.

  Not ``jnp.max``: its gradient splits between ties by dividing by their count, and when XLA recomputes
  the operand with different rounding in the backward pass no element equals the max, giving 0/0 = NaN
  (seen on CPU for musicnn's timbral branches). Here the backward pass uses the arg-max index saved by the
  forward pass, so it never compares recomputed values. ``fused=False`` (the plain kernels): a ``reduce_window``
  max over the whole axes, whose select-and-scatter gradient also goes to one element.
  """
  axes = (axis,) if isinstance(axis, int) else tuple(axis)
  axes = tuple(a % x.ndim for a in axes)
  if not fused:
    window = tuple(x.shape[a] if a in axes else 1 for a in range(x.ndim))
    y = jax.lax.reduce_window(x, np.array(-np.inf, x.dtype), jax.lax.max, window, (1,) * x.ndim, "VALID")
    return y.reshape([x.shape[a] for a in range(x.ndim) if a not in axes])
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


def global_max_mean(x: jax.Array, *, fused: bool = True) -> jax.Array:
  """Max and mean over time of ``(batch, time, C)``, interleaved as ``[max_0, mean_0, max_1, ...]``.

  The authors concatenate the two on a new last axis and flatten, which interleaves them; the order
  matters for imported weights and for exact equivalence of the dense layer that follows.
  """
  stacked = jnp.stack([max_over(x, 1, fused=fused), x.mean(axis=1)], axis=-1)
  return stacked.reshape(x.shape[0], -1)


def count_params(model: nnx.Module) -> int:
  """Number of trainable values: ``nnx.Param`` leaves only (BN running statistics are excluded)."""
  return sum(int(p.size) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
