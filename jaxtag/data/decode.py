"""Audio file -> float32 mono at the model's sample rate, or a DecodeError that names why not.

Real corpora always hold some broken files (MTT has three). Training must neither stop on them nor feed
them silently, so every failure is classified into one of ``BAD_REASONS``; the pipeline counts skips per
reason and the counts reach the trainer's metrics. Numpy-only: this runs inside grain worker processes.
"""
from __future__ import annotations

import io
import os

import numpy as np
import soundfile as sf
import soxr
from etils import epath

from jaxtag import paths

# Order is part of the contract: the pipeline's ``bad`` array has one column per reason, in this order.
BAD_REASONS = (
    "missing",          # path does not exist
    "empty",            # zero-byte file, or a header with no frames
    "not_audio",        # libsndfile does not recognise the format
    "corrupt",          # recognised, but not one frame decodes
    "truncated",        # decoding breaks off partway, or fewer frames than the header promises
    "bad_sample_rate",  # outside [MIN_RATE, MAX_RATE]: a broken header, not music
    "non_finite",       # NaN or inf samples (float WAV/FLAC can carry them)
    "silent",           # peak below SILENCE_PEAK: nothing to learn from, and it distorts BN statistics
    "too_short",        # shorter than one chunk under ``short_policy='skip'``
)
MIN_RATE, MAX_RATE = 4000, 384000
SILENCE_PEAK = 1e-4
# MP3 frame counts are estimates (encoder padding, ID3 tags, VBR without a Xing header): only a shortfall
# beyond both a few codec frames and 2 % of the declared length counts as truncation.
TRUNCATION_SLACK, TRUNCATION_FRACTION = 2048, 0.02


class DecodeError(Exception):
  """A file that cannot be used, with ``reason`` in ``BAD_REASONS``."""

  def __init__(self, reason: str, path: str, detail: str = ""):
    if reason not in BAD_REASONS:
      raise ValueError(f"unknown bad-input reason {reason!r}; valid: {BAD_REASONS}")
    super().__init__(f"{reason}: {path}" + (f" ({detail})" if detail else ""))
    self.reason, self.path, self.detail = reason, path, detail

  def __reduce__(self):  # picklable across grain worker processes
    return DecodeError, (self.reason, self.path, self.detail)


def load_audio(path: str, sample_rate: int) -> np.ndarray:
  """Decodes ``path`` to float32 mono at ``sample_rate`` (soxr, high quality), or raises DecodeError."""
  source = path
  if paths.is_remote(path):   # gs:// etc. through etils.epath: one whole-object read, decoded from memory
    remote = epath.Path(path)
    if not remote.exists():
      raise DecodeError("missing", path)
    source = io.BytesIO(remote.read_bytes())
    if not source.getbuffer().nbytes:
      raise DecodeError("empty", path, "0 bytes")
  elif not os.path.exists(path):
    raise DecodeError("missing", path)
  elif os.path.getsize(path) == 0:
    raise DecodeError("empty", path, "0 bytes")
  try:
    f = sf.SoundFile(source)
  except sf.LibsndfileError as e:
    reason = "not_audio" if "recognised" in str(e) or "unknown format" in str(e).lower() else "corrupt"
    raise DecodeError(reason, path, str(e)) from None
  with f:
    rate, declared = f.samplerate, f.frames
    if not MIN_RATE <= rate <= MAX_RATE:
      raise DecodeError("bad_sample_rate", path, f"{rate} Hz")
    blocks = []
    try:   # block by block, so a stream that breaks partway (truncated) is told apart from garbage (corrupt)
      while (block := f.read(1 << 13, dtype="float32", always_2d=True)).shape[0]:
        blocks.append(block)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as e:
      raise DecodeError("truncated" if blocks else "corrupt", path, str(e)) from None
  audio = np.concatenate(blocks) if blocks else np.zeros((0, 1), np.float32)
  if audio.shape[0] == 0:
    raise DecodeError("empty", path, "no frames")
  if 0 < declared < 2**62 and audio.shape[0] + max(TRUNCATION_SLACK, TRUNCATION_FRACTION * declared) < declared:
    raise DecodeError("truncated", path, f"{audio.shape[0]} of {declared} frames")
  mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
  if not np.isfinite(mono).all():
    raise DecodeError("non_finite", path)
  if np.abs(mono).max() < SILENCE_PEAK:
    raise DecodeError("silent", path, f"peak < {SILENCE_PEAK}")
  if rate != sample_rate:
    mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
  return np.ascontiguousarray(mono, dtype=np.float32)
