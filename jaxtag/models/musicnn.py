"""musicnn and musicnn-VGG (Pons & Serra 2019, PyPI ``musicnn==0.1.0``), layer for layer as the shipped graph.

Both take ``(batch, samples)`` 16-kHz audio and compute the log-mel on the device (use
``logmel.musicnn_compat=True`` to reproduce the authors' float16 rounding), then keep the first
``samples // hop`` frames: a 3-s chunk (48,000 samples, 188 centred frames) gives musicnn's 187-frame
patch. Both also take ``(batch, frames, mels)`` log-mel patches directly (rank 3 instead of 2): that is
the input of imported runs, whose preprocessing contract (``jaxtag.models.contract``) cuts musicnn's patches from
one whole-file log-mel, exactly as musicnn does. ``from_logmel`` is the same entry, named.
Variable names in comments are the TF checkpoint's; ``jaxtag.tools.import_musicnn`` maps them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxtag.models.layers import ConvReluBN, Hyper, MelConvReluBN, Windowed, global_max_mean, max_over, pad_time
from jaxtag.models.logmel import LogMelConfig, for_model, logmel

PATCH_FRAMES = 187          # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1


def _logmel_frames(wave: jax.Array, mel: LogMelConfig) -> jax.Array:
  """Centred log-mel of the chunk, cut to ``samples // hop`` frames (187 for 3 s); a rank-3 input already
  is a log-mel ``(batch, frames, mels)`` and passes through."""
  if wave.ndim == 3:
    if wave.shape[-1] != mel.n_mels:
      raise ValueError(f"log-mel input has {wave.shape[-1]} bands, the model {mel.n_mels}")
    return for_model(wave)
  return for_model(logmel(wave, mel)[:, :wave.shape[-1] // mel.hop])


class Musicnn(nnx.Module):
  """``build_musicnn``: input BN, timbral + temporal front-end, dense-residual mid-end, pooled back-end.

  ``midend_filters=64, units=200`` is MTT/MSD_musicnn (787,159 params with 50 tags); 512/500 is
  MSD_musicnn_big. ``width`` scales the front-end's 204/51 filters (1 for the published models).
  """

  def __init__(self, hp: Hyper, mel: LogMelConfig, n_tags: int, *, midend_filters: int, units: int,
               dropout: float, width: float = 1.0, rngs: nnx.Rngs):
    self.mel = mel
    n_mels, timbral, temporal = mel.n_mels, int(1.6 * 128 * width), int(1.6 * 32 * width)
    self.input_bn = hp.bn(1, rngs)                                                       # batch_normalization
    self.timbral = nnx.List([MelConvReluBN(hp, 1, timbral, (7, int(f * n_mels)), rngs=rngs)  # conv2d, conv2d_1
                             for f in (0.4, 0.7)])
    self.temporal = nnx.List([ConvReluBN(hp, 1, temporal, (taps, 1), padding="SAME", rngs=rngs)
                              for taps in (128, 64, 32)])                                 # conv2d_2..4
    front = 2 * timbral + 3 * temporal                                                    # 561
    pad = ((3, 3),)
    self.mid = nnx.List([ConvReluBN(hp, c_in, midend_filters, (7,), padding=pad, rngs=rngs)
                         for c_in in (front, midend_filters, midend_filters)])            # conv2d_5..7
    pooled = 2 * (front + 3 * midend_filters)
    self.pool_bn = hp.bn(pooled, rngs)                                                    # batch_normalization_9
    self.drop1 = nnx.Dropout(dropout, rngs=rngs)
    self.dense = hp.dense(pooled, units, rngs)                                            # dense
    self.dense_bn = hp.bn(units, rngs)                                                    # batch_normalization_10
    self.drop2 = nnx.Dropout(dropout, rngs=rngs)
    self.out = hp.dense(units, n_tags, rngs)                                              # dense_1

  def features(self, spec: jax.Array, train: bool) -> jax.Array:
    """``(batch, frames, mels)`` log-mel -> penultimate ``(batch, units)``."""
    x = self.input_bn(spec[..., None], use_running_average=not train)
    fe = [branch.pooled(pad_time(x, 3, 3), train) for branch in self.timbral]
    fe += [max_over(branch(x, train), 2) for branch in self.temporal]
    h = jnp.concatenate(fe, axis=-1)
    layers = [h]
    for n, block in enumerate(self.mid):
      y = block(layers[-1], train)
      layers.append(y if n == 0 else y + layers[-1])          # residual on the BN output (cnn2, cnn3)
    pooled = self.pool_bn(global_max_mean(jnp.concatenate(layers, axis=-1)), use_running_average=not train)
    pooled = self.drop1(pooled, deterministic=not train)
    return self.dense_bn(jax.nn.relu(self.dense(pooled)), use_running_average=not train)

  def from_logmel(self, spec: jax.Array, train: bool = False) -> jax.Array:
    pen = self.drop2(self.features(spec, train), deterministic=not train)
    return self.out(pen).astype(jnp.float32)

  def __call__(self, wave: jax.Array, train: bool = False) -> jax.Array:
    return self.from_logmel(_logmel_frames(wave, self.mel), train)

  def embed(self, wave: jax.Array, train: bool = False) -> jax.Array:
    return self.features(_logmel_frames(wave, self.mel), train).astype(jnp.float32)


# (pool window (time, freq), strides) of the 5 VGG blocks; the flatten after block 5 fixes the patch length.
VGG_POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))


def vgg_output_shape(frames: int, mels: int) -> tuple[int, int]:
  for (wt, wf), (st, sf) in VGG_POOLS:
    frames, mels = (frames - wt) // st + 1, (mels - wf) // sf + 1
  return frames, mels


class MusicnnVGG(Windowed):
  """musicnn's ``vgg(x, 128)``: input BN, 5 x [conv 3x3 same, ReLU, BN, max-pool], flatten, dense.

  The flatten ties the dense layer to 187-frame patches, so a longer chunk is cut into non-overlapping
  187-frame patches (the tail is dropped, as musicnn does; a shorter one is zero-padded) and the patch
  logits are averaged.
  """

  def __init__(self, hp: Hyper, mel: LogMelConfig, n_tags: int, *, filters: int, rngs: nnx.Rngs):
    self.mel = mel
    self.window = PATCH_FRAMES
    self.input_bn = hp.bn(1, rngs)                                                        # batch_normalization
    self.blocks = nnx.List([ConvReluBN(hp, 1 if n == 0 else filters, filters, (3, 3), padding="SAME",
                                       rngs=rngs) for n in range(len(VGG_POOLS))])        # 1CNN..5CNN
    self.drop_block = nnx.Dropout(0.25, rngs=rngs)
    self.drop_out = nnx.Dropout(0.5, rngs=rngs)
    t, f = vgg_output_shape(PATCH_FRAMES, mel.n_mels)
    self.out = hp.dense(t * f * filters, n_tags, rngs)                                    # dense

  def features(self, spec: jax.Array, train: bool) -> jax.Array:
    """``(batch, 187, mels)`` log-mel patches -> flattened pool5 ``(batch, 256)``."""
    x = self.input_bn(spec[..., None], use_running_average=not train)
    for n, (block, (window, strides)) in enumerate(zip(self.blocks, VGG_POOLS)):
      x = nnx.max_pool(block(x, train), window, strides=strides, padding="VALID")
      if n < len(VGG_POOLS) - 1:
        x = self.drop_block(x, deterministic=not train)
    return x.reshape(x.shape[0], -1)

  def prepare(self, wave: jax.Array) -> jax.Array:
    return _logmel_frames(wave, self.mel)

  def head(self, h: jax.Array, train: bool) -> jax.Array:
    return self.out(self.drop_out(h, deterministic=not train))

  def from_logmel(self, spec: jax.Array, train: bool = False) -> jax.Array:
    return self.head(self.features(spec, train), train).astype(jnp.float32)
