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


def load_audio_stream(path: str, sample_rate: int, max_seconds: float | None = None) -> tuple[np.ndarray, float]:
  """``(wave, file_seconds)``: what ``load_audio`` returns (bit-identical: same checks, same soxr HQ
  resampler run as a stream), but read block by block, so memory stays at the 16-kHz mono output plus one
  block whatever the source. A 2-hour 44.1-kHz stereo file is 2.5 GB as float32 stereo (``load_audio`` holds
  that twice); here it is 0.46 GB, and ``max_seconds`` stops reading after that much audio (truncation is not
  checked then: the tail is never read). ``file_seconds`` is the declared length (decoded, if unknown).
  Remote paths (``gs://``) are read whole by ``load_audio``."""
  if paths.is_remote(path):
    wave = load_audio(path, sample_rate)
    seconds = len(wave) / sample_rate
    return (wave[:int(round(max_seconds * sample_rate))] if max_seconds else wave), seconds
  if not os.path.exists(path):
    raise DecodeError("missing", path)
  if os.path.getsize(path) == 0:
    raise DecodeError("empty", path, "0 bytes")
  try:
    f = sf.SoundFile(path)
  except sf.LibsndfileError as e:
    reason = "not_audio" if "recognised" in str(e) or "unknown format" in str(e).lower() else "corrupt"
    raise DecodeError(reason, path, str(e)) from None
  with f:
    rate, declared = f.samplerate, f.frames
    if not MIN_RATE <= rate <= MAX_RATE:
      raise DecodeError("bad_sample_rate", path, f"{rate} Hz")
    limit = int(np.ceil(max_seconds * rate)) if max_seconds else None
    stream = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ") if rate != sample_rate else None
    expected = min(declared, limit or declared) if 0 < declared < 2**62 else 0
    out, frames, peak = _Output(int(expected * sample_rate / rate * 1.01) + (1 << 14)), 0, 0.0
    try:
      while (limit is None or frames < limit) and (block := f.read(1 << 13, dtype="float32", always_2d=True)).shape[0]:
        if limit is not None:
          block = block[:limit - frames]
        frames += block.shape[0]
        mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        if not np.isfinite(mono).all():
          raise DecodeError("non_finite", path)
        peak = max(peak, float(np.abs(mono).max()))
        out.append(stream.resample_chunk(mono, last=False) if stream else np.array(mono))
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as e:
      raise DecodeError("truncated" if frames else "corrupt", path, str(e)) from None
  if frames == 0:
    raise DecodeError("empty", path, "no frames")
  if limit is None and 0 < declared < 2**62 and frames + max(TRUNCATION_SLACK, TRUNCATION_FRACTION * declared) < declared:
    raise DecodeError("truncated", path, f"{frames} of {declared} frames")
  if peak < SILENCE_PEAK:
    raise DecodeError("silent", path, f"peak < {SILENCE_PEAK}")
  if stream:
    out.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
  seconds = declared / rate if 0 < declared < 2**62 else frames / rate
  return out.array(), seconds


class _Output:
  """Resampled samples written into one buffer sized from the header (no final concatenate doubling the
  peak); what does not fit (an mp3 header's estimate can be short) goes to a list joined at the end."""

  def __init__(self, capacity: int):
    self.buf, self.n, self.extra = np.empty(capacity, np.float32), 0, []

  def append(self, x: np.ndarray) -> None:
    fit = min(len(x), len(self.buf) - self.n) if not self.extra else 0
    self.buf[self.n:self.n + fit] = x[:fit]
    self.n += fit
    if fit < len(x):
      self.extra.append(np.array(x[fit:], np.float32))

  def array(self) -> np.ndarray:
    if self.extra:
      return np.concatenate([self.buf[:self.n], *self.extra])
    return self.buf[:self.n]   # a view: the unused tail (about 1 %) is freed with the array
