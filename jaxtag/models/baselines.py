"""The seed's baseline rows, each after its own publication (sources and counts: docs/design.md).

All take ``(batch, samples)`` 16-kHz audio; the spectrogram ones compute the same on-device log-mel as the
paper's models. ``width`` scales every filter/unit count (tests shrink it). Models whose flatten fixes
the input length score non-overlapping windows and average the logits (``layers.Windowed``).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxtag.models.layers import ConvBNAct, ConvReluBN, Hyper, Windowed, max_over, max_pool_time, pad_time
from jaxtag.models.logmel import LogMelConfig, for_model, logmel


def _w(n: float, width: float) -> int:
  return max(1, round(n * width))


class Dieleman(Windowed):
  """Dieleman & Schrauwen 2014, raw-audio variant: a strided conv (256 taps, stride 256; 128 filters is
  our reading) replaces the mel spectrogram, then conv 8 (32) + max-pool 4, conv 8 (32) + max-pool 4,
  dense 100, output; ReLU, no BN (the paper predates it). Scores 3-s windows."""

  def __init__(self, hp: Hyper, n_tags: int, *, sample_rate: int, width: float, rngs: nnx.Rngs):
    self.window = 3 * sample_rate
    c0, c, units = _w(128, width), _w(32, width), _w(100, width)
    self.strided = hp.conv(1, c0, (256,), rngs, strides=256)
    self.conv1 = hp.conv(c0, c, (8,), rngs)
    self.conv2 = hp.conv(c, c, (8,), rngs)
    frames = ((self.window // 256 - 7) // 4 - 7) // 4
    self.dense = hp.dense(frames * c, units, rngs)
    self.out = hp.dense(units, n_tags, rngs)

  def prepare(self, wave):
    return wave[..., None]

  def features(self, x, train):
    x = jax.nn.relu(self.strided(x))
    x = max_pool_time(jax.nn.relu(self.conv1(x)), 4)
    x = max_pool_time(jax.nn.relu(self.conv2(x)), 4)
    return jax.nn.relu(self.dense(x.reshape(x.shape[0], -1)))

  def head(self, h, train):
    return self.out(h)


SAMPLECNN_FILTERS = (128, 128, 256, 256, 256, 256, 256, 256, 512)   # the 3^9 model's 9 pooled layers


class _SampleTrunk(nnx.Module):
  """SampleCNN body (Lee et al. 2017): a strided conv of ``scale`` taps, then conv 3 'same' + BN + ReLU
  + max-pool 3 per layer, ending in a 1x1 conv; conv -> BN -> ReLU as in the authors' Keras code."""

  def __init__(self, hp: Hyper, *, scale: int, width: float, rngs: nnx.Rngs):
    pooled = len(SAMPLECNN_FILTERS) + 1 - round(math.log(scale, 3))   # the window always ends as 1 frame
    filters = [_w(f, width) for f in SAMPLECNN_FILTERS[:pooled - 1] + SAMPLECNN_FILTERS[-1:]]
    self.first = ConvBNAct(hp, 1, filters[0], (scale,), strides=scale, padding="VALID", rngs=rngs)
    self.blocks = nnx.List([ConvBNAct(hp, i, o, (3,), rngs=rngs) for i, o in zip([filters[0]] + filters, filters)])
    self.last = ConvBNAct(hp, filters[-1], filters[-1], (1,), rngs=rngs)
    self.out_channels = filters[-1]

  def __call__(self, wave, train):
    """-> outputs of every pooled layer and of the 1x1 conv, each ``(batch, frames, channels)``."""
    x, levels = self.first(wave[..., None], train), []
    for block in self.blocks:
      x = max_pool_time(block(x, train), 3)
      levels.append(x)
    return levels + [self.last(x, train)]


class SampleCNN(Windowed):
  """Lee et al. 2017, the 3^9 model: 59,049-sample windows (3.69 s at 16 kHz), dropout 0.5, dense output."""

  def __init__(self, hp: Hyper, n_tags: int, *, width: float, dropout: float, rngs: nnx.Rngs):
    self.window = 3 ** 10
    self.trunk = _SampleTrunk(hp, scale=3, width=width, rngs=rngs)
    self.drop = nnx.Dropout(dropout, rngs=rngs)
    self.out = hp.dense(self.trunk.out_channels, n_tags, rngs)

  def prepare(self, wave):
    return wave

  def features(self, x, train):
    return self.trunk(x, train)[-1][:, 0]                       # the window is reduced to one frame

  def head(self, h, train):
    return self.out(self.drop(h, deterministic=not train))


class SampleCNNMulti(Windowed):
  """Lee et al. 2017b, multi-level & multi-scale aggregation: SampleCNN trunks whose first layer has 3 and
  9 taps (two scales of the same 59,049-sample window); the last three layers of each (multi-level) are
  averaged over time, concatenated and fed to two dense layers of 512 with dropout. Trained end to end
  here, where the paper pre-trains the trunks and then fits the dense layers on their features."""

  def __init__(self, hp: Hyper, n_tags: int, *, width: float, dropout: float, rngs: nnx.Rngs):
    self.window = 3 ** 10
    self.trunks = nnx.List([_SampleTrunk(hp, scale=s, width=width, rngs=rngs) for s in (3, 9)])
    levels = sum(_w(SAMPLECNN_FILTERS[-2], width) + 2 * t.out_channels for t in self.trunks)
    units = _w(512, width)
    self.dense1 = hp.dense(levels, units, rngs)
    self.dense2 = hp.dense(units, units, rngs)
    self.drop = nnx.Dropout(dropout, rngs=rngs)
    self.out = hp.dense(units, n_tags, rngs)

  def prepare(self, wave):
    return wave

  def features(self, x, train):
    feats = [level.mean(axis=1) for trunk in self.trunks for level in trunk(x, train)[-3:]]
    h = self.drop(jax.nn.relu(self.dense1(jnp.concatenate(feats, axis=-1))), deterministic=not train)
    return jax.nn.relu(self.dense2(h))

  def head(self, h, train):
    return self.out(self.drop(h, deterministic=not train))


class _Spectrogram(Windowed):
  """Log-mel input for the spectrogram baselines (the same on-device log-mel as the paper's models)."""

  def prepare(self, wave):
    return for_model(logmel(wave, self.mel))


# (time taps, height fraction of the mel axis, filters at num_filt=1) of the Timbre CNN's 12 branches.
TIMBRE_BRANCHES = tuple((t, h, f) for h, fs in ((0.8, (3, 3, 6, 10)), (0.6, (5, 5, 10, 15)), (0.2, (5, 5, 10, 15)))
                        for t, f in zip((7, 5, 3, 1), fs))


class TimbreCNN(_Spectrogram):
  """Pons et al. 2017 (timbre analysis): input BN, 12 vertical-filter branches (ReLU, BN, max over freq),
  conv 8 x all (32) + max-pool 4, flatten, dense 100, output. num_filt 2 at width 1; 187-frame windows."""

  def __init__(self, hp: Hyper, mel: LogMelConfig, n_tags: int, *, width: float, rngs: nnx.Rngs):
    self.mel, self.window = mel, 187
    self.input_bn = hp.bn(1, rngs)
    self.branches = nnx.List([ConvReluBN(hp, 1, _w(2 * f, width), (t, int(h * mel.n_mels)), rngs=rngs)
                              for t, h, f in TIMBRE_BRANCHES])
    channels = sum(b.conv.out_features for b in self.branches)
    c, units = _w(32, width), _w(100, width)
    self.conv = hp.conv(channels, c, (8,), rngs)
    self.dense = hp.dense((self.window - 7) // 4 * c, units, rngs)
    self.out = hp.dense(units, n_tags, rngs)

  def features(self, x, train):
    x = self.input_bn(x[..., None], use_running_average=not train)
    outs = []
    for branch in self.branches:
      t = branch.conv.kernel_size[0]
      outs.append(max_over(branch(pad_time(x, (t - 1) // 2, (t - 1) // 2), train), 2))
    h = max_pool_time(jax.nn.relu(self.conv(jnp.concatenate(outs, axis=-1))), 4)
    return jax.nn.relu(self.dense(h.reshape(h.shape[0], -1)))

  def head(self, h, train):
    return self.out(h)


class _Choi(_Spectrogram):
  """Choi et al.'s 2-D stacks: [conv 3x3, BN, activation, max-pool] per entry of ``CHANNELS``/``POOLS``
  (pools as (time, freq)), a dropout before the output dense."""

  CHANNELS: tuple[int, ...] = ()
  POOLS: tuple[tuple[int, int], ...] = ()

  def _init_stack(self, hp: Hyper, mel: LogMelConfig, *, width: float, dropout: float, act, rngs: nnx.Rngs):
    self.mel = mel
    chans = [_w(c, width) for c in self.CHANNELS]
    self.blocks = nnx.List([ConvBNAct(hp, i, o, (3, 3), act=act, rngs=rngs) for i, o in zip([1] + chans, chans)])
    self.drop = nnx.Dropout(dropout, rngs=rngs)
    return chans[-1]

  def _stack(self, spec, train):
    x = spec[..., None]
    for block, pool in zip(self.blocks, self.POOLS):
      x = nnx.max_pool(block(x, train), pool, strides=pool, padding="VALID")
    return x

  def head(self, h, train):
    return self.out(self.drop(h, deterministic=not train))


class VGG(_Choi):
  """Choi et al. 2016 (FCN): 5 x [conv 3x3, BN, ReLU, max-pool] down to one frequency bin, global max over
  the remaining frames, dropout, dense output. The paper's widths are for 29-s inputs and 1-25M params;
  channels 32-64-128-128-176 give the seed's ~450k. Pools fit 96 bands: 96 -> 48 -> 24 -> 12 -> 4 -> 1."""

  CHANNELS = (32, 64, 128, 128, 176)
  POOLS = ((2, 2), (2, 2), (2, 2), (2, 3), (2, 4))

  def __init__(self, hp: Hyper, mel: LogMelConfig, n_tags: int, *, width: float, dropout: float,
               rngs: nnx.Rngs):
    channels = self._init_stack(hp, mel, width=width, dropout=dropout, act=jax.nn.relu, rngs=rngs)
    self.out = hp.dense(channels, n_tags, rngs)

  def features(self, x, train):
    return max_over(self._stack(x, train), (1, 2))


def _run_gru(cell: nnx.GRUCell, x: jax.Array) -> jax.Array:
  """``(batch, time, in)`` -> ``(batch, time, hidden)``: a plain ``lax.scan`` over the cell (reads its
  parameters only, so it is safe inside the trainer's jit without an NNX transform)."""
  h0 = jnp.zeros((x.shape[0], cell.hidden_features), x.dtype)
  _, ys = jax.lax.scan(lambda h, xt: cell(h, xt), h0, jnp.swapaxes(x, 0, 1))
  return jnp.swapaxes(ys, 0, 1)


class CRNN(_Choi):
  """Choi et al. 2017 (CRNN): 4 x [conv 3x3, BN, ELU, max-pool], then two GRU layers over time and a
  dense output on the last state. Sized to the paper's 3M budget (conv 128-256-256-256, GRU 384-384);
  pools keep an 11-step sequence from a 3-s patch and reduce 96 bands to 1."""

  CHANNELS = (128, 256, 256, 256)
  POOLS = ((2, 2), (2, 3), (2, 4), (2, 4))
  GRU = (384, 384)

  def __init__(self, hp: Hyper, mel: LogMelConfig, n_tags: int, *, width: float, dropout: float,
               rngs: nnx.Rngs):
    sizes = [self._init_stack(hp, mel, width=width, dropout=dropout, act=jax.nn.elu, rngs=rngs)]
    sizes += [_w(g, width) for g in self.GRU]
    self.grus = nnx.List([nnx.GRUCell(i, o, dtype=hp.dtype, param_dtype=jnp.float32, rngs=rngs)
                          for i, o in zip(sizes, sizes[1:])])
    self.out = hp.dense(sizes[-1], n_tags, rngs)

  def features(self, x, train):
    x = max_over(self._stack(x, train), 2)                       # (B, T', C): the one remaining freq bin
    for cell in self.grus:
      x = _run_gru(cell, x)
    return x[:, -1]
