"""A manifest as columns, for million-song corpora: one array per field instead of one object per song.

One Python ``Song`` per row (a dataclass, two strings and a numpy row each) cost 2.9 GB and 20 s for a
1,000,000-row manifest, and each loader worker received its own pickled copy of the paths and targets.
Here a manifest is parsed row by row into

  ``Strings``  ids and paths: one utf-8 buffer and an offset array (a list of 1M str would be ~100 B each),
  ``targets``  one (rows, tags) float32 matrix, ``splits`` one int8 code per row,

and ``SongView`` presents a selection of rows with the ``list[Song]`` interface the rest of jaxtag uses
(``len``, indexing, slicing, iteration build ``Song`` objects on the fly), plus the columns themselves
(``.targets``, ``.paths``, ``.ids``, ``.split_codes``) for the code paths that matter at scale.
"""
from __future__ import annotations

import array
import os

import numpy as np

from jaxtag.core import choices, errors
from jaxtag.data import manifest as manifest_lib
from jaxtag.data.songs import Song

SPLIT_CODES = {name: k for k, name in enumerate(manifest_lib.SPLITS)}


class Strings:
  """An immutable sequence of str stored as one utf-8 buffer plus offsets (cheap to pickle to workers)."""

  def __init__(self, buffer: bytes, offsets: np.ndarray, prefix: str = "", always: bool = False):
    # ``prefix`` goes before every item (``always``) or before the relative ones (a manifest's root)
    self.buffer, self.offsets, self.prefix, self.always = buffer, offsets, prefix, always

  @classmethod
  def paths(cls, items: list[str], base: str = "") -> "Strings":
    """File paths: ``base`` joined to the relative ones, then their common directory stored once (a 1M-song
    corpus under one directory keeps ~15 B per path, which is what each loader worker receives). Rewrites
    ``items`` in place (no second list of 1M strings)."""
    for i, p in enumerate(items):
      if base and not (p.startswith("/") or "://" in p):
        items[i] = base + p
    common = os.path.commonprefix(items) if items else ""
    common = common[:common.rfind("/") + 1]
    if common:
      n = len(common)
      for i, p in enumerate(items):
        items[i] = p[n:]
    return cls.from_list(items, common, always=True)

  @classmethod
  def from_list(cls, items: list[str], prefix: str = "", always: bool = False) -> "Strings":
    """One join and one encode (no per-item bytes objects); items end at the NUL separators."""
    if not items:
      return cls(b"", np.zeros(1, np.int64), prefix, always)
    buffer = ("\0".join(items) + "\0").encode()
    ends = np.flatnonzero(np.frombuffer(buffer, np.uint8) == 0)
    if len(ends) != len(items):
      raise ValueError("a string contains NUL")
    offsets = np.empty(len(items) + 1, np.int64)
    offsets[0], offsets[1:] = 0, ends + 1
    return cls(buffer, offsets, prefix, always)

  def __len__(self) -> int:
    return len(self.offsets) - 1

  def __getitem__(self, i):
    if isinstance(i, slice):
      return self.take(np.arange(len(self))[i])
    i = int(i)
    if i < 0:
      i += len(self)
    text = self.buffer[self.offsets[i]:self.offsets[i + 1] - 1].decode()
    if self.always or (self.prefix and not (text.startswith("/") or "://" in text)):
      return self.prefix + text
    return text

  def take(self, rows: np.ndarray) -> "Strings":
    """The items ``rows``, as a new compact buffer (the same object when ``rows`` is all, in order)."""
    rows = np.asarray(rows, np.int64)
    if len(rows) == len(self) and (len(rows) == 0 or (rows[0] == 0 and np.all(np.diff(rows) == 1))):
      return self
    starts, ends = self.offsets[rows], self.offsets[rows + 1]
    buffer = b"".join([self.buffer[a:b] for a, b in zip(starts.tolist(), ends.tolist())])
    offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(ends - starts, out=offsets[1:])
    return Strings(buffer, offsets, self.prefix, self.always)

  def __iter__(self):
    return (self[i] for i in range(len(self)))

  def __eq__(self, other) -> bool:
    return list(self) == list(other)

  def __repr__(self) -> str:
    return f"Strings(n={len(self)}, {len(self.buffer)} bytes)"


class SongTable:
  """All rows of a manifest: ``ids``, ``paths`` (Strings), ``targets`` (rows, tags), ``splits`` (int8), and
  ``artists`` (Strings, with ``has_artist``) when any row names one."""

  def __init__(self, ids: Strings, paths: Strings, targets: np.ndarray, splits: np.ndarray,
               artists: Strings | None = None, has_artist: np.ndarray | None = None):
    self.ids, self.paths, self.targets, self.splits = ids, paths, targets, splits
    self.artists, self.has_artist = artists, has_artist

  def song(self, r: int) -> Song:
    artist = self.artists[r] if self.artists is not None and self.has_artist[r] else None
    return Song(id=self.ids[r], path=self.paths[r], targets=self.targets[r],
                split=manifest_lib.SPLITS[self.splits[r]], artist=artist)


class SongView:
  """Rows ``rows`` of a ``SongTable`` with the interface of ``list[Song]``, and its columns."""

  def __init__(self, table: SongTable, rows: np.ndarray):
    self.table, self.rows = table, np.asarray(rows, np.int64)

  def __len__(self) -> int:
    return len(self.rows)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return SongView(self.table, self.rows[i])
    return self.table.song(int(self.rows[i]))

  def __iter__(self):
    return (self.table.song(int(r)) for r in self.rows)

  def __bool__(self) -> bool:
    return len(self.rows) > 0

  def __add__(self, other) -> list:   # list semantics: ``songs + [extra]`` is a plain list of Song
    return list(self) + list(other)

  def __radd__(self, other) -> list:
    return list(other) + list(self)

  @property
  def targets(self) -> np.ndarray:
    return self.table.targets[self.rows]

  @property
  def paths(self) -> Strings:
    return self.table.paths.take(self.rows)

  @property
  def ids(self) -> list[str]:
    return [self.table.ids[int(r)] for r in self.rows]

  @property
  def split_codes(self) -> np.ndarray:
    return self.table.splits[self.rows]

  def of_split(self, name: str) -> "SongView":
    return SongView(self.table, self.rows[self.split_codes == SPLIT_CODES[name]])

  def split_counts(self) -> dict[str, int]:
    codes = np.bincount(self.split_codes, minlength=len(manifest_lib.SPLITS))
    return {name: int(codes[k]) for k, name in enumerate(manifest_lib.SPLITS)}


def build(path: str, root_base: str, tags: list[str] | None, graded: bool, use_artist_split: bool,
          seed: int = 0):
  """``(tags, SongTable)`` from a manifest, streamed row by row (see ``manifest.iter_rows``).

  Same semantics as the row-dict reader it replaces: binary targets from ``tags`` (or graded ``targets``
  >= 0.5), graded values with ``graded``; tags by descending popularity when no tag list is given; unknown
  tag names and bad values fail with the row number."""
  ids, paths, splits, artists = [], [], [], []
  keys, values, per_row = [], array.array("f"), array.array("q")   # sparse (tag, value) pairs, per-row counts
  is_graded_row = array.array("b")
  also_counted = []   # keys of the field a row does not use: they still count for the popularity order
  for i, row in enumerate(manifest_lib.iter_rows(path)):   # the hot loop: a few appends per row, no checks
    ids.append(row.get("id", i))
    paths.append(row["path"])
    splits.append(row.get("split"))
    artists.append(row.get("artist"))
    if (graded and "targets" in row) or "tags" not in row:
      targets = row["targets"]
      keys.extend(targets)
      try:
        values.extend(targets.values())
      except TypeError:
        raise errors.UserError(f"{path}: row {i}: target values must be numbers in [0, 1]: {targets}") from None
      per_row.append(len(targets))
      is_graded_row.append(1)
      if "tags" in row and not tags:
        also_counted.extend(row["tags"])
    else:
      row_tags = row["tags"]
      keys.extend(row_tags)
      values.extend([1.0] * len(row_tags))
      per_row.append(len(row_tags))
      is_graded_row.append(0)
      if "targets" in row and not tags:
        also_counted.extend(row["targets"])
  n = len(ids)
  counts = np.frombuffer(per_row, np.int64) if n else np.zeros(0, np.int64)
  rows_a = np.repeat(np.arange(n, dtype=np.int32), counts)
  vals = np.frombuffer(values, np.float32).copy() if len(values) else np.zeros(0, np.float32)
  from_targets = np.repeat(np.frombuffer(is_graded_row, np.int8).astype(bool), counts) if n else np.zeros(0, bool)
  bad = np.flatnonzero(from_targets & ~((vals >= 0.0) & (vals <= 1.0)))
  if len(bad):
    k = int(bad[0])
    raise errors.UserError(f"{path}: row {rows_a[k]}: target {keys[k]!r}={float(vals[k])} must be a known tag "
                           "with a value in [0, 1]")
  if not graded:
    vals = np.where(from_targets, (vals >= choices.POSITIVE_THRESHOLD).astype(np.float32), vals)
  if tags:
    tag_ids = {t: j for j, t in enumerate(tags)}
    tags_a = np.fromiter((tag_ids.get(k, -1) for k in keys), np.int64, count=len(keys))
    unknown = np.flatnonzero(tags_a < 0)
    if len(unknown):
      k = int(unknown[0])
      what = (f"target {keys[k]!r}={float(vals[k])} must be a known tag with a value in [0, 1]" if from_targets[k]
              else f"tag {keys[k]!r} is not in the tag list")
      raise errors.UserError(f"{path}: row {rows_a[k]}: {what}")
  else:   # popularity order, ties by name: what manifest.tag_list gives
    first_seen: dict = {}
    tags_a = np.fromiter((first_seen.setdefault(k, len(first_seen)) for k in keys), np.int64, count=len(keys))
    extra = np.fromiter((first_seen.setdefault(k, len(first_seen)) for k in also_counted), np.int64,
                        count=len(also_counted))
    names = [str(t) for t in first_seen]
    freq = np.bincount(tags_a, minlength=len(names)) + np.bincount(extra, minlength=len(names))
    order = sorted(range(len(names)), key=lambda j: (-freq[j], names[j]))
    remap = np.empty(len(names), np.int64)
    remap[order] = np.arange(len(names))
    tags_a, tags = remap[tags_a], [names[j] for j in order]
  del keys
  id_col, path_col = Strings.from_list([x if isinstance(x, str) else str(x) for x in ids]), None
  del ids
  path_col = Strings.paths(paths, root_base.rstrip("/") + "/" if root_base else "")
  del paths
  artists = [a if a is None or isinstance(a, str) else str(a) for a in artists]
  y = np.zeros((n, len(tags)), np.float32)
  y[rows_a, tags_a] = vals
  codes = _split_codes(splits, artists, use_artist_split, seed, path)
  has_artist = np.fromiter((a is not None for a in artists), bool, count=n)
  artist_col = Strings.from_list([a or "" for a in artists]) if has_artist.any() else None
  return list(tags), SongTable(id_col, path_col, y, codes, artist_col,
                               has_artist if artist_col is not None else None)


def _split_codes(splits, artists, use_artist_split: bool, seed: int, path: str) -> np.ndarray:
  rows = [{"split": s, "artist": a} for s, a in zip(splits, artists)] if use_artist_split else None
  if use_artist_split:
    names = manifest_lib.resolve_splits(rows, True, seed, path)
  else:
    if any(s is None for s in splits):
      raise errors.UserError(
          f"{path}: some rows have no 'split'; add it or set --config.data.artist_split=True")
    bad = sorted(set(splits) - set(manifest_lib.SPLITS))
    if bad:
      raise errors.UserError(f"{path}: unknown split names {bad}; valid: {list(manifest_lib.SPLITS)}")
    names = splits
  lookup = SPLIT_CODES
  return np.fromiter((lookup[s] for s in names), np.int8, count=len(names))
