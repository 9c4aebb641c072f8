"""The one place where ``jaxtag.tag`` turns a decoded waveform into model inputs.

For now this is exactly what ``jaxtag.predict`` does (its ``chunk_wave``: non-overlapping chunks of the
run's chunk length, the tail dropped, a file shorter than one chunk zero-padded to one), so tag and predict
give the same scores. Imported musicnn runs compute their own log-mel inside the model (``musicnn_compat``),
so they go through the same path; when a run's stored preprocessing contract lands, switch here only.
Numpy-only: it runs in the decode worker processes.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Contract(NamedTuple):
  """What the workers need to know about the run: picklable, no config objects."""
  sample_rate: int
  chunk: int   # samples per model input


def contract_of(config) -> Contract:
  rate = int(config.data.sample_rate)
  return Contract(rate, int(round(config.data.chunk_seconds * rate)))


def model_inputs(wave: np.ndarray, contract: Contract) -> np.ndarray:
  """``(chunks, contract.chunk)`` float32 model inputs of one file."""
  from jaxtag.predict import chunk_wave
  return chunk_wave(wave, contract.chunk)
