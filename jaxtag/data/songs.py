"""The index's row types: a ``Song`` (id, path, targets, split, artist) and a ``SongIndex`` of them.

A leaf module: every data-set reader (``mtt``, ``msd``, ``manifest``) builds these, and ``index`` dispatches
to the readers, so the types live apart from both and the imports run one way.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxtag.core import choices


@dataclasses.dataclass(frozen=True, eq=False)
class Song:
  id: str
  path: str
  targets: np.ndarray          # float32 (n_tags,): binary tags or graded values in [0, 1]
  split: str                   # train | valid | test
  artist: str | None = None


@dataclasses.dataclass
class SongIndex:
  """All songs of a dataset with their tags; ``excluded`` counts rows dropped at index time, by cause."""
  tags: list[str]
  songs: list[Song]
  graded: bool = False
  excluded: dict[str, int] = dataclasses.field(default_factory=dict)
  train_pool: int = 0          # train songs before the ``train_size`` subset

  def split(self, name: str) -> list[Song]:
    """The songs of split ``name`` (a ``columns.SongView`` for manifests, which has the list interface)."""
    if name not in choices.SPLITS:
      raise choices.ConfigError(f"unknown split {name!r}; valid: {list(choices.SPLITS)}")
    if hasattr(self.songs, "of_split"):   # columnar (jaxtag.data.columns): one mask, no Song objects
      return self.songs.of_split(name)
    return [s for s in self.songs if s.split == name]

  def counts(self) -> dict[str, int]:
    if hasattr(self.songs, "split_counts"):
      return self.songs.split_counts()
    return {name: sum(s.split == name for s in self.songs) for name in choices.SPLITS}
