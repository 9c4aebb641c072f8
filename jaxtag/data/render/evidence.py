"""Evidence a 96-band log-mel (512-sample window, 256 hop, 16 kHz) discards, laid over music, and the oracle
features that read it back from the waveform.

Three layers, each carrying one binary tag whose two states have the same magnitude statistics:

- *phase* (tag ``aligned phase``): a steady harmonic drone (f0 170-300 Hz, continuous, partials to 4 kHz, so
  every partial sits in its own FFT bin and mel bands add powers, not amplitudes). Its partials start in
  cosine phase (a pulse train) or in Schroeder / random phases (a flat envelope); the magnitudes are drawn
  independently of that choice. Oracle: fold 0.25-s segments at the drone's period (found from a long FFT by
  harmonic sum) and take the crest factor of the folded period.
- *sub-frame timing* (tag ``flam``): a shaker of short 4.5-7.5 kHz noise bursts; in a flam clip each burst is
  doubled 2-10 ms later (one spacing per clip, as a player's) at the same total energy, so both hits fall in
  one 32-ms analysis window. Oracle: the normalised autocorrelation of the high band at 2-10 ms lags.
  Measured: invisible over the numpy generator's music, but over the rendered (MP3-band-limited) music the
  band holds little else and a log-mel probe reads the flam at ROC-AUC 0.75 (docs/results.md, Testbed corpus).
- *fine pitch* (tag ``detuned``): a sustained sine-plus-octave tone (MIDI 59-71) exactly on the 12-TET grid
  (+-3 cents) or 35-50 cents off it. A mel band there is 31 Hz wide (68-130 cents), wider than the offset,
  and semitones are denser than bands, so grid and off-grid tones fill the bands alike. Oracle: the tone's
  frequency from 16-s zero-padded FFTs (the peak present in every third of the clip, drone harmonics masked),
  its distance to the grid in cents.

Each layer's level is drawn relative to the music's RMS independently of the tags, and the sum is brought
back to the music's RMS, so loudness tags stay true. ``jaxtag.analyze.invisibility`` measures all of this.
"""
from __future__ import annotations

import numpy as np

SR = 16000
TAGS = ("aligned phase", "flam", "detuned")
FAMILY = {"aligned phase": "phase", "flam": "timing", "detuned": "fine pitch"}
DRONE_F0 = (170.0, 300.0)
DRONE_TOP_HZ = 4000.0
TONE_MIDI = (59, 71)
SHAKER_BAND = (4500.0, 7500.0)
FLAM_MS = (2.0, 10.0)


def draw_states(rng: np.random.Generator) -> dict[str, bool]:
  """Each invisible tag on or off with probability 1/2, independently of the music and of each other."""
  return {t: bool(rng.random() < 0.5) for t in TAGS}


def _fade(n: int, ms: float = 40.0) -> np.ndarray:
  k = min(n // 2, int(SR * ms / 1000))
  env = np.ones(n, np.float64)
  ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, k))
  env[:k], env[n - k:] = ramp, ramp[::-1]
  return env


def drone(rng: np.random.Generator, n: int, aligned: bool) -> tuple[np.ndarray, dict]:
  """A steady harmonic complex; ``aligned``: cosine phases, else Schroeder (half) or uniform random phases."""
  f0 = float(np.exp(rng.uniform(*np.log(DRONE_F0))))
  k = np.arange(1, int(DRONE_TOP_HZ // f0) + 1)
  amps = k ** -rng.uniform(0.3, 0.9) * rng.uniform(0.6, 1.0, len(k))
  schroeder = bool(rng.random() < 0.5)
  other = np.pi * k * (k - 1) / len(k) if schroeder else rng.uniform(0, 2 * np.pi, len(k))
  phases = np.zeros(len(k)) if aligned else other
  t = np.arange(n) / SR
  y = (amps[:, None] * np.cos(2 * np.pi * f0 * k[:, None] * t[None] + phases[:, None])).sum(0)
  return y * _fade(n), {"drone_hz": round(f0, 3), "drone_phase": "aligned" if aligned else
                        ("schroeder" if schroeder else "random")}


def tone(rng: np.random.Generator, n: int, detuned: bool) -> tuple[np.ndarray, dict]:
  """A sine with a quieter octave, on the 12-TET grid or 35-50 cents off it (either side)."""
  midi = int(rng.integers(TONE_MIDI[0], TONE_MIDI[1] + 1))
  cents = float(rng.choice((-1, 1)) * rng.uniform(35, 50)) if detuned else float(rng.uniform(-3, 3))
  f = 440.0 * 2 ** ((midi - 69) / 12 + cents / 1200)
  t = np.arange(n) / SR
  ph = rng.uniform(0, 2 * np.pi, 2)
  y = np.sin(2 * np.pi * f * t + ph[0]) + rng.uniform(0.2, 0.5) * np.sin(4 * np.pi * f * t + ph[1])
  return y * _fade(n), {"tone_hz": round(f, 3), "tone_cents": round(cents, 2)}


def _band_noise(rng: np.random.Generator, n: int, band: tuple[float, float]) -> np.ndarray:
  spec = np.fft.rfft(rng.normal(size=n))
  f = np.fft.rfftfreq(n, 1 / SR)
  spec[(f < band[0]) | (f > band[1])] = 0
  return np.fft.irfft(spec, n)


def shaker(rng: np.random.Generator, n: int, flam: bool) -> tuple[np.ndarray, dict]:
  """Short band-limited noise bursts at 3-7 per second; a flam clip doubles each one ``gap`` ms later with
  the pair scaled to the single burst's energy."""
  y = np.zeros(n + SR // 20)
  rate = rng.uniform(3, 7)
  gap = int(round(rng.uniform(*FLAM_MS) * SR / 1000))
  second = rng.uniform(0.6, 1.0)
  length = int(0.015 * SR)
  t = float(rng.uniform(0, 1 / rate))
  hits = 0
  while t < n / SR - 0.03:
    burst = _band_noise(rng, length, SHAKER_BAND) * np.exp(-np.arange(length) / (SR * rng.uniform(0.0015, 0.004)))
    burst *= rng.uniform(0.5, 1.0) / (np.sqrt(np.mean(burst**2)) + 1e-12)
    at = int(t * SR)
    if flam:
      norm = 1 / np.sqrt(1 + second**2)
      y[at:at + length] += burst * norm
      y[at + gap:at + gap + length] += burst * second * norm
    else:
      y[at:at + length] += burst
    hits += 1
    t += rng.exponential(1 / rate) + 0.04
  return y[:n], {"shaker_hits": hits, "flam_ms": round(gap * 1000 / SR, 3) if flam else 0.0}


def _rms(x: np.ndarray) -> float:
  return float(np.sqrt(np.mean(np.square(x)))) + 1e-12


def add(music: np.ndarray, rng: np.random.Generator, states: dict[str, bool]) -> tuple[np.ndarray, dict]:
  """``music`` (16 kHz mono) with the three layers at tag-independent levels, at the music's own RMS."""
  n = len(music)
  music = np.asarray(music, np.float64)
  base = _rms(music) if _rms(music) > 1e-6 else 0.05
  d, fd = drone(rng, n, states["aligned phase"])
  s, fs = shaker(rng, n, states["flam"])
  o, fo = tone(rng, n, states["detuned"])
  levels = {"drone_db": rng.uniform(-12, -6), "shaker_db": rng.uniform(-16, -10), "tone_db": rng.uniform(-11, -6)}
  y = music.copy()
  for layer, key in ((d, "drone_db"), (s, "shaker_db"), (o, "tone_db")):
    y += layer * (base * 10 ** (levels[key] / 20) / _rms(layer))
  y *= base / _rms(y)
  y = np.clip(y, -1.0, 1.0).astype(np.float32)
  return y, {**fd, **fs, **fo, **{k: round(float(v), 2) for k, v in levels.items()}}


# ---- oracle features (read the evidence back from the mixture's waveform) ----

def _long_spectrum(y: np.ndarray, nfft: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
  mag = np.abs(np.fft.rfft(y * np.hanning(len(y)), nfft))
  return mag, np.fft.rfftfreq(nfft, 1 / SR)


def drone_f0(y: np.ndarray, spectrum=None) -> float:
  """The drone's f0: the candidate in ``DRONE_F0`` whose first 12 harmonics carry the most long-FFT magnitude."""
  mag, freqs = spectrum if spectrum is not None else _long_spectrum(y)
  df = freqs[1]
  cands = np.arange(DRONE_F0[0] - 3, DRONE_F0[1] + 3, df / 2)
  k = np.arange(1, 13)
  idx = np.rint(np.outer(cands, k) / df).astype(int)
  score = np.log(mag[idx] + 1e-9).sum(1)
  best = cands[np.argmax(score)]
  fine = np.arange(best - df, best + df, df / 8)   # refine on the highest harmonics' peaks
  idx = np.rint(np.outer(fine, k) / df).astype(int)
  return float(fine[np.argmax(mag[idx].sum(1))])


def _bandpass(y: np.ndarray, lo: float, hi: float) -> np.ndarray:
  spec = np.fft.rfft(y)
  f = np.fft.rfftfreq(len(y), 1 / SR)
  spec[(f < lo) | (f > hi)] = 0
  return np.fft.irfft(spec, len(y))


def phase_crest(y: np.ndarray, f0: float | None = None, segment_s: float = 0.25, bins: int = 48) -> float:
  """Mean crest factor of the period-synchronous average (folded at the drone's period) of 0.25-s segments:
  high for cosine-phase partials (a pulse per period), low for Schroeder / random phases."""
  y = np.asarray(y, np.float64)
  f0 = f0 or drone_f0(y)
  x = _bandpass(y, 350.0, DRONE_TOP_HZ)
  seg = int(segment_s * SR)
  crests = []
  for a in range(0, len(x) - seg + 1, seg):
    t = np.arange(a, a + seg)
    b = np.floor((t * f0 / SR) % 1.0 * bins).astype(int)
    fold = np.bincount(b, x[a:a + seg], bins) / np.maximum(np.bincount(b, None, bins), 1)
    fold -= fold.mean()
    crests.append(np.abs(fold).max() / (np.sqrt(np.mean(fold**2)) + 1e-12))
  return float(np.median(crests))


def flam_autocorr(y: np.ndarray) -> float:
  """Largest normalised autocorrelation of the shaker band at 2-10 ms lags (a doubled hit repeats itself)."""
  x = _bandpass(np.asarray(y, np.float64), *SHAKER_BAND)
  spec = np.fft.rfft(x, 2 * len(x))
  ac = np.fft.irfft(np.abs(spec) ** 2)[: len(x)]
  lo, hi = (int(FLAM_MS[0] * SR / 1000) - 2, int(FLAM_MS[1] * SR / 1000) + 3)
  return float(ac[lo:hi].max() / (ac[0] + 1e-12))


def tone_cents_off_grid(y: np.ndarray, spectrum=None, f0: float | None = None) -> float:
  """Distance (cents) of the sustained tone from the 12-TET grid: the strongest long-FFT peak in the tone's
  register that every third of the clip holds (drone harmonics masked), refined by parabolic interpolation."""
  y = np.asarray(y, np.float64)
  mag, freqs = spectrum if spectrum is not None else _long_spectrum(y)
  f0 = f0 or drone_f0(y, (mag, freqs))
  third = len(y) // 3   # a sustained tone is in every third of the clip; most music notes are not
  steady = np.min([_long_spectrum(y[k * third:(k + 1) * third])[0] for k in range(3)], axis=0)
  lo, hi = 440 * 2 ** ((TONE_MIDI[0] - 69.6) / 12), 440 * 2 ** ((TONE_MIDI[1] - 68.4) / 12)
  keep = (freqs >= lo) & (freqs <= hi)
  harm = freqs / f0
  keep &= np.abs(harm - np.rint(harm)) * f0 > 2.0
  m = np.where(keep, steady, 0.0)
  i = int(np.argmax(m))
  a, b, c = np.log(mag[i - 1: i + 2] + 1e-12)
  shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
  f = (i + shift) * freqs[1]
  cents = 1200 * np.log2(f / 440.0)
  return float(abs(cents - 100 * np.rint(cents / 100)))


def oracle_features(y: np.ndarray) -> dict[str, float]:
  """One oracle score per invisible tag, larger meaning more likely positive."""
  y = np.asarray(y, np.float64)
  spectrum = _long_spectrum(y)
  f0 = drone_f0(y, spectrum)
  return {"aligned phase": phase_crest(y, f0), "flam": flam_autocorr(y),
          "detuned": tone_cents_off_grid(y, spectrum, f0)}
