"""The lead vocal: GM has no sung voice ("Voice Oohs" is a pad), so vocal parts are sung by the formant voice
of the numpy generator (``jaxtag.data.synth.voice``: harmonics under a 3-formant vowel envelope, vibrato),
rendered at 16 kHz, brought to 48 kHz and laid over the SoundFont bed at the part's mix level."""
from __future__ import annotations

import numpy as np
import soxr

from jaxtag.data import synth
from jaxtag.data.render.render import RENDER_SR


def sing(part, seconds: float, rng: np.random.Generator) -> np.ndarray:
  """The part's notes sung (``part.voice`` = "female" / "male"), mono float32 at 16 kHz."""
  buf = np.zeros(int(round(seconds * synth.SR)), np.float32)
  for pitch, start, end, vel in part.notes:
    hz = 440.0 * 2 ** ((pitch - 69) / 12)
    synth.place(buf, synth.note(part.voice, hz, max(0.05, end - start), rng), start, vel / 127)
  return buf


def add_voice(bed: np.ndarray, part, gain_db: float, bed_gain_db: float, rng) -> np.ndarray:
  """``bed`` (48 kHz) plus the sung part, the two RMS-matched and then set ``gain_db - bed_gain_db`` apart."""
  y = soxr.resample(sing(part, len(bed) / RENDER_SR, rng), synth.SR, RENDER_SR).astype(np.float32)
  y = np.pad(y, (0, max(0, len(bed) - len(y))))[:len(bed)]
  rms = lambda x: float(np.sqrt(np.mean(x**2))) + 1e-9   # noqa: E731
  if rms(bed) < 1e-6:
    return y
  return bed + y * (rms(bed) / rms(y)) * 10 ** ((gain_db - bed_gain_db) / 20)
