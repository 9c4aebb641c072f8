"""The one chunk-reading seam: song index -> decoded audio, or one random chunk of it.

``SongReader`` reads audio files through ``decode``; ``PackedReader`` reads the records of
``python -m jaxtag.data.pack`` and draws the same random chunk start, so packed and file pipelines give identical
batches for identical seeds. ``song_reader`` picks one for a list of songs. The grain pipelines
(``pipeline``) only ever see this interface.
"""
from __future__ import annotations

import json
import os

import grain
import numpy as np
from absl import logging

from jaxtag.data import packed
from jaxtag.data.decode import BAD_REASONS, DecodeError, load_audio


def chunk_len(data_cfg) -> int:
  return int(round(data_cfg.chunk_seconds * data_cfg.sample_rate))


class SongReader:
  """Song i -> float32 mono audio of at least one chunk (``short_policy`` pad) or DecodeError, from audio files.

  ``read_chunk(i, rng)`` is what the train pipeline calls: it draws the chunk start from ``rng`` after the
  song's length is known, so a reader that knows lengths without decoding (``PackedReader``) draws the
  same start and reads only the chunk. Known-bad songs are remembered per process so a broken file is decoded
  (and logged) once per worker, while every skip is still counted. ``__repr__`` is stable (no addresses):
  grain may record it in state.
  """

  def __init__(self, paths: list[str], sample_rate: int, chunk_len: int, short_policy: str):
    self.paths, self.sample_rate, self.chunk_len, self.short_policy = list(paths), sample_rate, chunk_len, short_policy
    self._bad: dict[int, DecodeError] = {}

  def __len__(self) -> int:
    return len(self.paths)

  def __repr__(self) -> str:
    return f"SongReader(n={len(self.paths)}, sample_rate={self.sample_rate}, chunk_len={self.chunk_len})"

  def read(self, i: int) -> np.ndarray:
    return self._guard(i, self._read)

  def read_chunk(self, i: int, rng: np.random.Generator) -> np.ndarray:
    audio = self.read(i)
    start = int(rng.integers(len(audio) - self.chunk_len + 1))
    return audio[start:start + self.chunk_len]

  def _guard(self, i: int, fn):
    """``fn(i)``, remembering and logging (once) a DecodeError for song i."""
    if i in self._bad:
      raise self._bad[i]
    try:
      return fn(i)
    except DecodeError as e:
      self._bad[i] = e
      logging.warning("skipping bad audio (%s): %s %s", e.reason, e.path, e.detail)
      raise

  def _read(self, i: int) -> np.ndarray:
    audio = load_audio(self.paths[i], self.sample_rate)
    if len(audio) < self.chunk_len:
      if self.short_policy == "skip":
        raise DecodeError("too_short", self.paths[i], f"{len(audio)} < {self.chunk_len} samples")
      audio = np.pad(audio, (0, self.chunk_len - len(audio)))
    return audio


def song_reader(data_cfg, songs) -> SongReader:
  """The reader for ``songs``: packed shards when ``data.packed_dir`` holds their split, else audio files."""
  n = chunk_len(data_cfg)
  split = songs[0].split if songs else ""
  if data_cfg.packed_dir and all(s.split == split for s in songs):
    if packed.is_packed(data_cfg.packed_dir, split):
      return PackedReader(packed.split_dir(data_cfg.packed_dir, split), [s.id for s in songs],
                                 data_cfg.sample_rate, n, data_cfg.short_policy)
    logging.info("%s has no packed %r split: reading its audio files", data_cfg.packed_dir, split)
  return SongReader([s.path for s in songs], data_cfg.sample_rate, n, data_cfg.short_policy)


class PackedReader(SongReader):
  """Song i of ``ids`` -> float32 audio from a packed split, with the interface of ``SongReader``.

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
    audio = packed.decode_record(self.source[int(self.keys[i])], start, count)["audio"]
    return audio if len(audio) == count else np.pad(audio, (0, count - len(audio)))
