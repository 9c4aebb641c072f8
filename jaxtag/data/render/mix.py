"""The mix bus (part levels are set in the render, see ``render.render_parts``):
EQ, compression, reverb, loudness, 16 kHz and an MP3 round trip.

Effects come from ``pedalboard`` (GPL-3; Spotify's JUCE wrapper, manylinux wheels, LAME inside its
``MP3Compressor``). An artist fixes the bus (EQ curve, room, compression, MP3 quality, loudness centre),
as a producer's sound; a clip jitters the part levels and the loudness. MagnaTagATune's clips are 16 kHz
MP3s, so the round trip happens at 16 kHz, as the last step.
"""
from __future__ import annotations

import numpy as np
import pedalboard
import soxr

from jaxtag.data.render.render import RENDER_SR

SR = 16000


def new_bus(rng: np.random.Generator) -> dict:
  """An artist's mix bus settings."""
  return {"low_db": float(rng.uniform(-6, 6)), "high_db": float(rng.uniform(-9, 4)),
          "peak_hz": float(np.exp(rng.uniform(np.log(300), np.log(4000)))), "peak_db": float(rng.uniform(-6, 6)),
          "room": float(rng.uniform(0.1, 0.9)), "wet": float(rng.uniform(0.0, 0.35)),
          "comp_db": float(rng.uniform(-30, -8)), "mp3_q": float(rng.uniform(2, 8)),
          "rms_db": float(rng.uniform(-30, -14))}


def master(mix: np.ndarray, bus: dict, rng: np.random.Generator) -> tuple[np.ndarray, float]:
  """48 kHz mix -> 16 kHz -> mastered 16 kHz mono float32 after the MP3 round trip; also returns the loudness (dB)."""
  board = pedalboard.Pedalboard([
    pedalboard.HighpassFilter(30.0),
    pedalboard.LowShelfFilter(cutoff_frequency_hz=200.0, gain_db=bus["low_db"]),
    pedalboard.PeakFilter(cutoff_frequency_hz=bus["peak_hz"], gain_db=bus["peak_db"], q=1.0),
    pedalboard.HighShelfFilter(cutoff_frequency_hz=4000.0, gain_db=bus["high_db"]),
    pedalboard.Compressor(threshold_db=bus["comp_db"], ratio=3.0, attack_ms=5.0, release_ms=120.0),
    pedalboard.Reverb(room_size=bus["room"], wet_level=bus["wet"], dry_level=1.0 - bus["wet"] / 2),
  ])
  y = soxr.resample(mix.astype(np.float32), RENDER_SR, SR).astype(np.float32)   # effects at 16 kHz: 3x cheaper
  y = board(y[None], SR)[0]
  rms_db = float(np.clip(bus["rms_db"] + rng.uniform(-4, 4), -36, -10))
  y *= 10 ** (rms_db / 20) / (np.sqrt(np.mean(y**2)) + 1e-9)
  y = np.clip(y, -0.99, 0.99)
  n = len(y)
  y = pedalboard.MP3Compressor(vbr_quality=bus["mp3_q"])(y[None], SR)[0]
  y = np.pad(y, (0, max(0, n - len(y))))[:n]
  return np.clip(y, -1.0, 1.0).astype(np.float32), rms_db
