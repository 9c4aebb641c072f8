"""On-device augmentation (jaxtag.training.augment): each one does what it says, is a pure function of the step's key,
is refused out of range, and the SpecAugment hook reaches the mel front-end in training only."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtag.core import config as config_lib
from jaxtag.core import choices
from jaxtag.training import augment
from jaxtag.models import logmel

ALL_ON = augment.Augment(seed=3, speed=0.1, shift=100, gain_db=6.0, polarity=0.5, mixup_alpha=0.4, noise_prob=1.0,
                         noise_snr_min_db=10.0, noise_snr_max_db=20.0, time_masks=2, time_mask_frames=5,
                         freq_masks=2, freq_mask_bins=8)


def _batch(b=8, n=4000):
  rng = np.random.default_rng(0)
  t = np.arange(n) / 16000
  audio = np.sin(2 * np.pi * rng.uniform(100, 1000, (b, 1)) * t[None]).astype(np.float32)
  targets = (rng.uniform(size=(b, 5)) < 0.5).astype(np.float32)
  return jnp.asarray(audio), jnp.asarray(targets)


def test_same_step_same_draws_and_another_step_other_draws():
  audio, targets = _batch()
  run = jax.jit(lambda step: augment.waveform(ALL_ON, augment.step_key(ALL_ON, step), audio, targets))
  a1, t1 = run(jnp.int32(7))
  a2, t2 = run(jnp.int32(7))
  np.testing.assert_array_equal(np.asarray(a1), np.asarray(a2))
  np.testing.assert_array_equal(np.asarray(t1), np.asarray(t2))
  a3, _ = run(jnp.int32(8))
  assert not np.allclose(np.asarray(a1), np.asarray(a3))
  spec = jnp.ones((8, 40, 16))
  masks = [np.asarray(augment.spec_masks(ALL_ON, augment.step_key(ALL_ON, s), spec)) for s in (7, 7, 8)]
  np.testing.assert_array_equal(masks[0], masks[1])
  assert not np.array_equal(masks[0], masks[2])


def test_turning_one_augmentation_on_leaves_the_others_draws_alone():
  audio, targets = _batch()
  key = jax.random.key(1)
  gain_only = augment.Augment(gain_db=6.0)
  with_polarity = augment.Augment(gain_db=6.0, polarity=1.0)   # always flips
  a, _ = augment.waveform(gain_only, key, audio, targets)
  b, _ = augment.waveform(with_polarity, key, audio, targets)
  np.testing.assert_array_equal(np.asarray(a), -np.asarray(b))


def test_gain_noise_shift_and_mixup_do_what_they_say():
  audio, targets = _batch()
  key = jax.random.key(2)
  out = np.asarray(augment.gain(key, audio, 6.0))
  db = 20 * np.log10(np.abs(out[:, 0:200]).max(axis=1) / np.abs(np.asarray(audio)[:, 0:200]).max(axis=1))
  assert np.all(np.abs(db) <= 6.0 + 1e-4) and db.std() > 0.5
  noisy = np.asarray(augment.noise(key, audio, 1.0, 15.0, 15.0), np.float64)
  x = np.asarray(audio, np.float64)
  snr = 10 * np.log10(np.mean(x ** 2, axis=1) / np.mean((noisy - x) ** 2, axis=1))
  np.testing.assert_allclose(snr, 15.0, atol=0.01)
  shifted = np.asarray(augment.shift(key, audio, 50))
  for row, orig in zip(shifted, x):   # some offset s in [-50, 50] reproduces the row, zeros on the vacated edge
    matches = [s for s in range(-50, 51) if np.allclose(row, np.roll(np.pad(orig, 50), s)[50:-50], atol=1e-6)]
    assert len(matches) == 1
  mixed, mixed_t = augment.mixup(key, audio, targets, 0.4)
  assert np.all((np.asarray(mixed_t) >= 0) & (np.asarray(mixed_t) <= 1))
  assert not np.array_equal(np.asarray(mixed_t), np.asarray(targets))


def test_speed_resamples_by_the_drawn_ratio():
  n, f = 16000, 440.0
  audio = jnp.asarray(np.sin(2 * np.pi * f * np.arange(n) / 16000)[None].astype(np.float32))
  out = np.asarray(augment.speed(jax.random.key(0), audio, 0.2))[0]
  ratio = float(jax.random.uniform(jax.random.key(0), (1, 1), minval=0.8, maxval=1.2)[0, 0])
  valid = out[:int((n - 1) / max(ratio, 1.0)) - 1]
  peak = np.argmax(np.abs(np.fft.rfft(valid * np.hanning(len(valid))))) * 16000 / len(valid)
  assert abs(peak - f * ratio) < 3.0, (peak, f * ratio)


def test_spec_masks_reach_the_front_end_in_the_training_step_only():
  spec = jnp.ones((2, 30, 12))
  masked = np.asarray(augment.spec_masks(ALL_ON, jax.random.key(0), spec))
  assert 0 < (masked == 0).sum() < masked.size and set(np.unique(masked)) <= {0.0, 1.0}
  assert logmel.for_model(spec) is spec   # no hook outside a training step
  with augment.on_logmel(ALL_ON, jax.random.key(0)):
    np.testing.assert_array_equal(np.asarray(logmel.for_model(spec)), masked)
  assert logmel.for_model(spec) is spec


def test_config_defaults_are_off_and_ranges_are_checked():
  c = config_lib.base_config()
  assert augment.from_config(c) is None
  c.augment.gain_db, c.augment.shift_seconds = 6.0, 0.1
  aug = augment.from_config(c)
  assert aug.gain_db == 6.0 and aug.shift == 1600 and aug.seed == c.seed
  for key, bad in (("polarity", 1.5), ("noise_snr_min_db", 50.0), ("speed", 0.9), ("freq_mask_bins", 200)):
    c2 = config_lib.base_config()
    c2.augment[key] = bad
    with pytest.raises(choices.ConfigError, match=f"augment.{key}"):
      config_lib.validate(c2)
