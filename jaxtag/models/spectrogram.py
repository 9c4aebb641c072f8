"""Musically motivated spectrogram front-end (Pons et al. 2016/2017, the paper's ``spec_frontend``).

One layer of 10 parallel branches on a log-mel computed on the device:
* 6 timbral branches, kernels (time x freq) 7/3/1 x int(0.9 * mels) and 7/3/1 x int(0.4 * mels) with
  k, 2k, 4k filters; time zero-padded to keep the frame rate, 'valid' along frequency, then max-pooled
  over all remaining frequency positions (pitch invariance);
* 4 temporal branches on the frequency-averaged energy envelope: 1-D convs of 165/128/64/32 taps, 'same'
  (TF's split of the padding, 63/64 for 128 taps), with k, 2k, 4k, 8k filters.
Concatenated in that order: 29k channels per frame.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxtag.models.layers import ConvReluBN, Hyper, MelConvReluBN, pad_time
from jaxtag.models.logmel import LogMelConfig, for_model, logmel

TIMBRAL_TIMES, TIMBRAL_MULT = (7, 3, 1), (1, 2, 4)
TEMPORAL_TAPS, TEMPORAL_MULT = (165, 128, 64, 32), (1, 2, 4, 8)


class SpectrogramFrontend(nnx.Module):
  """``(batch, samples)`` waveform -> log-mel -> ``(batch, frames, 29 k)`` features."""

  def __init__(self, hp: Hyper, mel: LogMelConfig, *, k: int, rngs: nnx.Rngs):
    self.mel = mel
    heights = (int(0.9 * mel.n_mels), int(0.4 * mel.n_mels))
    self.timbral = nnx.List([MelConvReluBN(hp, 1, k * m, (t, h), rngs=rngs)
                             for h in heights for t, m in zip(TIMBRAL_TIMES, TIMBRAL_MULT)])
    self.temporal = nnx.List([ConvReluBN(hp, 1, k * m, (taps,), padding="SAME", rngs=rngs)
                              for taps, m in zip(TEMPORAL_TAPS, TEMPORAL_MULT)])
    self.out_channels = k * (2 * sum(TIMBRAL_MULT) + sum(TEMPORAL_MULT))

  def __call__(self, wave: jax.Array, train: bool) -> jax.Array:
    return self.from_logmel(for_model(logmel(wave, self.mel)), train)

  def from_logmel(self, spec: jax.Array, train: bool) -> jax.Array:
    """``(batch, frames, mels)`` log-mel -> ``(batch, frames, 29 k)``."""
    x = spec[..., None]
    outs = []
    for branch in self.timbral:
      t = branch.conv.kernel_size[0]
      outs.append(branch.pooled(pad_time(x, (t - 1) // 2, (t - 1) // 2), train))   # max over mel positions
    envelope = jnp.mean(spec, axis=2, keepdims=True)                    # (B, T, 1)
    outs += [branch(envelope, train) for branch in self.temporal]
    return jnp.concatenate(outs, axis=-1)
