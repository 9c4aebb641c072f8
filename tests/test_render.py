"""The rendered corpus (SoundFont renderings of music21 pieces and composed styles): determinism to the byte,
a valid manifest, every audio format, artist-disjoint splits, and the ``rendered`` dataset hook."""
import collections
import json
import os

import numpy as np
import pytest
import soundfile as sf

from conftest import data_config as _cfg
from jaxtag.data import index, manifest
from jaxtag.data.render import corpus, label, render, scores

N, SECONDS = 12, 2.0


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  """A score table of one real corpus piece per composer (the full table takes minutes to parse)."""
  d = str(tmp_path_factory.mktemp("render_cache"))
  scores.build(scores.table_path(d), workers=1, count=1)
  return d


@pytest.fixture(scope="module")
def flac(cache, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("rendered"))
  return corpus.generate(out, N, seed=3, clip_seconds=SECONDS, workers=1, cache_dir=cache)


def _rows(path):
  return [json.loads(line) for line in open(path)]


def test_score_table_holds_every_composer_with_notes(cache):
  pieces = scores.load(cache)
  assert sorted(p["composer"] for p in pieces) == sorted(scores.COMPOSERS)
  for p in pieces:
    assert p["length"] > 8 and all(0 <= m < 128 and d > 0 for part in p["parts"] for m, _, d in part)
  rng = np.random.default_rng(0)
  parts = scores.excerpt(pieces[0], rng, 4.0, 90.0)
  assert any(parts) and all(0 <= s < 4.0 and e > s for part in parts for _, s, e in part)


def test_manifest_is_valid_and_splits_are_artist_disjoint(flac):
  rows = _rows(flac)
  root = os.path.dirname(flac)
  assert len(rows) == N and len({r["id"] for r in rows}) == N
  for r in rows:
    y, sr = sf.read(os.path.join(root, r["path"]))
    assert sr == 16000 and len(y) == int(SECONDS * 16000) and np.sqrt(np.mean(y**2)) > 1e-3
    assert set(r["tags"]) <= set(label.TAGS) and r["split"] in manifest.SPLITS
    assert set(r["targets"]) <= set(label.TAGS) and all(0 < v <= 1 for v in r["targets"].values())
    assert set(r["clean_tags"]) <= set(label.ATTRIBUTES)
  false = sum(len(set(r["tags"]) - set(r["targets"])) for r in rows)   # a noisy tag with no clean target
  assert false <= 3 * N * label.FALSE_TAG_RATE * len(label.TAGS) + 3
  by_artist = collections.defaultdict(set)
  for r in rows:
    by_artist[r["artist"]].add(r["split"])
  assert all(len(s) == 1 for s in by_artist.values())
  assert open(os.path.join(root, "tags.txt")).read().split("\n")[:3] == list(label.TAGS[:3])
  assert len(set(label.TAGS) & set(index.packaged_tags("mtt_top50"))) >= 45   # MTT's own tag names


def test_same_seed_same_bytes_and_worker_count_does_not_matter(flac, cache, tmp_path):
  again = corpus.generate(str(tmp_path / "a"), N, seed=3, clip_seconds=SECONDS, workers=2, cache_dir=cache)
  assert open(again).read() == open(flac).read()
  for r in _rows(flac):
    a = open(os.path.join(os.path.dirname(flac), r["path"]), "rb").read()
    assert a == open(os.path.join(tmp_path / "a", r["path"]), "rb").read()
  other = corpus.render_clip(0, N, 4, SECONDS, cache_dir=cache)[0]
  assert not np.array_equal(other, corpus.render_clip(0, N, 3, SECONDS, cache_dir=cache)[0])


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_every_format_is_written_and_decodes(fmt, cache, tmp_path, flac):
  path = corpus.generate(str(tmp_path), 3, seed=3, clip_seconds=SECONDS, fmt=fmt, workers=1, cache_dir=cache)
  ref = {r["id"]: r for r in _rows(flac)}
  for r in _rows(path):
    assert r["path"].endswith("." + fmt)
    y, sr = sf.read(str(tmp_path / r["path"]))
    assert sr == 16000 and abs(len(y) - SECONDS * 16000) < 2000 and np.abs(y).max() > 1e-3
  with pytest.raises(ValueError, match="valid"):
    corpus.generate(str(tmp_path / "x"), 1, fmt="ogg", cache_dir=cache)
  assert ref   # the same clips' labels do not depend on the format (rows other than the path match)
  assert all({k: v for k, v in r.items() if k != "path"} ==
             {k: v for k, v in ref[r["id"]].items() if k not in ("path", "split")} | {"split": r["split"]}
             for r in _rows(path))


def test_channel_volume_sets_the_relative_part_levels():
  """Two parts at gains 0 and -12 dB render 12 dB apart (within 2 dB), whatever their programs' loudness."""
  from jaxtag.data.render.compose import Part
  sf2 = render.default_soundfonts()[0]
  notes = [(60, 0.0, 0.9, 100)]
  loud = render.render_parts([Part("piano", 0, notes), Part("violin", 40, [])], [0.0, -12.0], 1.0, sf2)
  quiet = render.render_parts([Part("piano", 0, []), Part("violin", 40, notes)], [0.0, -12.0], 1.0, sf2)
  db = 20 * np.log10(np.sqrt(np.mean(loud**2)) / np.sqrt(np.mean(quiet**2)))
  assert 10.0 < db < 14.0


def test_rendered_dataset_hook_caches_the_corpus(cache):
  d = _cfg(dataset="rendered", generated_n=4, generated_seed=3, generated_clip_seconds=1.0, cache_dir=cache,
           graded=True)
  idx = index.load_songs(d)
  assert idx.graded and len(idx.songs) == 4 and idx.tags == list(label.TAGS)
  assert os.path.isdir(corpus.corpus_dir(4, 3, 1.0, "flac", cache))
  assert all(s.targets.max() > 0 for s in idx.songs)


def test_testbed_clips_are_deterministic_clean_and_grouped_by_family(cache, tmp_path):
  """The testbed: a clip is a pure function of its index, tags are the clean facts plus the evidence states
  (every tag in a family), the noisy MTT-like tags stay beside them, and ``data.dataset='testbed'`` loads it."""
  import json
  from jaxtag.data import index as data_index
  from jaxtag.data.render import evidence, testbed
  a, row = testbed.render_clip(5, 12, 3, 2.0, cache_dir=cache)
  b, again = testbed.render_clip(5, 12, 3, 2.0, cache_dir=cache)
  assert np.array_equal(a, b) and row == again and len(a) == 32000
  assert set(row["tags"]) <= set(testbed.TAGS) and row["noisy_tags"] is not None
  assert all(testbed.FAMILY_OF[t] for t in row["tags"])
  assert set(row["tags"]) & set(row["clean_tags"]) == {t for t in row["clean_tags"] if t in testbed.TAGS}
  assert set(testbed.KIND.values()) == {"visible", "invisible"}
  assert {testbed.FAMILY_OF[t] for t in evidence.TAGS} == {"phase", "timing", "fine pitch"}
  path = testbed.generate(str(tmp_path / "tb"), 12, 3, 2.0, workers=1, cache_dir=cache)
  fams = json.load(open(tmp_path / "tb" / "families.json"))
  assert fams["families"]["flam"] == "timing" and fams["kinds"]["timing"] == "invisible"
  rows = [json.loads(line) for line in open(path)]
  assert {r["split"] for r in rows} <= {"train", "valid", "test"} and rows[5]["tags"] == row["tags"]
  from jaxtag.core import config as config_lib
  c = config_lib.base_config()
  c.data.update(dataset="testbed", generated_n=12, generated_seed=3, generated_clip_seconds=2.0, cache_dir=cache)
  testbed_dir = testbed.corpus_dir(12, 3, 2.0, "flac", cache)
  os.rename(str(tmp_path / "tb"), testbed_dir)          # the cache location load_songs reads
  idx = data_index.load_songs(c.data)
  assert list(idx.tags) == list(testbed.TAGS) and len(idx.songs) == 12
  assert data_index.tag_families(c.data, idx.tags)["detuned"] == "fine pitch"
