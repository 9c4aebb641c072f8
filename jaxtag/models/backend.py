"""The shared back-end of Pons et al. 2018 (``backend()`` of the authors' code) and its tagging head.

(batch, frames, C) front-end features ->
  conv 7 x C 'valid' (F filters), ReLU, BN
  conv 7 x F (time padded 3+3), ReLU, BN, + previous          (residual on the BN output)
  max-pool x2 over time
  conv 7 x F (padded), ReLU, BN, + previous
  global max and mean over time, interleaved [max_0, mean_0, ...]  -> 2F
  dropout, dense U, ReLU, BN (the embedding), dropout, dense n_tags (logits).
The authors' BN after conv 2 and 3 runs on a transposed (B, T, F, 1) tensor, i.e. one scalar gamma/beta
for all F features; ``scalar_bn_quirk=True`` reproduces that, the default is per-channel BN (which is
what gives the paper's parameter counts).
"""
from __future__ import annotations

import jax
from flax import nnx

from jaxtag.models.layers import Hyper, global_max_mean, max_pool_time

KERNEL = 7


class Backend(nnx.Module):
  """``(batch, frames, in_channels)`` -> penultimate ``(batch, U)`` (``embed``) and logits ``(batch, n_tags)``."""

  def __init__(self, hp: Hyper, in_channels: int, n_tags: int, *, filters: int, units: int,
               dropout: float, scalar_bn_quirk: bool, rngs: nnx.Rngs):
    pad = ((KERNEL // 2, KERNEL // 2),)
    self.conv1 = hp.conv(in_channels, filters, (KERNEL,), rngs)
    self.bn1 = hp.bn(filters, rngs)
    self.conv2 = hp.conv(filters, filters, (KERNEL,), rngs, padding=pad)
    self.conv3 = hp.conv(filters, filters, (KERNEL,), rngs, padding=pad)
    self.scalar_bn_quirk = scalar_bn_quirk
    self.fused = hp.fused
    self.bn2 = hp.bn(1 if scalar_bn_quirk else filters, rngs)
    self.bn3 = hp.bn(1 if scalar_bn_quirk else filters, rngs)
    self.drop1 = nnx.Dropout(dropout, rngs=rngs)
    self.dense = hp.dense(2 * filters, units, rngs)
    self.bn_dense = hp.bn(units, rngs)
    self.drop2 = nnx.Dropout(dropout, rngs=rngs)
    self.out = hp.dense(units, n_tags, rngs)

  def _bn(self, bn: nnx.BatchNorm, x: jax.Array, train: bool) -> jax.Array:
    if self.scalar_bn_quirk:
      return bn(x[..., None], use_running_average=not train)[..., 0]
    return bn(x, use_running_average=not train)

  def embed(self, x: jax.Array, train: bool) -> jax.Array:
    h1 = self.bn1(jax.nn.relu(self.conv1(x)), use_running_average=not train)
    h2 = self._bn(self.bn2, jax.nn.relu(self.conv2(h1)), train) + h1
    p = max_pool_time(h2, 2, fused=self.fused)
    h3 = self._bn(self.bn3, jax.nn.relu(self.conv3(p)), train) + p
    pooled = self.drop1(global_max_mean(h3, fused=self.fused), deterministic=not train)
    return self.bn_dense(jax.nn.relu(self.dense(pooled)), use_running_average=not train)

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    return self.out(self.drop2(self.embed(x, train), deterministic=not train))
