"""One index form for every dataset (``songs.Song`` rows in a ``songs.SongIndex``), built without opening any audio.

Corpora hold 25k-1M files, so the index is built from label files alone; decode problems are found and
counted later, by the loader workers. ``load_songs(data_cfg)`` dispatches on ``data_cfg.dataset``.
"""
from __future__ import annotations

import os

import numpy as np
from etils import epath

from jaxtag.core import choices, errors, paths
from jaxtag.data import columns, manifest as manifest_lib
from jaxtag.data.songs import Song, SongIndex  # noqa: F401  (the index's row types, re-exported)

DATASETS, SHORT_POLICIES = choices.DATASETS, choices.SHORT_POLICIES


def read_tags_file(path: str) -> list[str]:
  return [line.strip() for line in epath.Path(path).read_text().splitlines()
          if line.strip() and not line.startswith("#")]


join, parent = paths.join, paths.parent   # used by the readers of each data set


def packaged_tags(name: str) -> list[str]:
  """Tag lists shipped in the package (``jaxtag/data/tags/<name>.txt``), in model-output order."""
  return read_tags_file(os.path.join(os.path.dirname(__file__), "tags", f"{name}.txt"))


def tag_families(data_cfg, tags) -> dict[str, str]:
  """tag -> family for the study's per-family statistics: the testbed's families, else one family "all"."""
  if data_cfg.dataset == "testbed":
    from jaxtag.data.render import testbed
    return {t: testbed.FAMILY_OF.get(t, "other") for t in tags}
  return {t: "all" for t in tags}


def family_kinds(data_cfg) -> dict[str, str]:
  """family -> kind ("visible" / "invisible" to a log-mel on the testbed; "all" elsewhere)."""
  if data_cfg.dataset == "testbed":
    from jaxtag.data.render import testbed
    return dict(testbed.KIND)
  return {"all": "all"}


def subset_train(index: SongIndex, train_size: int) -> SongIndex:
  """Keeps ``train_size`` train songs, chosen by a stable hash of the id: deterministic, independent of the
  row order, and nested (the 100k subset lies inside the 500k one), while valid and test stay fixed."""
  train = index.split("train")
  index.train_pool = len(train)
  if train_size <= 0 or train_size == len(train):
    return index
  if train_size > len(train):
    raise choices.ConfigError(f"data.train_size={train_size} exceeds the train pool of {len(train)} songs")
  if isinstance(index.songs, columns.SongView):   # the same choice, on the id column
    keys = np.fromiter((manifest_lib.stable_hash("train_size", i) for i in train.ids), np.uint64, count=len(train))
    keep = np.sort(train.rows[np.argsort(keys, kind="stable")[:train_size]])
    rows = index.songs.rows
    is_train = index.songs.split_codes == columns.SPLIT_CODES["train"]
    index.songs = columns.SongView(index.songs.table, np.sort(np.concatenate([rows[~is_train], keep])))
    return index
  keep = {id(s) for s in sorted(train, key=lambda s: manifest_lib.stable_hash("train_size", s.id))[:train_size]}
  index.songs = [s for s in index.songs if s.split != "train" or id(s) in keep]
  return index


def from_manifest(path: str, root: str, tags: list[str] | None, graded: bool, use_artist_split: bool,
                  seed: int = 0) -> SongIndex:
  """The manifest as columns (``columns.build``): ~0.5 KB per song instead of ~3 KB of Python objects."""
  tags, table = columns.build(path, root or parent(path), tags, graded, use_artist_split, seed)
  return SongIndex(tags=tags, songs=columns.SongView(table, np.arange(len(table.splits))), graded=graded)


def load_songs(data_cfg) -> SongIndex:
  """The dataset named by ``data_cfg.dataset`` as a SongIndex (the generated corpus is made on first use). The
  config schema checks a fresh config's data keys at start (``jaxtag.core.config``); the guard here is the
  dispatch's own, for configs read back from run directories."""
  choices.check("data.dataset", data_cfg.dataset, DATASETS)
  tags = None
  if data_cfg.tags_file:
    errors.require(data_cfg.tags_file, "data.tags_file", "give a file of one tag per line, or leave it empty "
                   "for the data set's own list")
    tags = read_tags_file(data_cfg.tags_file)
  graded = bool(data_cfg.get("graded", False))
  if data_cfg.dataset == "generated":
    from jaxtag.data import generate
    path = generate.ensure_corpus(data_cfg.generated_n, data_cfg.generated_seed, data_cfg.generated_clip_seconds,
                                  data_cfg.generated_format, data_cfg.cache_dir)
    index = from_manifest(path, "", tags or list(generate.TAGS), graded, False)
  elif data_cfg.dataset == "rendered":   # SoundFont renderings (jaxtag/data/render), same generated_* keys
    from jaxtag.data.render import corpus, label
    path = corpus.ensure_corpus(data_cfg.generated_n, data_cfg.generated_seed, data_cfg.generated_clip_seconds,
                                data_cfg.generated_format, data_cfg.cache_dir)
    index = from_manifest(path, "", tags or list(label.TAGS), graded, False)
  elif data_cfg.dataset == "testbed":   # rendered music + invisible evidence, clean tags (render/testbed.py)
    from jaxtag.data.render import testbed
    path = testbed.ensure_corpus(data_cfg.generated_n, data_cfg.generated_seed, data_cfg.generated_clip_seconds,
                                 data_cfg.generated_format, data_cfg.cache_dir)
    index = from_manifest(path, "", tags or list(testbed.TAGS), graded, False)
  elif data_cfg.dataset == "manifest":
    index = from_manifest(data_cfg.manifest, data_cfg.root, tags, graded, data_cfg.artist_split)
  elif data_cfg.dataset == "mtt":
    from jaxtag.data import mtt
    index = mtt.load(data_cfg.annotations, data_cfg.root, data_cfg.mtt_split, data_cfg.split_lists,
                     tags or packaged_tags("mtt_top50"))
  else:
    from jaxtag.data import msd
    index = msd.load(dict(data_cfg.labels), data_cfg.root, data_cfg.audio_pattern, tags or packaged_tags("msd_top50"))
  return subset_train(index, data_cfg.train_size)
