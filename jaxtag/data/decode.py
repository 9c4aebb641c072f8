"""Audio file -> float32 mono at the model's sample rate, or a DecodeError that names why not.

Real corpora always hold some broken files (MTT has three). Training must neither stop on them nor feed
them silently, so every failure is classified into one of ``BAD_REASONS``; the pipeline counts skips per
reason and the counts reach the trainer's metrics. Numpy-only: this runs inside grain worker processes.
"""
from __future__ import annotations

import io
import math
import os

import numpy as np
import soundfile as sf
import soxr
from etils import epath

from jaxtag.core import paths

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


LONG_FILE_SECONDS = 600.0   # longer files: training chunks are read by seeking, never by a whole decode
WINDOW_MARGIN_S = 0.02      # resampler edge transients span ~6 ms: read this much more on each side
BLOCK = 1 << 13             # frames per read of a whole-file decode


def _source(path: str):
  """What ``sf.SoundFile`` opens: the local path, or the bytes of a ``gs://`` object (one whole-object read)."""
  if paths.is_remote(path):   # gs:// etc. through etils.epath
    remote = epath.Path(path)
    if not remote.exists():
      raise DecodeError("missing", path)
    source = io.BytesIO(remote.read_bytes())
    if not source.getbuffer().nbytes:
      raise DecodeError("empty", path, "0 bytes")
    return source
  if not os.path.exists(path):
    raise DecodeError("missing", path)
  if os.path.getsize(path) == 0:
    raise DecodeError("empty", path, "0 bytes")
  return path


def _open(path: str, source=None) -> sf.SoundFile:
  try:
    f = sf.SoundFile(_source(path) if source is None else source)
  except sf.LibsndfileError as e:
    reason = "not_audio" if "recognised" in str(e) or "unknown format" in str(e).lower() else "corrupt"
    raise DecodeError(reason, path, str(e)) from None
  if not MIN_RATE <= f.samplerate <= MAX_RATE:
    f.close()
    raise DecodeError("bad_sample_rate", path, f"{f.samplerate} Hz")
  return f


def resampled_length(frames: int, rate: int, sample_rate: int) -> int:
  """Samples at ``sample_rate`` of ``frames`` at ``rate``: what soxr yields for the whole file."""
  return frames if rate == sample_rate else int(round(frames * sample_rate / rate))


def load_audio(path: str, sample_rate: int) -> np.ndarray:
  """Decodes ``path`` to float32 mono at ``sample_rate`` (soxr, high quality), or raises DecodeError.

  A file of up to ``LONG_FILE_SECONDS`` is read in one call, as librosa (and so musicnn) decodes it:
  libsndfile 1.2.2 decodes some MP3s differently when read in small blocks (up to 2.9e-2 off at 8192-frame
  blocks). A longer file, or one whose one-call read breaks, streams block by block: each block is mixed to
  mono and resampled as it is read (``soxr.ResampleStream``, bit-identical to a one-shot ``soxr.resample``),
  so memory is the mono output plus one block, not the whole multichannel source at its own rate (a 2-hour
  44.1-kHz stereo FLAC: 0.46 GB of output instead of 7.5 GB peak); a broken stream is then told apart as
  truncated (frames decoded before it broke) or corrupt (none)."""
  source = _source(path)
  f = _open(path, source)
  with f:
    rate, declared = f.samplerate, f.frames
    audio = None
    if 0 < declared <= LONG_FILE_SECONDS * rate:
      try:
        audio = f.read(dtype="float32", always_2d=True)
      except (sf.LibsndfileError, RuntimeError, ValueError, OSError):
        audio = None
  if audio is not None:
    if audio.shape[0] == 0:
      raise DecodeError("empty", path, "no frames")
    frames = audio.shape[0]
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    del audio
    finite = bool(np.isfinite(mono).all())
    peak = float(np.abs(mono).max()) if finite else 0.0
    _check_whole(path, frames, declared, finite, peak)
    if rate != sample_rate:
      mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)
  if isinstance(source, io.BytesIO):
    source.seek(0)
  return _stream(path, _open(path, source), sample_rate)


def _check_whole(path: str, frames: int, declared: int, finite: bool, peak: float) -> None:
  if frames == 0:
    raise DecodeError("empty", path, "no frames")
  if 0 < declared < 2**62 and frames + max(TRUNCATION_SLACK, TRUNCATION_FRACTION * declared) < declared:
    raise DecodeError("truncated", path, f"{frames} of {declared} frames")
  if not finite:
    raise DecodeError("non_finite", path)
  if peak < SILENCE_PEAK:
    raise DecodeError("silent", path, f"peak < {SILENCE_PEAK}")


def _stream(path: str, f: sf.SoundFile, sample_rate: int) -> np.ndarray:
  """The block-by-block decode of ``load_audio`` (long files, and reads that broke)."""
  with f:
    rate, declared = f.samplerate, f.frames
    stream = None if rate == sample_rate else soxr.ResampleStream(rate, sample_rate, 1, dtype="float32",
                                                                 quality="HQ")
    out, frames, finite, peak = [], 0, True, 0.0
    try:
      while (block := f.read(BLOCK, dtype="float32", always_2d=True)).shape[0]:
        frames += block.shape[0]
        mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        if finite:
          finite = bool(np.isfinite(mono).all())
          if finite:
            peak = max(peak, float(np.abs(mono).max()))
        out.append(mono if stream is None else stream.resample_chunk(mono))
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as e:
      raise DecodeError("truncated" if frames else "corrupt", path, str(e)) from None
  _check_whole(path, frames, declared, finite, peak)
  if stream is not None:
    out.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
  return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


def probe(path: str) -> tuple[int, int] | None:
  """``(rate, frames)`` of a local file longer than ``LONG_FILE_SECONDS`` (one header read), else None
  (short files, and remote ones: those are read whole). Raises DecodeError for what cannot be opened."""
  if paths.is_remote(path):
    return None
  f = _open(path)
  with f:
    if not (f.seekable() and 0 < f.frames < 2**62 and f.frames > LONG_FILE_SECONDS * f.samplerate):
      return None
    return f.samplerate, f.frames


def read_window(path: str, sample_rate: int, start: int, length: int) -> np.ndarray:
  """Samples ``[start, start + length)`` of ``path`` at ``sample_rate`` (float32 mono), reading only them.

  Seeks to the first source frame needed (FLAC via its seek table, WAV directly; libsndfile's mp3 seek goes
  through mpg123, whose first frames after a seek can differ from a decode from the start: the window
  margin absorbs that). With resampling, the window starts on a source frame that maps exactly onto an
  output sample (a multiple of ``rate / gcd``) and reaches ``WINDOW_MARGIN_S`` beyond both ends, so the
  chunk matches a whole-file resample to float rounding (max |diff| 7e-7 measured on noise, 44.1 -> 16 kHz).
  A chunk with NaN/inf samples is ``non_finite``; a read that stops short is ``truncated``. A long file
  is not checked for silence as a whole (a quiet passage of a long recording is not a broken file)."""
  f = _open(path)
  with f:
    rate = f.samplerate
    if rate == sample_rate:
      src_start, src_len, skip = start, length, 0
    else:
      g = math.gcd(rate, sample_rate)
      p, q = rate // g, sample_rate // g                 # q output samples span exactly p source frames
      margin = int(WINDOW_MARGIN_S * sample_rate)
      out_start = max(0, start - margin) // q * q
      src_start = out_start // q * p
      src_len = int(math.ceil((start + length + margin - out_start) * rate / sample_rate))
      skip = start - out_start
    try:
      f.seek(src_start)
      block = f.read(src_len, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as e:
      raise DecodeError("truncated", path, f"reading frames {src_start}+{src_len}: {e}") from None
  mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
  if not np.isfinite(mono).all():
    raise DecodeError("non_finite", path, f"in frames {src_start}+{src_len}")
  if rate != sample_rate:
    mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
  chunk = mono[skip:skip + length]
  if len(chunk) < length:
    if len(chunk) + TRUNCATION_SLACK < length:
      raise DecodeError("truncated", path, f"{len(chunk)} of {length} samples at {start}")
    chunk = np.pad(chunk, (0, length - len(chunk)))   # resampler rounding at the very end of the file
  return np.ascontiguousarray(chunk, dtype=np.float32)


def _short(path: str) -> bool:
  """A file whose header declares at most ``LONG_FILE_SECONDS`` (unreadable ones are left to the decoders)."""
  try:
    info = sf.info(path)
  except Exception:   # noqa: BLE001  the decoder that follows classifies the failure
    return False
  return 0 < info.frames <= LONG_FILE_SECONDS * info.samplerate


def load_audio_stream(path: str, sample_rate: int, max_seconds: float | None = None) -> tuple[np.ndarray, float]:
  """``(wave, file_seconds)``: what ``load_audio`` returns (bit-identical: same checks, same soxr HQ
  resampler run as a stream), but read block by block, so memory stays at the 16-kHz mono output plus one
  block whatever the source. A 2-hour 44.1-kHz stereo file is 2.5 GB as float32 stereo (``load_audio`` holds
  that twice); here it is 0.46 GB, and ``max_seconds`` stops reading after that much audio (truncation is not
  checked then: the tail is never read). ``file_seconds`` is the declared length (decoded, if unknown).
  Remote paths (``gs://``) and files of up to ``LONG_FILE_SECONDS`` are read by ``load_audio`` (one call:
  the exact MP3 decode; small files cost little memory anyway)."""
  if paths.is_remote(path) or (os.path.exists(path) and _short(path)):
    wave = load_audio(path, sample_rate)
    seconds = len(wave) / sample_rate
    return (wave[:int(round(max_seconds * sample_rate))] if max_seconds else wave), seconds
  f = _open(path)   # missing, empty, not audio, corrupt header, absurd rate: the same reasons as load_audio
  with f:
    rate, declared = f.samplerate, f.frames
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
