"""Log-mel spectrogram on the device, equal to librosa >= 0.9 (and to musicnn's preprocessing).

``librosa.feature.melspectrogram(y, sr, n_fft, hop_length, n_mels)`` with its defaults: centred frames
(zero padding of n_fft // 2 on both sides, librosa >= 0.9's ``pad_mode='constant'``), periodic Hann
window, power 2, Slaney mel scale with Slaney area normalisation; then ``log10(scale * x + 1)``.
The filterbank is a NumPy constant built from static config, so the module has no state and jit folds
it in; its matmul runs at HIGHEST precision so TPU/GPU do not round the mel power to bfloat16.

``style='torchaudio'`` is instead ``torchaudio.transforms.MelSpectrogram`` followed by ``AmplitudeToDB()`` with
their defaults, the front-end of Won et al.'s PyTorch models: centred frames with *reflect* padding, periodic
Hann, power 2, HTK mel scale without area normalisation, then ``10 * log10(max(x, 1e-10))`` (power to dB,
reference 1, no ``top_db`` clipping); ``log_scale`` and ``musicnn_compat`` do not apply to it.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxtag.core import choices

_F_SP, _MIN_LOG_HZ = 200.0 / 3, 1000.0
_MIN_LOG_MEL, _LOGSTEP = _MIN_LOG_HZ / _F_SP, np.log(6.4) / 27.0
STYLES = choices.LOGMEL_STYLES          # see the module docstring
DB_AMIN = 1e-10                        # AmplitudeToDB's floor on the power


def hz_to_mel(f):
  """Slaney mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
  f = np.asarray(f, dtype=np.float64)
  log_part = _MIN_LOG_MEL + np.log(np.maximum(f, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP
  return np.where(f >= _MIN_LOG_HZ, log_part, f / _F_SP)


def mel_to_hz(m):
  m = np.asarray(m, dtype=np.float64)
  return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


def hz_to_mel_htk(f):
  """HTK mel scale (librosa ``htk=True``, torchaudio's default): ``2595 log10(1 + f / 700)``."""
  return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz_htk(m):
  return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
                   style: str = "librosa") -> np.ndarray:
  """``(n_fft // 2 + 1, n_mels)`` float32 filterbank: Slaney scale with area normalisation (librosa's default),
  or for ``style='torchaudio'`` HTK scale without normalisation (torchaudio's ``melscale_fbanks`` default)."""
  to_mel, to_hz = (hz_to_mel_htk, mel_to_hz_htk) if style == "torchaudio" else (hz_to_mel, mel_to_hz)
  fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
  edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2))
  widths = np.diff(edges)
  ramps = edges[:, None] - fft_freqs[None, :]
  rising = -ramps[:-2] / widths[:-1, None]
  falling = ramps[2:] / widths[1:, None]
  weights = np.maximum(0.0, np.minimum(rising, falling))
  if style != "torchaudio":
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
  weights = weights.astype(np.float32).T
  weights.setflags(write=False)
  return weights


@functools.lru_cache(maxsize=16)
def _hann(n_fft: int) -> np.ndarray:
  w = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)   # periodic
  w.setflags(write=False)
  return w


def num_frames(samples: int, hop: int) -> int:
  """Frames of a centred STFT: ``1 + samples // hop`` (48,000 samples, hop 256 -> 188)."""
  return 1 + samples // hop


@dataclasses.dataclass(frozen=True)
class LogMelConfig:
  """Static log-mel settings (hashable, so a module can hold it without becoming pytree state)."""
  sample_rate: int = 16000
  n_fft: int = 512
  hop: int = 256
  n_mels: int = 96
  fmin: float = 0.0
  fmax: float = 8000.0
  log_scale: float = 10000.0
  musicnn_compat: bool = False
  style: str = "librosa"

  @classmethod
  def from_config(cls, logmel_cfg, sample_rate: int) -> "LogMelConfig":
    style = str(logmel_cfg.get("style", "librosa"))          # runs written before the key: librosa
    choices.check("model.logmel.style", style, STYLES)
    return cls(int(sample_rate), int(logmel_cfg.n_fft), int(logmel_cfg.hop), int(logmel_cfg.n_mels),
               float(logmel_cfg.fmin), float(logmel_cfg.fmax), float(logmel_cfg.log_scale),
               bool(logmel_cfg.musicnn_compat), style)


def stft_power(wave: jax.Array, cfg: LogMelConfig, centred: bool = True) -> jax.Array:
  """``(batch, samples)`` -> periodic-Hann power spectrogram ``(batch, frames, n_fft//2+1)``: centred (padding
  of ``n_fft // 2`` on both sides, with zeros as librosa >= 0.9 or by reflection with ``style='torchaudio'``),
  or, with ``centred=False``, of windows whose padding was done outside (``1 + (samples - n_fft) // hop``
  frames, the ONNX export's musicnn patches)."""
  wave = wave.astype(jnp.float32)
  half = cfg.n_fft // 2
  if centred:
    mode = "reflect" if cfg.style == "torchaudio" else "constant"
    padded, frames = jnp.pad(wave, ((0, 0), (half, half)), mode=mode), num_frames(wave.shape[-1], cfg.hop)
  else:
    padded, frames = wave, 1 + (wave.shape[-1] - cfg.n_fft) // cfg.hop
  spec = jnp.fft.rfft(frame(padded, frames, cfg.n_fft, cfg.hop) * _hann(cfg.n_fft), axis=-1)
  return jnp.real(spec) ** 2 + jnp.imag(spec) ** 2


def frame(padded: jax.Array, frames: int, n_fft: int, hop: int) -> jax.Array:
  """``(batch, samples)`` -> ``(batch, frames, n_fft)`` overlapping frames, frame ``f`` = ``[f*hop, f*hop+n_fft)``.

  When ``hop`` divides ``n_fft`` (512/256 here) a frame is ``n_fft // hop`` consecutive hop-sized blocks, so
  the frames are slices of one reshape: the same values as a gather, without XLA:CPU's gather kernel.
  """
  if n_fft % hop == 0:
    r = n_fft // hop
    blocks = padded[:, :(frames + r - 1) * hop].reshape(padded.shape[0], frames + r - 1, hop)
    return jnp.concatenate([blocks[:, i:i + frames] for i in range(r)], axis=-1)
  index = np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]
  return padded[:, index]


def mel_power(wave: jax.Array, cfg: LogMelConfig, centred: bool = True) -> jax.Array:
  """``(batch, samples)`` -> mel power ``(batch, frames, n_mels)`` float32."""
  fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax, cfg.style)
  return jnp.einsum("btf,fm->btm", stft_power(wave, cfg, centred), fb, precision=jax.lax.Precision.HIGHEST)


def power_to_db(power: jax.Array) -> jax.Array:
  """``AmplitudeToDB()`` on a power spectrogram: ``10 log10(max(x, 1e-10))`` (reference 1, no top_db)."""
  return 10.0 * jnp.log10(jnp.maximum(power, DB_AMIN))


def log_compress(mel: jax.Array, cfg: LogMelConfig) -> jax.Array:
  """``log10(scale * x + 1)``; with ``musicnn_compat`` the power is first rounded to float16 and back,
  as musicnn's ``.astype(np.float16)`` does (tiny powers flush to 0, large ones lose mantissa).
  ``style='torchaudio'``: ``power_to_db``."""
  if cfg.style == "torchaudio":
    return power_to_db(mel)
  if cfg.musicnn_compat:
    mel = mel.astype(jnp.float16).astype(jnp.float32)
  return jnp.log10(cfg.log_scale * mel + 1.0)


def logmel(wave: jax.Array, cfg: LogMelConfig, centred: bool = True) -> jax.Array:
  """``(batch, samples)`` float waveform -> ``(batch, frames, n_mels)`` float32 log-mel."""
  return log_compress(mel_power(wave, cfg, centred), cfg)


# A function applied to the log-mel of mel front-ends while a training step is traced (SpecAugment masks,
# ``jaxtag.augment``); None outside. Set only by the train step, so inference never sees it.
_TRAINING_HOOK: contextvars.ContextVar = contextvars.ContextVar("logmel_training_hook", default=None)


@contextlib.contextmanager
def training_hook(fn):
  """Within this context, ``for_model`` applies ``fn`` to every log-mel a mel front-end computes."""
  token = _TRAINING_HOOK.set(fn)
  try:
    yield
  finally:
    _TRAINING_HOOK.reset(token)


def for_model(spec: jax.Array) -> jax.Array:
  """The seam every mel front-end passes its ``(batch, frames, mels)`` log-mel through: the identity,
  except inside a training step with SpecAugment on (``training_hook``)."""
  hook = _TRAINING_HOOK.get()
  return spec if hook is None else hook(spec)
