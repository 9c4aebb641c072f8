"""Packed songs: one ArrayRecord record per song of decoded 16-kHz audio (the format; ``readers.PackedReader``
serves chunks from it).

Why: decoding mp3/FLAC and resampling every epoch costs far more CPU than a training step can wait for on a
fast accelerator, and one small file per song makes I/O random (the authors' MSD runs were I/O-bound at
~163 chunks/s). ``python -m jaxtag.data.pack`` decodes each split once into a few large ArrayRecord shards.

Layout of ``DIR/<split>/``: ``shard-00000.array_record`` ... (records in song order, ``group_size:1`` so a
record is one random read), ``songs.npz`` (id, length, encoding, bad reason per record), ``pack.json``.

Encodings (per record): ``pcm16`` (int16, 2 B/sample), ``float32`` (4 B/sample), ``flac`` (FLAC of int16),
``bad`` (no audio: the song failed to decode and ``songs.npz`` keeps the ``decode.BAD_REASONS`` index).
The pack-wide ``--encoding`` chooses among them:
  * ``auto`` (default, exact): ``pcm16`` where the decoded float32 audio lies exactly on the 16-bit grid
    (16-bit sources at 16 kHz: the generated corpus, 16-kHz WAV/FLAC), else ``float32``. Reading a chunk
    gives bit-identical float32 audio to ``decode.load_audio``, so packed and file pipelines yield identical
    batches for identical seeds.
  * ``pcm16``: always int16, half the size of float32 for resampled/mp3 sources; rounding error <= 2**-16
    (-96 dB), so batches are no longer bit-identical to file reads.
  * ``flac``: FLAC of the (rounded) int16 audio: smallest, exact where ``pcm16`` is, but a chunk read decodes
    (seek + decode of about the chunk, not the whole song).
A record is ``HEADER`` + targets (float32) + id (utf-8) + payload. For ``pcm16``/``float32`` a chunk is a
zero-copy slice of the record converted to float32: the song is never decoded whole.
"""
from __future__ import annotations

import io
import os
import struct

import numpy as np
import soundfile as sf

ENCODINGS = ("pcm16", "float32", "flac", "bad")
PACK_ENCODINGS = ("auto", "pcm16", "float32", "flac")
HEADER = struct.Struct("<4sBxxxIHH")   # magic, encoding, pad, samples, n_targets, id bytes
MAGIC = b"JTP1"
WRITER_OPTIONS = "group_size:1,uncompressed"
PCM_SCALE = np.float32(1 / 32768)


def on_pcm16_grid(audio: np.ndarray) -> bool:
  """True if float32 ``audio`` is exactly int16 / 32768 (what libsndfile yields for a 16-bit source)."""
  q = np.round(audio.astype(np.float64) * 32768)
  return bool(q.min(initial=0) >= -32768 and q.max(initial=0) <= 32767 and np.array_equal(q * (1 / 32768), audio))


def to_pcm16(audio: np.ndarray) -> np.ndarray:
  return np.clip(np.round(audio.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)


def encode(song_id: str, targets: np.ndarray, audio: np.ndarray | None, encoding: str,
           sample_rate: int) -> tuple[bytes, str]:
  """``(record, per-record encoding)``; ``audio=None`` packs a bad song (no payload)."""
  if audio is None:
    enc, payload = "bad", b""
  elif encoding == "auto":
    enc = "pcm16" if on_pcm16_grid(audio) else "float32"
  else:
    enc = encoding
  if enc == "pcm16":
    payload = to_pcm16(audio).tobytes()
  elif enc == "float32":
    payload = np.ascontiguousarray(audio, np.float32).tobytes()
  elif enc == "flac":
    buf = io.BytesIO()
    sf.write(buf, to_pcm16(audio), sample_rate, format="FLAC", subtype="PCM_16")
    payload = buf.getvalue()
  n = 0 if audio is None else len(audio)
  sid = song_id.encode()
  head = HEADER.pack(MAGIC, ENCODINGS.index(enc), n, len(targets), len(sid))
  return head + np.asarray(targets, np.float32).tobytes() + sid + payload, enc


def decode_record(record: bytes, start: int = 0, count: int | None = None) -> dict:
  """Parses a record; ``audio`` holds samples ``[start, start + count)`` as float32 (all by default)."""
  magic, enc, n, n_targets, n_id = HEADER.unpack_from(record)
  if magic != MAGIC:
    raise ValueError(f"not a jaxtag packed record (magic {magic!r})")
  off = HEADER.size
  targets = np.frombuffer(record, np.float32, n_targets, off)
  off += 4 * n_targets
  song_id = record[off:off + n_id].decode()
  off += n_id
  count = n - start if count is None else min(count, n - start)
  enc = ENCODINGS[enc]
  if enc == "pcm16":
    audio = np.frombuffer(record, np.int16, count, off + 2 * start).astype(np.float32) * PCM_SCALE
  elif enc == "float32":
    audio = np.frombuffer(record, np.float32, count, off + 4 * start).copy()
  elif enc == "flac":
    with sf.SoundFile(io.BytesIO(record[off:])) as f:
      f.seek(start)
      audio = f.read(count, dtype="int16").astype(np.float32) * PCM_SCALE
  else:
    audio = np.zeros(0, np.float32)
  return {"id": song_id, "targets": targets, "encoding": enc, "audio": audio}


def split_dir(packed_dir: str, split: str) -> str:
  return os.path.join(packed_dir, split)


def is_packed(packed_dir: str, split: str) -> bool:
  return bool(packed_dir) and os.path.exists(os.path.join(split_dir(packed_dir, split), "pack.json"))
