"""Packed songs: one ArrayRecord record per song of decoded 16-kHz audio, and the reader that serves chunks.

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
import json
import os
import struct

import grain
import numpy as np
import soundfile as sf

from jaxtag.data.decode import BAD_REASONS, DecodeError
from jaxtag.data.pipeline import SongReader

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


class PackedReader(SongReader):
  """Song i of ``ids`` -> float32 audio from a packed split, with the interface of pipeline's ``SongReader``.

  Lengths and bad reasons come from ``songs.npz`` (no I/O), so a chunk's random start is drawn exactly as
  the file reader draws it, then only the record of that song is read and sliced. Songs are matched by id,
  so one pack of the whole train pool serves every ``train_size`` subset and process shard.
  """

  def __init__(self, directory: str, ids: list[str], sample_rate: int, chunk_len: int, short_policy: str):
    meta = json.loads(open(os.path.join(directory, "pack.json")).read())
    if meta["sample_rate"] != sample_rate:
      raise ValueError(f"{directory} was packed at {meta['sample_rate']} Hz, the config wants {sample_rate} Hz")
    table = np.load(os.path.join(directory, "songs.npz"))
    position = {sid: k for k, sid in enumerate(table["id"].tolist())}
    missing = [sid for sid in ids if sid not in position]
    if missing:
      raise ValueError(f"{len(missing)} songs are not in the pack {directory} (e.g. {missing[:3]}); "
                       "re-run `python -m jaxtag.data.pack` for this config")
    super().__init__([f"{directory}#{sid}" for sid in ids], sample_rate, chunk_len, short_policy)
    self.directory, self.ids = directory, list(ids)
    self.keys = np.asarray([position[sid] for sid in ids], np.int64)
    self.lengths, self.reasons = table["length"][self.keys], table["reason"][self.keys]
    self.source = grain.sources.ArrayRecordDataSource(
        [os.path.join(directory, s["file"]) for s in meta["shards"]])

  def __repr__(self) -> str:
    return f"PackedReader({self.directory}, n={len(self.ids)}, chunk_len={self.chunk_len})"

  def length(self, i: int) -> int:
    """Samples song i yields after the short policy, or DecodeError (the reason found at pack time)."""
    if self.reasons[i] >= 0:
      raise DecodeError(BAD_REASONS[self.reasons[i]], self.paths[i], "found at pack time")
    n = int(self.lengths[i])
    if n < self.chunk_len:
      if self.short_policy == "skip":
        raise DecodeError("too_short", self.paths[i], f"{n} < {self.chunk_len} samples")
      return self.chunk_len
    return n

  def read_chunk(self, i: int, rng: np.random.Generator) -> np.ndarray:
    n = self._guard(i, self.length)
    start = int(rng.integers(n - self.chunk_len + 1))   # the same draw as SongReader.read_chunk
    return self.samples(i, start, self.chunk_len)

  def _read(self, i: int) -> np.ndarray:
    return self.samples(i, 0, self.length(i))

  def samples(self, i: int, start: int, count: int) -> np.ndarray:
    """Samples ``[start, start + count)`` of song i, zero-padded past its end (short songs under ``pad``)."""
    audio = decode_record(self.source[int(self.keys[i])], start, count)["audio"]
    return audio if len(audio) == count else np.pad(audio, (0, count - len(audio)))
