"""Won et al. 2020's taggers ("Evaluation of CNN-based automatic music tagging models", SMC 2020), with the
parameters of the authors' PyTorch modules (minzwon/sota-music-tagging-models, ``training/model.py``,
``modules.py``, ``attention_modules.py``); the counts are derived layer by layer in ``tests/test_won.py``.

Layout is jaxtag's ``(batch, time, freq, channels)``; the authors' tensors are ``(batch, channels, freq, time)``,
so their ``(freq, time)`` pools and strides read ``(time, freq)`` here. Blocks keep PyTorch's order and padding:
a 3x3 conv pads one bin on every side, strided or not, so every output size is PyTorch's. The spectrogram models
start from torchaudio's mel spectrogram + ``AmplitudeToDB`` (``logmel.style='torchaudio'``) and a BatchNorm over
the one input channel (``spec_bn``). Initialisation is jaxtag's (He, fan-in), not PyTorch's; BN epsilon and
momentum come from the config (``configs/won.py`` sets PyTorch's). ``width`` scales every channel count
(smoke runs and tests shrink it); at 1 the models are the authors'.

Models whose stack needs a minimum length score fixed windows of the authors' input (59,049 or 80,000 samples)
and average the window logits (``layers.Windowed``), as the authors average crops; CNNSA takes any length.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxtag.core import choices
from jaxtag.models.layers import ConvBNAct, Hyper, Windowed, max_over, max_pool_time
from jaxtag.models.logmel import LogMelConfig, logmel, num_frames, power_to_db, stft_power

SHORT_CHUNK_SAMPLES = 59_049          # 3^10: short-chunk CNN / ResNet and SampleCNN(+SE) input
HARMONIC_SAMPLES = 80_000             # 5 s: Harmonic CNN input
PAD3 = ((1, 1), (1, 1))               # PyTorch's padding=1 of a 3x3 conv, also under stride 2


def _w(n: float, width: float) -> int:
  return max(1, round(n * width))


def max_pool_2d(x: jax.Array, pool: tuple[int, int]) -> jax.Array:
  """Non-overlapping 'valid' max-pool of ``(B, T, F, C)`` over ``(time, freq)`` windows (PyTorch's floor), as a
  reshape and ``max_over`` (arg-max gradient, no reduce-window). An axis already shorter than its window (fewer
  mels than the authors' 128) is pooled whole instead of vanishing."""
  b, t, f, c = x.shape
  pt, pf = min(pool[0], t), min(pool[1], f)
  nt, nf = t // pt, f // pf
  return max_over(x[:, :nt * pt, :nf * pf].reshape(b, nt, pt, nf, pf, c), (2, 4))


class ConvPool2d(nnx.Module):
  """The authors' ``Conv_2d``: conv 3x3 (padding 1), BN, ReLU, max-pool ``(time, freq)``."""

  def __init__(self, hp: Hyper, cin: int, cout: int, pool: tuple[int, int], *, rngs: nnx.Rngs):
    self.block = ConvBNAct(hp, cin, cout, (3, 3), padding=PAD3, rngs=rngs)
    self.pool = tuple(pool)

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    return max_pool_2d(self.block(x, train), self.pool)


class Res2d(nnx.Module):
  """The authors' ``Res_2d`` (``stride`` given) and ``Res_2d_mp`` (``pool`` given): conv 3x3 (stride), BN, ReLU,
  conv 3x3, BN, plus the input, or its projection [conv 3x3 (stride), BN] when the stride or the channels
  change; ReLU; then the max-pool if any."""

  def __init__(self, hp: Hyper, cin: int, cout: int, *, stride: tuple[int, int] = (1, 1),
               pool: tuple[int, int] | None = None, rngs: nnx.Rngs):
    self.conv1 = hp.conv(cin, cout, (3, 3), rngs, strides=tuple(stride), padding=PAD3)
    self.bn1 = hp.bn(cout, rngs)
    self.conv2 = hp.conv(cout, cout, (3, 3), rngs, padding=PAD3)
    self.bn2 = hp.bn(cout, rngs)
    self.project = tuple(stride) != (1, 1) or cin != cout
    if self.project:
      self.conv3 = hp.conv(cin, cout, (3, 3), rngs, strides=tuple(stride), padding=PAD3)
      self.bn3 = hp.bn(cout, rngs)
    self.pool = None if pool is None else tuple(pool)

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    ra = not train
    out = self.bn2(self.conv2(jax.nn.relu(self.bn1(self.conv1(x), use_running_average=ra))), use_running_average=ra)
    if self.project:
      x = self.bn3(self.conv3(x), use_running_average=ra)
    out = jax.nn.relu(x + out)
    return out if self.pool is None else max_pool_2d(out, self.pool)


class ResSE1d(nnx.Module):
  """The authors' ``ResSE_1d`` (Kim et al. 2018): conv k (stride, padding k//2), BN, ReLU, conv k, BN, scaled
  per channel by squeeze-and-excitation [time mean, dense C, ReLU, dense C, sigmoid], plus the input or its
  projection [conv k (stride), BN]; ReLU; max-pool over time."""

  def __init__(self, hp: Hyper, cin: int, cout: int, *, kernel: int, stride: int, pool: int, rngs: nnx.Rngs):
    pad = ((kernel // 2, kernel // 2),)
    self.conv1 = hp.conv(cin, cout, (kernel,), rngs, strides=stride, padding=pad)
    self.bn1 = hp.bn(cout, rngs)
    self.conv2 = hp.conv(cout, cout, (kernel,), rngs, padding=pad)
    self.bn2 = hp.bn(cout, rngs)
    self.squeeze = hp.dense(cout, cout, rngs)
    self.excite = hp.dense(cout, cout, rngs)
    self.project = stride != 1 or cin != cout
    if self.project:
      self.conv3 = hp.conv(cin, cout, (kernel,), rngs, strides=stride, padding=pad)
      self.bn3 = hp.bn(cout, rngs)
    self.pool = pool

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    ra = not train
    out = self.bn2(self.conv2(jax.nn.relu(self.bn1(self.conv1(x), use_running_average=ra))), use_running_average=ra)
    gate = jax.nn.sigmoid(self.excite(jax.nn.relu(self.squeeze(out.mean(axis=1)))))
    out = out * gate[:, None, :]
    if self.project:
      x = self.bn3(self.conv3(x), use_running_average=ra)
    out = jax.nn.relu(x + out)
    return out if self.pool == 1 else max_pool_time(out, self.pool)


class _DenseHead:
  """The authors' tagging head: dense C, BN, ReLU (the embedding), dropout, output; named by the registry's
  contract (``dense``/``bn_dense`` is the dense block, ``out`` the output layer)."""

  def _init_head(self, hp: Hyper, channels: int, n_tags: int, dropout: float, rngs: nnx.Rngs):
    self.dense = hp.dense(channels, channels, rngs)
    self.bn_dense = hp.bn(channels, rngs)
    self.drop = nnx.Dropout(dropout, rngs=rngs)
    self.out = hp.dense(channels, n_tags, rngs)

  def _embedding(self, h: jax.Array, train: bool) -> jax.Array:
    return jax.nn.relu(self.bn_dense(self.dense(h), use_running_average=not train))

  def head(self, h: jax.Array, train: bool) -> jax.Array:
    return self.out(self.drop(h, deterministic=not train))


class _MelModel(_DenseHead, Windowed):
  """torchaudio-style log-mel in, ``spec_bn`` over the one input channel."""

  def _init_mel(self, hp: Hyper, mel: LogMelConfig, window_samples: int | None, rngs: nnx.Rngs):
    self.mel = mel
    self.window = None if window_samples is None else num_frames(window_samples, mel.hop)
    self.spec_bn = hp.bn(1, rngs)

  def prepare(self, wave: jax.Array) -> jax.Array:
    return logmel(wave, self.mel)

  def _input(self, x: jax.Array, train: bool) -> jax.Array:
    return self.spec_bn(x[..., None], use_running_average=not train)


SHORT_CHANNELS = (1, 1, 2, 2, 2, 2, 4)   # multiples of n_channels=128 of the seven blocks


class ShortChunkCNN(_MelModel):
  """Short-chunk CNN (``ShortChunkCNN``): 7 x [conv 3x3, BN, ReLU, max-pool 2x2] with 128-128-256-256-256-256-512
  channels on the 128-mel log-mel of 59,049 samples (231 frames -> 1 x 1), global max over time, dense 512, BN,
  ReLU, dropout 0.5, output: 3,687,348 parameters with 50 tags."""

  def __init__(self, hp: Hyper, mel: LogMelConfig, n_tags: int, *, width: float, dropout: float,
               rngs: nnx.Rngs):
    self._init_mel(hp, mel, SHORT_CHUNK_SAMPLES, rngs)
    chans = [_w(128 * m, width) for m in SHORT_CHANNELS]
    self.blocks = nnx.List([ConvPool2d(hp, i, o, (2, 2), rngs=rngs) for i, o in zip([1] + chans, chans)])
    self._init_head(hp, chans[-1], n_tags, dropout, rngs)

  def features(self, x, train):
    x = self._input(x, train)
    for block in self.blocks:
      x = block(x, train)
    return self._embedding(max_over(x, (1, 2)), train)          # one freq bin left: the global max over time


class ShortChunkResNet(_MelModel):
  """Short-chunk ResNet (``ShortChunkCNN_Res``): the short-chunk CNN with its blocks replaced by 7 residual
  blocks of stride 2 (projection shortcuts are 3x3 convs of stride 2): 12,104,244 parameters with 50 tags."""

  def __init__(self, hp: Hyper, mel: LogMelConfig, n_tags: int, *, width: float, dropout: float,
               rngs: nnx.Rngs):
    self._init_mel(hp, mel, SHORT_CHUNK_SAMPLES, rngs)
    chans = [_w(128 * m, width) for m in SHORT_CHANNELS]
    self.blocks = nnx.List([Res2d(hp, i, o, stride=(2, 2), rngs=rngs) for i, o in zip([1] + chans, chans)])
    self._init_head(hp, chans[-1], n_tags, dropout, rngs)

  def features(self, x, train):
    x = self._input(x, train)
    for block in self.blocks:
      x = block(x, train)
    return self._embedding(max_over(x, (1, 2)), train)


@functools.lru_cache(maxsize=8)
def harmonic_centres(sample_rate: int, n_harmonic: int, semitone_scale: int) -> np.ndarray:
  """The authors' ``initialize_filterbank``: ``semitone_scale`` bands per semitone from C1 (MIDI 24) up to the
  note nearest ``sample_rate / (2 n_harmonic)`` (exclusive), stacked for harmonics 1..n: ``(n_harmonic *
  level,)`` float32 Hz, harmonic-major. At 16 kHz, 6 harmonics, 2 per semitone: MIDI 24..88, 128 bands."""
  low = 24
  high = int(np.round(12 * (np.log2(sample_rate / (2 * n_harmonic)) - np.log2(440.0)) + 69))
  level = (high - low) * semitone_scale
  midi = np.linspace(low, high, level + 1)[:-1]
  hz = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
  out = np.concatenate([hz * (i + 1) for i in range(n_harmonic)]).astype(np.float32)
  out.setflags(write=False)
  return out


class HarmonicFilterbank(nnx.Module):
  """The authors' ``HarmonicSTFT`` with ``learn_bw='only_Q'``: STFT power (torchaudio's ``Spectrogram``:
  centred with reflect padding, periodic Hann, power 2) through triangular band-passes at every harmonic centre
  ``f``, of bandwidth ``(0.1079 f + 24.7) / Q`` with one learnable ``Q`` (init 1), in dB:
  ``(B, samples)`` -> ``(B, frames, level, n_harmonic)`` (the harmonics are the channels)."""

  ALPHA, BETA = 0.1079, 24.7

  def __init__(self, mel: LogMelConfig, *, n_harmonic: int = 6, semitone_scale: int = 2):
    self.stft = LogMelConfig(mel.sample_rate, mel.n_fft, mel.hop, style="torchaudio")
    self.n_harmonic, self.semitone_scale = n_harmonic, semitone_scale
    self.level = harmonic_centres(mel.sample_rate, n_harmonic, semitone_scale).size // n_harmonic
    self.q = nnx.Param(jnp.ones((1,), jnp.float32))

  def filterbank(self) -> jax.Array:
    """``(n_fft // 2 + 1, n_harmonic * level)`` float32, from the current ``Q``."""
    f0 = jnp.asarray(harmonic_centres(self.stft.sample_rate, self.n_harmonic, self.semitone_scale))[None, :]
    bins = jnp.linspace(0.0, self.stft.sample_rate // 2, self.stft.n_fft // 2 + 1, dtype=jnp.float32)[:, None]
    bw = (self.ALPHA * f0 + self.BETA) / self.q[...]
    up = bins * (2.0 / bw) + 1.0 - 2.0 * f0 / bw
    down = bins * (-2.0 / bw) + 1.0 + 2.0 * f0 / bw
    return jnp.maximum(0.0, jnp.minimum(down, up))

  def __call__(self, wave: jax.Array) -> jax.Array:
    power = stft_power(wave, self.stft)                                          # (B, T, bins)
    spec = jnp.einsum("btf,fk->btk", power, self.filterbank(), precision=jax.lax.Precision.HIGHEST)
    b, t, _ = spec.shape
    spec = jnp.swapaxes(spec.reshape(b, t, self.n_harmonic, self.level), 2, 3)  # (B, T, level, harmonic)
    return power_to_db(spec)


class HarmonicCNN(_DenseHead, Windowed):
  """Harmonic CNN (``HarmonicCNN``, Won et al. ICASSP 2020): the harmonic filterbank on 80,000 samples (313
  frames x 128 bands x 6 harmonics), BN over the harmonics, then conv block (128), 3 residual blocks with
  max-pool 2x2, conv block (256), 2 residual blocks with max-pool (time 3, freq 2), global max over time,
  dense 256, BN, ReLU, dropout, output: 3,631,551 parameters with 50 tags (Q included)."""

  def __init__(self, hp: Hyper, mel: LogMelConfig, n_tags: int, *, width: float, dropout: float,
               rngs: nnx.Rngs, n_harmonic: int = 6):
    self.hstft = HarmonicFilterbank(mel, n_harmonic=n_harmonic)
    self.window = num_frames(HARMONIC_SAMPLES, mel.hop)
    self.hstft_bn = hp.bn(n_harmonic, rngs)
    c = _w(128, width)
    self.blocks = nnx.List([
        ConvPool2d(hp, n_harmonic, c, (2, 2), rngs=rngs),
        *[Res2d(hp, c, c, pool=(2, 2), rngs=rngs) for _ in range(3)],
        ConvPool2d(hp, c, 2 * c, (2, 2), rngs=rngs),
        *[Res2d(hp, 2 * c, 2 * c, pool=(3, 2), rngs=rngs) for _ in range(2)]])
    self._init_head(hp, 2 * c, n_tags, dropout, rngs)

  def prepare(self, wave):
    return self.hstft(wave)

  def features(self, x, train):
    x = self.hstft_bn(x, use_running_average=not train)
    for block in self.blocks:
      x = block(x, train)
    return self._embedding(max_over(x, (1, 2)), train)


# (out channels, kernel, stride, pool) of SampleCNN+SE's 11 blocks at width 1
SE_BLOCKS = ((128, 3, 3, 1),) + ((128, 3, 1, 3),) * 2 + ((256, 3, 1, 3),) * 6 + ((512, 3, 1, 3), (512, 1, 1, 1))


class SampleCNNSE(_DenseHead, Windowed):
  """SampleCNN + SE (``SampleCNNSE``, Kim et al. 2018): 11 residual squeeze-and-excitation blocks on 59,049
  samples (the first of stride 3, nine with max-pool 3, the last 1x1) down to one frame, dense 512, BN, ReLU,
  dropout, output: 6,951,858 parameters with 50 tags."""

  def __init__(self, hp: Hyper, n_tags: int, *, width: float, dropout: float, rngs: nnx.Rngs):
    self.window = SHORT_CHUNK_SAMPLES
    cin, blocks = 1, []
    for cout, kernel, stride, pool in SE_BLOCKS:
      blocks.append(ResSE1d(hp, cin, _w(cout, width), kernel=kernel, stride=stride, pool=pool, rngs=rngs))
      cin = _w(cout, width)
    self.blocks = nnx.List(blocks)
    self._init_head(hp, cin, n_tags, dropout, rngs)

  def prepare(self, wave):
    return wave

  def features(self, x, train):
    x = x[..., None]
    for block in self.blocks:
      x = block(x, train)
    return self._embedding(x[:, 0], train)                      # the window is reduced to one frame


@functools.lru_cache(maxsize=8)
def cls_token(hidden: int) -> np.ndarray:
  """The authors' fixed (not learned) [CLS] vector: ``np.random.seed(0); np.random.random((1, hidden))``."""
  out = np.random.RandomState(0).random_sample((1, hidden)).astype(np.float32)
  out.setflags(write=False)
  return out


class EncoderLayer(nnx.Module):
  """One BERT layer (the authors' ``BertLayer``, post-norm): multi-head self-attention [query, key, value,
  softmax(q k^T / sqrt(d)), attention dropout, dense, dropout, + input, LayerNorm(1e-12)], then the feed-forward
  [dense 4H, exact GELU, dense H, dropout, + input, LayerNorm]."""

  def __init__(self, hp: Hyper, hidden: int, heads: int, intermediate: int, *, hidden_dropout: float,
               attention_dropout: float, rngs: nnx.Rngs):
    if hidden % heads:
      raise choices.ConfigError(f"attention width {hidden} is not a multiple of its {heads} heads")
    self.heads = heads
    self.query = hp.dense(hidden, hidden, rngs)
    self.key = hp.dense(hidden, hidden, rngs)
    self.value = hp.dense(hidden, hidden, rngs)
    self.attention_dense = hp.dense(hidden, hidden, rngs)
    self.attention_norm = self._norm(hp, hidden, rngs)
    self.ffn_in = hp.dense(hidden, intermediate, rngs)
    self.ffn_out = hp.dense(intermediate, hidden, rngs)
    self.ffn_norm = self._norm(hp, hidden, rngs)
    self.attention_drop = nnx.Dropout(attention_dropout, rngs=rngs)
    self.hidden_drop = nnx.Dropout(hidden_dropout, rngs=rngs)

  @staticmethod
  def _norm(hp: Hyper, hidden: int, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(hidden, epsilon=1e-12, dtype=hp.dtype, param_dtype=jnp.float32, rngs=rngs)

  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    b, t, h = x.shape
    d = h // self.heads
    split = lambda y: y.reshape(b, t, self.heads, d)
    q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)
    probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype)
    probs = self.attention_drop(probs, deterministic=not train)
    context = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, t, h)
    x = self.attention_norm(self.hidden_drop(self.attention_dense(context), deterministic=not train) + x)
    y = self.ffn_out(jax.nn.gelu(self.ffn_in(x), approximate=False))
    return self.ffn_norm(self.hidden_drop(y, deterministic=not train) + x)


class CNNSA(_MelModel):
  """CNNSA (``CNNSA``, Won et al. 2019): 7 residual blocks (128-128-256-256-256-256-256; stride 2x2 for three,
  then 2 along frequency only) on the 128-mel log-mel of 15 s, one frame per 8 STFT frames of 256 features;
  a fixed [CLS] vector in front; a 2-layer BERT encoder (8 heads, feed-forward 1024, dropout 0.4, attention
  dropout 0.5, no position embedding: the authors' model has none); the pooler [dense 256, tanh] on the [CLS]
  output (the embedding), dropout 0.5, output: 10,521,652 parameters with 50 tags. Any input length."""

  def __init__(self, hp: Hyper, mel: LogMelConfig, n_tags: int, *, width: float, dropout: float,
               rngs: nnx.Rngs):
    self._init_mel(hp, mel, None, rngs)
    bins = mel.n_mels
    for _ in range(7):
      bins = -(-bins // 2)
    if bins != 1:
      raise choices.ConfigError(f"CNNSA halves the mel axis 7 times to one bin; {mel.n_mels} mels leave {bins}")
    c = _w(128, width)
    chans = [c, c] + [2 * c] * 5
    strides = [(2, 2)] * 3 + [(1, 2)] * 4
    self.blocks = nnx.List([Res2d(hp, i, o, stride=s, rngs=rngs)
                            for i, o, s in zip([1] + chans, chans, strides)])
    hidden = 2 * c
    self.encoder = nnx.List([EncoderLayer(hp, hidden, 8, 4 * hidden, hidden_dropout=0.4, attention_dropout=0.5,
                                          rngs=rngs) for _ in range(2)])
    self.dense = hp.dense(hidden, hidden, rngs)                  # the authors' BertPooler
    self.drop = nnx.Dropout(dropout, rngs=rngs)
    self.out = hp.dense(hidden, n_tags, rngs)

  def features(self, x, train):
    x = self._input(x, train)
    for block in self.blocks:
      x = block(x, train)
    x = x[:, :, 0]                                               # (B, T', H): the one mel bin left
    cls = jnp.broadcast_to(jnp.asarray(cls_token(x.shape[-1]), x.dtype)[None], (x.shape[0], 1, x.shape[-1]))
    x = jnp.concatenate([cls, x], axis=1)
    for layer in self.encoder:
      x = layer(x, train)
    return jnp.tanh(self.dense(x[:, 0]))
