"""Numpy/scipy sound sources for the generated corpus: instrument notes, drum hits, voices and effects.

Every source is vectorised per note (additive partials as one (K, N) matrix, Karplus-Strong as one IIR
filter), so a clip costs milliseconds per part and generation stays well under real time on one core.
Timbres deliberately overlap (guitar vs harp, strings vs violin, organ vs synth) so that tags are not
separable from one spectral feature: the corpus must be learnable, not trivial.
"""
from __future__ import annotations

import numpy as np
from scipy import signal

SR = 16000
NYQUIST_MARGIN = 0.45 * SR   # keep partials below this so additive tones never alias

# Vowel formants (F1, F2, F3) in Hz; a "voice" note picks one per note, as a singer changes syllables.
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (570, 840, 2410), (300, 870, 2240))


def _env(n: int, attack: float, decay: float | None, release: float = 0.05) -> np.ndarray:
  """Attack ramp, exponential decay (None = sustain) and a short linear release at the end."""
  t = np.arange(n, dtype=np.float32) / SR
  env = np.minimum(1.0, t / max(attack, 1e-3))
  if decay is not None:
    env *= np.exp(-t / decay)
  r = min(n, int(release * SR))
  env[n - r:] *= np.linspace(1.0, 0.0, r, dtype=np.float32)
  return env


def _additive(f0: float, n: int, amps: np.ndarray, decays: np.ndarray | None = None, vibrato: float = 0.0,
              inharm: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
  """Sum of partials k*f0 (stretched by ``inharm``), per-partial decay; ``vibrato`` is a relative depth."""
  k = np.arange(1, len(amps) + 1, dtype=np.float32)
  freqs = f0 * k * np.sqrt(1.0 + inharm * k**2)
  keep = freqs < NYQUIST_MARGIN
  k, freqs, amps = k[keep], freqs[keep], amps[keep]
  t = np.arange(n, dtype=np.float32) / SR
  phase = 2 * np.pi * t
  if vibrato:
    rate = 5.0 + (rng.uniform(-0.7, 0.7) if rng is not None else 0.0)
    phase = phase + vibrato / rate * np.sin(2 * np.pi * rate * t) * np.minimum(1.0, t / 0.3)
  partials = np.sin(freqs[:, None] * phase[None, :])
  if decays is not None:
    partials *= np.exp(-t[None, :] / decays[keep][:, None])
  return (amps[:, None] * partials).sum(axis=0).astype(np.float32)


def _karplus(f0: float, n: int, rng: np.random.Generator, damp: float, bright: float) -> np.ndarray:
  """Plucked string: a noise burst through a damped comb (one lfilter call, no Python sample loop)."""
  period = max(2, int(round(SR / f0)))
  burst = rng.uniform(-1, 1, period).astype(np.float32)
  burst = signal.lfilter([bright], [1, bright - 1], burst)   # one-pole low-pass: darker pluck
  x = np.zeros(n, np.float32)
  x[:period] = burst
  a = np.zeros(period + 2, np.float32)
  a[0], a[period], a[period + 1] = 1.0, -damp / 2, -damp / 2
  return signal.lfilter([1.0], a, x).astype(np.float32)


def note(kind: str, f0: float, dur: float, rng: np.random.Generator) -> np.ndarray:
  """One note of instrument ``kind`` at ``f0`` Hz lasting ``dur`` s (plus its release), peak ~1."""
  n = int((dur + 0.08) * SR)
  k = np.arange(1, 21, dtype=np.float32)
  if kind == "piano":
    y = _additive(f0, n, 1 / k[:12] ** 1.3, decays=1.6 / k[:12] ** 0.6, inharm=4e-4) * _env(n, 0.004, None)
  elif kind == "harpsichord":
    y = _additive(f0, n, 1 / k[:16] ** 0.6, decays=0.9 / k[:16] ** 0.4, inharm=1e-4) * _env(n, 0.002, None)
  elif kind in ("guitar", "harp"):
    y = _karplus(f0, n, rng, damp=0.996 if kind == "guitar" else 0.998, bright=0.6 if kind == "guitar" else 0.35)
  elif kind == "sitar":
    y = np.tanh(3.0 * _karplus(f0, n, rng, damp=0.997, bright=0.8)) * _env(n, 0.002, 1.2)
  elif kind in ("strings", "violin", "cello"):
    voices = 3 if kind == "strings" else 1
    y = sum(_additive(f0 * (1 + rng.uniform(-0.004, 0.004)), n, 1 / k[:14], vibrato=0.0 if voices > 1 else 0.006,
                      rng=rng) for _ in range(voices)) / voices
    y = y * _env(n, 0.12 if kind == "strings" else 0.06, None, release=0.15)
  elif kind == "flute":
    y = _additive(f0, n, np.array([1.0, 0.25, 0.08], np.float32), vibrato=0.004, rng=rng)
    breath = signal.sosfilt(signal.butter(2, [min(f0, 4000), min(3 * f0, 7000)], "bandpass", fs=SR, output="sos"),
                            rng.normal(0, 0.15, n))
    y = (y + breath.astype(np.float32)) * _env(n, 0.05, None, release=0.08)
  elif kind == "organ":
    amps = np.zeros(8, np.float32)
    amps[[0, 1, 2, 3, 5, 7]] = (1.0, 0.7, 0.5, 0.35, 0.25, 0.2)
    y = _additive(f0, n, amps) * _env(n, 0.01, None)
  elif kind == "synth":
    y = sum(_additive(f0 * d, n, 1 / k[:18]) for d in (0.995, 1.0, 1.006)) / 3
    y = y * _env(n, 0.01, 0.8 + rng.uniform(0, 1.5))
  elif kind == "bells":
    t = np.arange(n, dtype=np.float32) / SR
    y = np.sin(2 * np.pi * f0 * t + 3.0 * np.exp(-t / 0.4) * np.sin(2 * np.pi * 3.5 * f0 * t)) * np.exp(-t / 1.2)
  elif kind == "bass":
    y = _additive(f0, n, 1 / k[:8] ** 1.2, decays=0.6 / k[:8] ** 0.3) * _env(n, 0.005, None)
  elif kind in ("female", "male"):
    y = voice(f0, n, VOWELS[rng.integers(len(VOWELS))], rng)
  else:
    raise ValueError(f"unknown instrument {kind!r}")
  return y.astype(np.float32) / (np.abs(y).max() + 1e-6)


def voice(f0: float, n: int, formants: tuple, rng: np.random.Generator) -> np.ndarray:
  """Formant-shaped harmonic tone: partial amplitudes follow a 3-formant envelope (a sung vowel)."""
  k = np.arange(1, int(NYQUIST_MARGIN // f0), dtype=np.float32)
  spectrum = sum(np.exp(-0.5 * ((k * f0 - fm) / (60 + 0.05 * fm)) ** 2) * w
                 for fm, w in zip(formants, (1.0, 0.6, 0.3)))
  y = _additive(f0, n, (spectrum + 0.02) / np.sqrt(k), vibrato=0.012, rng=rng)
  return y * _env(n, 0.04, None, release=0.1)


def drum_kit(rng: np.random.Generator, electronic: bool) -> dict[str, np.ndarray]:
  """One kit per clip: kick (pitch sweep), snare (noise + tone), hat (high-passed noise), tabla-like tom."""
  def t(sec):
    return np.arange(int(sec * SR), dtype=np.float32) / SR
  tk = t(0.6 if electronic else 0.35)
  f_hi, f_lo = rng.uniform(90, 160), rng.uniform(40, 60)
  kick = np.sin(2 * np.pi * (f_lo * tk + (f_hi - f_lo) * 0.04 * (1 - np.exp(-tk / 0.04))))
  kick *= np.exp(-tk / (0.3 if electronic else 0.12))
  ts = t(0.25)
  noise = rng.normal(0, 1, len(ts)).astype(np.float32)
  snare = (signal.sosfilt(signal.butter(2, [1500, 6000], "bandpass", fs=SR, output="sos"), noise) * 0.8
           + 0.5 * np.sin(2 * np.pi * rng.uniform(160, 220) * ts)) * np.exp(-ts / rng.uniform(0.05, 0.12))
  th = t(0.1)
  hat = signal.sosfilt(signal.butter(4, 6500 if electronic else 5000, "highpass", fs=SR, output="sos"),
                       rng.normal(0, 1, len(th))) * np.exp(-th / rng.uniform(0.015, 0.04))
  tt = t(0.4)
  tom = np.sin(2 * np.pi * rng.uniform(180, 320) * tt * (1 + 0.1 * np.exp(-tt / 0.05))) * np.exp(-tt / 0.15)
  kit = {"kick": kick, "snare": snare, "hat": hat, "tom": tom}
  return {name: (x / (np.abs(x).max() + 1e-6)).astype(np.float32) for name, x in kit.items()}


def place(buf: np.ndarray, x: np.ndarray, at: float, gain: float = 1.0) -> None:
  """Adds ``x`` into ``buf`` starting at ``at`` seconds (cut at the end of the buffer)."""
  i = int(at * SR)
  if i >= len(buf):
    return
  m = min(len(x), len(buf) - i)
  buf[i:i + m] += gain * x[:m]


def reverb(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Exponentially decaying noise impulse response (a small-to-large room), mixed wet/dry."""
  rt = rng.uniform(0.2, 1.2)
  n = int(rt * SR)
  ir = rng.normal(0, 1, n).astype(np.float32) * np.exp(-np.arange(n, dtype=np.float32) / (SR * rt / 6.9))
  wet = signal.fftconvolve(y, ir / np.sqrt((ir**2).sum()))[:len(y)]
  mix = rng.uniform(0.1, 0.45)
  return ((1 - mix) * y + mix * wet).astype(np.float32)


def equalise(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Random channel colouring: a high-pass, sometimes a low-pass (cheap codec / old recording)."""
  y = signal.sosfilt(signal.butter(2, rng.uniform(30, 250), "highpass", fs=SR, output="sos"), y)
  if rng.random() < 0.4:
    y = signal.sosfilt(signal.butter(4, rng.uniform(2500, 7000), "lowpass", fs=SR, output="sos"), y)
  return y.astype(np.float32)
