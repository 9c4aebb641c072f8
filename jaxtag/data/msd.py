"""Million Song Dataset tagging benchmark reader (Lee/Choi split, 50 Last.fm tags).

Labels per split come in either common form: ``ids.txt:y.npy`` (one track id per line + an (n, 50) array)
or a ``.tsv`` of ``TRACKID<TAB>[0, 1, ...]`` lines. Audio lives at ``root/audio_pattern``, by default
``{id[2]}/{id[3]}/{id[4]}/{id}.clip.mp3`` (the usual 7digital preview layout).
"""
from __future__ import annotations

import json
import os

import numpy as np

from jaxtag.data.songs import Song, SongIndex
from jaxtag.core import errors


def read_labels(spec: str) -> tuple[list[str], np.ndarray]:
  """(track ids, (n, T) float32 labels) from ``ids.txt:y.npy`` or a ``.tsv`` ground-truth file."""
  if ":" in spec and not spec.endswith(".tsv"):
    ids_path, y_path = spec.split(":", 1)
    for path in (ids_path, y_path):
      errors.require(path, "MSD labels file", f"fix data.labels ({spec!r}: 'ids.txt:y.npy')")
    with open(ids_path) as f:
      ids = [line.strip() for line in f if line.strip()]
    y = np.load(y_path).astype(np.float32)
  elif spec.endswith(".tsv"):
    errors.require(spec, "MSD labels file", "fix data.labels")
    ids, rows = [], []
    with open(spec) as f:
      for n, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          track, labels = line.rstrip("\n").split("\t", 1)
          rows.append(json.loads(labels))
        except ValueError as e:
          raise errors.UserError(f"MSD labels {spec}:{n}: not 'TRACKID<TAB>[0, 1, ...]' ({e})") from e
        ids.append(track)
    y = np.asarray(rows, np.float32)
  else:
    raise errors.UserError(f"MSD labels {spec!r}: give 'ids.txt:y.npy' or a '.tsv' of 'id<TAB>[0, 1, ...]' lines")
  if y.ndim != 2 or len(ids) != len(y):
    raise errors.UserError(f"MSD labels {spec!r}: {len(ids)} ids but labels of shape {y.shape}")
  return ids, y


def load(labels: dict[str, str], root: str, audio_pattern: str, tags: list[str]) -> SongIndex:
  """The MSD SongIndex from the per-split label files given (empty entries are skipped)."""
  songs = []
  for split, spec in labels.items():
    if not spec:
      continue
    ids, y = read_labels(spec)
    if y.shape[1] != len(tags):
      raise errors.UserError(f"MSD labels {spec!r} have {y.shape[1]} columns but the tag list has {len(tags)}")
    songs += [Song(id=t, path=os.path.join(root, audio_pattern.format(id=t)), targets=y[i], split=split)
              for i, t in enumerate(ids)]
  return SongIndex(tags=list(tags), songs=songs, graded=False)
