"""Data augmentation on the device, inside the jitted train step (``config.augment.*``, all off by default).

Why on the device: the loader's workers decode audio and cut chunks; anything per-example after that is a few
element-wise passes over a ``(batch, samples)`` array, which costs far less inside the step's XLA program than
in Python workers, and keeps the randomness a pure function of the step. The key of step ``s`` is
``fold_in(key(seed), s)`` and each augmentation folds in its own constant, so a resumed run draws exactly the
same augmentations (the step counter is checkpointed) and turning one augmentation on does not change another's
draws.

What each one does to a ``(batch, samples)`` waveform chunk, in this order:

* ``speed``: varispeed. Each example is resampled by a ratio ``r`` in ``[1 - speed, 1 + speed]`` with linear
  interpolation (``out[i] = x(i r)``), so pitch and tempo change together, as a tape played faster or slower.
  There is no anti-alias filter (``r > 1`` folds content above ``sr / (2 r)`` back down, at most ``speed`` of
  the band), and when ``r > 1`` the chunk runs out before its end: the tail is zero-filled (silence).
* ``shift``: crop jitter. Each example moves by up to ``shift`` samples either way and the vacated edge is
  zero-filled (no wrap-around: a wrapped chunk would splice the end onto the start, a cut no song has). The
  loader already draws a fresh random chunk position each epoch, so this adds silent edges (a chunk that
  starts or ends at a song's boundary), not new positions.
* ``gain`` (uniform in +-``gain_db`` dB) and ``polarity`` (sign flip with probability ``polarity``): no
  clipping is applied, as a float pipeline has none.
* ``mixup``: ``lam ~ Beta(a, a)`` per example, mixed with another example of the global batch (a random
  permutation); the targets are mixed with the same ``lam`` (soft targets for the BCE).
* ``noise``: with probability ``noise_prob``, white Gaussian noise at an SNR uniform in
  ``[noise_snr_min_db, noise_snr_max_db]`` relative to that example's own mean power (a silent example gets no
  noise).
* SpecAugment (``time_masks`` / ``freq_masks``): masks on the log-mel *inside* mel models, in training only.
  The train step installs ``spec_masks`` as ``models.logmel``'s training hook, which every mel front-end
  calls on its log-mel. A masked band or span is set to 0, the value of silence under ``log10(1 + c x)``.
"""
from __future__ import annotations

import contextlib
import dataclasses

import jax
import jax.numpy as jnp


# fold_in constants: one independent stream per augmentation
_SPEED, _SHIFT, _GAIN, _POLARITY, _MIXUP, _NOISE, _SPEC = range(7)


@dataclasses.dataclass(frozen=True)
class Augment:
  """Static augmentation settings (hashable: a ``jit`` static argument). Build with ``from_config``."""
  seed: int = 0
  speed: float = 0.0
  shift: int = 0                 # samples
  gain_db: float = 0.0
  polarity: float = 0.0
  mixup_alpha: float = 0.0
  noise_prob: float = 0.0
  noise_snr_min_db: float = 10.0
  noise_snr_max_db: float = 40.0
  time_masks: int = 0
  time_mask_frames: int = 0
  freq_masks: int = 0
  freq_mask_bins: int = 0

  @property
  def waveform_on(self) -> bool:
    return bool(self.speed or self.shift or self.gain_db or self.polarity or self.mixup_alpha or self.noise_prob)

  @property
  def spec_on(self) -> bool:
    return bool((self.time_masks and self.time_mask_frames) or (self.freq_masks and self.freq_mask_bins))


def from_config(config) -> Augment | None:
  """The run's ``Augment``, or ``None`` when every augmentation is off (the config schema has checked the ranges,
  ``jaxtag.core.config``)."""
  a = config.get("augment", None)
  if a is None:
    return None
  out = Augment(seed=int(config.seed), speed=float(a.speed),
                shift=int(round(float(a.shift_seconds) * int(config.data.sample_rate))),
                gain_db=float(a.gain_db), polarity=float(a.polarity), mixup_alpha=float(a.mixup_alpha),
                noise_prob=float(a.noise_prob), noise_snr_min_db=float(a.noise_snr_min_db),
                noise_snr_max_db=float(a.noise_snr_max_db), time_masks=int(a.time_masks),
                time_mask_frames=int(a.time_mask_frames), freq_masks=int(a.freq_masks),
                freq_mask_bins=int(a.freq_mask_bins))
  return out if out.waveform_on or out.spec_on else None


def step_key(aug: Augment, step) -> jax.Array:
  """The augmentation key of train step ``step`` (the state's step counter, traced or not)."""
  return jax.random.fold_in(jax.random.key(aug.seed), step)


def speed(key, audio, max_change: float):
  """Varispeed by a per-example ratio in ``[1 - max_change, 1 + max_change]`` (linear interpolation)."""
  b, n = audio.shape
  ratio = jax.random.uniform(key, (b, 1), minval=1.0 - max_change, maxval=1.0 + max_change)
  pos = jnp.arange(n, dtype=jnp.float32)[None, :] * ratio
  i0 = jnp.floor(pos).astype(jnp.int32)
  frac = pos - i0
  x0 = jnp.take_along_axis(audio, jnp.clip(i0, 0, n - 1), axis=1)
  x1 = jnp.take_along_axis(audio, jnp.clip(i0 + 1, 0, n - 1), axis=1)
  out = x0 + frac * (x1 - x0)
  return jnp.where(i0 + 1 < n, out, 0.0).astype(audio.dtype)


def shift(key, audio, max_shift: int):
  """Each example moved by an integer in ``[-max_shift, max_shift]`` samples, the vacated edge zero-filled."""
  b, n = audio.shape
  offsets = jax.random.randint(key, (b,), -max_shift, max_shift + 1)
  padded = jnp.pad(audio, ((0, 0), (max_shift, max_shift)))
  return jax.vmap(lambda row, s: jax.lax.dynamic_slice(row, (max_shift - s,), (n,)))(padded, offsets)


def gain(key, audio, max_db: float):
  db = jax.random.uniform(key, (audio.shape[0], 1), minval=-max_db, maxval=max_db)
  return audio * (10.0 ** (db / 20.0)).astype(audio.dtype)


def polarity(key, audio, prob: float):
  flip = jax.random.bernoulli(key, prob, (audio.shape[0], 1))
  return jnp.where(flip, -audio, audio)


def mixup(key, audio, targets, alpha: float):
  """``lam x + (1 - lam) x[perm]`` and the same for the targets, ``lam ~ Beta(alpha, alpha)`` per example."""
  k_lam, k_perm = jax.random.split(key)
  b = audio.shape[0]
  lam = jax.random.beta(k_lam, alpha, alpha, (b, 1))
  perm = jax.random.permutation(k_perm, b)
  mixed_audio = lam * audio + (1.0 - lam) * audio[perm]
  mixed_targets = lam * targets + (1.0 - lam) * targets[perm]
  return mixed_audio.astype(audio.dtype), mixed_targets.astype(targets.dtype)


def noise(key, audio, prob: float, snr_min_db: float, snr_max_db: float):
  """White noise at a per-example SNR (dB, against the example's mean power), with probability ``prob``."""
  k_on, k_snr, k_noise = jax.random.split(key, 3)
  b = audio.shape[0]
  on = jax.random.bernoulli(k_on, prob, (b, 1))
  snr_db = jax.random.uniform(k_snr, (b, 1), minval=snr_min_db, maxval=snr_max_db)
  white = jax.random.normal(k_noise, audio.shape, jnp.float32)
  signal_power = jnp.mean(jnp.square(audio.astype(jnp.float32)), axis=1, keepdims=True)
  noise_power = jnp.mean(jnp.square(white), axis=1, keepdims=True)
  scale = jnp.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
  return jnp.where(on, audio + (scale * white).astype(audio.dtype), audio)


def waveform(aug: Augment, key, audio, targets):
  """The waveform augmentations that are on, in the module's order; ``(audio, targets)``."""
  sub = lambda i: jax.random.fold_in(key, i)
  if aug.speed:
    audio = speed(sub(_SPEED), audio, aug.speed)
  if aug.shift:
    audio = shift(sub(_SHIFT), audio, aug.shift)
  if aug.gain_db:
    audio = gain(sub(_GAIN), audio, aug.gain_db)
  if aug.polarity:
    audio = polarity(sub(_POLARITY), audio, aug.polarity)
  if aug.mixup_alpha:
    audio, targets = mixup(sub(_MIXUP), audio, targets, aug.mixup_alpha)
  if aug.noise_prob:
    audio = noise(sub(_NOISE), audio, aug.noise_prob, aug.noise_snr_min_db, aug.noise_snr_max_db)
  return audio, targets


def _masks(key, batch: int, length: int, count: int, max_width: int):
  """``(batch, length)`` bool: the union of ``count`` spans of width ``0..max_width`` at random starts."""
  k_w, k_s = jax.random.split(key)
  width = jax.random.randint(k_w, (batch, count, 1), 0, max_width + 1)
  start = jnp.floor(jax.random.uniform(k_s, (batch, count, 1)) * (length - width + 1)).astype(jnp.int32)
  pos = jnp.arange(length)[None, None, :]
  return jnp.any((pos >= start) & (pos < start + width), axis=1)


def spec_masks(aug: Augment, key, spec):
  """SpecAugment time and frequency masks on a ``(batch, frames, mels)`` log-mel (masked cells -> 0)."""
  b, t, m = spec.shape
  keep = jnp.ones((b, t, m), bool)
  k_t, k_f = jax.random.split(jax.random.fold_in(key, _SPEC))
  if aug.time_masks and aug.time_mask_frames:
    keep &= ~_masks(k_t, b, t, aug.time_masks, min(aug.time_mask_frames, t))[:, :, None]
  if aug.freq_masks and aug.freq_mask_bins:
    keep &= ~_masks(k_f, b, m, aug.freq_masks, min(aug.freq_mask_bins, m))[:, None, :]
  return jnp.where(keep, spec, jnp.zeros((), spec.dtype))


@contextlib.contextmanager
def on_logmel(aug: Augment | None, key):
  """While the training forward pass is traced: mel front-ends mask their log-mel (``models.logmel``'s hook)."""
  from jaxtag.models import logmel
  if aug is None or not aug.spec_on:
    yield
    return
  with logmel.training_hook(lambda spec: spec_masks(aug, key, spec)):
    yield
