"""MagnaTagATune reader: ``annotations_final.csv`` (tab-separated, quoted; ``clip_id``, 188 tags, ``mp3_path``).

Splits:
- ``pons`` (Dieleman / Pons et al.): by the first character of ``mp3_path``, ``0``-``b`` train, ``c`` valid,
  ``d``-``f`` test; clips without any top-50 tag are kept; the three clips with broken audio are excluded.
  The full file gives 18,706 / 1,825 / 5,329.
- ``clean`` (Lee et al. 2017; Won et al. 2020): only clips listed in ``split_lists/{train,valid,test}``
  (``.txt``/``.tsv`` lines, ``.npy`` arrays or Lee's ``*_list_pub.cP``; entries end in the ``mp3_path``),
  read as data only (``jaxtag.data.list_files``: a pickle naming any callable is refused).
"""
from __future__ import annotations

import csv
import io
import os

import numpy as np
from etils import epath

from jaxtag.core import choices, errors

from jaxtag.data.list_files import read_list
from jaxtag.data.songs import Song, SongIndex
from jaxtag.core.paths import join as index_join

SPLITS = choices.MTT_SPLITS
BROKEN_CLIPS = frozenset({"35644", "55753", "57881"})   # known undecodable audio in the full release
PONS_SPLIT = {**{c: "train" for c in "0123456789ab"}, "c": "valid", **{c: "test" for c in "def"}}


def read_split_lists(directory: str) -> dict[str, str]:
  """mp3_path -> split from Lee/Won-style list files: per split ``{split}.npy|.txt|.tsv`` or Lee's
  ``{split}_list_pub.cP``; entries end in the mp3 path (``"<row>\t<path>"`` is fine)."""
  out = {}
  for split in ("train", "valid", "test"):
    names = [split + ext for ext in (".npy", ".txt", ".tsv")] + [f"{split}_list_pub.cP"]
    path = next((os.path.join(directory, n) for n in names if os.path.exists(os.path.join(directory, n))), None)
    if path is None:
      raise errors.MissingInput(f"none of {names} in data.split_lists={directory!r}")
    out.update({str(e).strip().split("\t")[-1]: split for e in read_list(path) if str(e).strip()})
  return out


def load(annotations: str, root: str, split: str, split_lists: str, tags: list[str]) -> SongIndex:
  """The MTT SongIndex for ``split`` (``pons`` | ``clean``), targets in the order of ``tags``."""
  if split not in SPLITS:
    raise errors.UserError(f"unknown data.mtt_split {split!r}; valid: {list(SPLITS)}")
  if not epath.Path(annotations).exists():
    raise errors.MissingInput(f"MTT annotations {annotations!r} not found; set --config.data.annotations=PATH")
  with io.StringIO(epath.Path(annotations).read_text(), newline="") as f:
    reader = csv.reader(f, delimiter="\t", quotechar='"')
    header = next(reader)
    rows = [r for r in reader if r]
  missing = [t for t in tags if t not in header]
  if header[0] != "clip_id" or header[-1] != "mp3_path" or missing:
    raise errors.UserError(f"{annotations}: not an MTT annotations_final.csv (missing columns: {missing[:5]})")
  cols = [header.index(t) for t in tags]
  listed = read_split_lists(split_lists) if split == "clean" else None
  songs, excluded = [], {"broken_audio": 0, "not_in_split_lists": 0}
  for r in rows:
    clip_id, mp3 = r[0], r[-1]
    if clip_id in BROKEN_CLIPS:
      excluded["broken_audio"] += 1
      continue
    s = PONS_SPLIT.get(mp3[:1]) if listed is None else listed.get(mp3)
    if s is None:
      excluded["not_in_split_lists"] += 1
      continue
    targets = np.array([float(r[c]) for c in cols], np.float32)
    songs.append(Song(id=clip_id, path=index_join(root, mp3), targets=targets, split=s))
  return SongIndex(tags=list(tags), songs=songs, graded=False, excluded=excluded)
