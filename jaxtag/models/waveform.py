"""Sample-level waveform front-end (Lee et al. 2017, as Pons et al. 2018's ``wave_frontend`` has it).

Layer 0 is a conv of 3 taps with stride 3 and no pooling; every further layer is a 3-tap conv followed by
max-pool 3/3. Every conv is 'valid' and followed by ReLU then BN. The total hop is 3^layers samples
(2,187 for 7 layers, about 137 ms at 16 kHz); the 9-layer variant needs inputs of ~15 s.
"""
from __future__ import annotations

import jax
from flax import nnx

from jaxtag.models.layers import ConvReluBN, Hyper

# Filters per layer at width 1 (README of the authors' code; the 9-layer variant of the Pandora runs).
FILTERS = {7: (64, 64, 64, 128, 128, 128, 256),
           9: (64, 64, 64, 128, 128, 128, 128, 128, 256)}


class WaveformFrontend(nnx.Module):
  """``(batch, samples)`` waveform -> ``(batch, frames, out_channels)`` features."""

  def __init__(self, hp: Hyper, *, width: int, layers: int, rngs: nnx.Rngs, scale: float = 1.0):
    if layers not in FILTERS:
      raise ValueError(f"model.waveform_layers must be one of {sorted(FILTERS)}, got {layers}")
    if not 0 < scale <= 1:
      raise ValueError(f"model.waveform_scale must be in (0, 1], got {scale}")
    filters = [max(1, round(f * int(width) * scale)) for f in FILTERS[layers]]
    ins = [1] + filters[:-1]
    self.blocks = nnx.List([ConvReluBN(hp, i, o, (3,), strides=3 if n == 0 else 1, rngs=rngs)
                            for n, (i, o) in enumerate(zip(ins, filters))])
    self.out_channels = filters[-1]

  def __call__(self, wave: jax.Array, train: bool) -> jax.Array:
    x = wave[..., None]
    for n, block in enumerate(self.blocks):
      x = block(x, train) if n == 0 else block.pooled(x, train, 3)   # conv -> ReLU -> BN -> max-pool 3
    return x
