"""Index readers on the real-format samples in ../shared/data: MTT, MSD, manifests, config checks."""
import csv
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SHARED
from jaxtag.core import config as config_lib
from jaxtag.data import index, manifest, msd, mtt

MTT_CSV = os.path.join(SHARED, "data", "mtt", "annotations_final.sample.csv")
MSD_IDS = os.path.join(SHARED, "data", "msd", "valid_ids.sample.txt")
MSD_Y = os.path.join(SHARED, "data", "msd", "valid_y.sample.npy")
MSD_TSV = os.path.join(SHARED, "data", "msd", "val_gt_msd.sample.tsv")


def _mtt_rows():
  with open(MTT_CSV, newline="") as f:
    rows = list(csv.reader(f, delimiter="\t", quotechar='"'))
  return rows[0], rows[1:]


def test_packaged_tag_lists_match_shared():
  assert index.packaged_tags("msd_top50") == index.read_tags_file(os.path.join(SHARED, "data", "msd", "top50_tags.txt"))
  with open(os.path.join(SHARED, "data", "mtt", "top50_tags.txt")) as f:
    assert str(index.packaged_tags("mtt_top50")) in f.read()


def test_mtt_pons_split_counts_order_and_labels():
  header, rows = _mtt_rows()
  tags = index.packaged_tags("mtt_top50")
  idx = mtt.load(MTT_CSV, "/audio", "pons", "", tags)
  first = [r[-1][0] for r in rows]
  assert idx.counts() == {"train": sum(c in "0123456789ab" for c in first), "valid": first.count("c"),
                          "test": sum(c in "def" for c in first)}
  assert sum(idx.counts().values()) == len(rows) == 400    # the broken clips are not in the sample
  assert idx.tags == tags and len(tags) == 50
  by_id = {s.id: s for s in idx.songs}
  for r in rows:   # every label equals its CSV cell, columns in the canonical order
    song = by_id[r[0]]
    assert song.path == os.path.join("/audio", r[-1])
    np.testing.assert_array_equal(song.targets, [float(r[header.index(t)]) for t in tags])
  assert any(not s.targets.any() for s in idx.songs)   # clips with no top-50 tag are kept


def test_mtt_excludes_broken_clips_and_reads_clean_lists(tmp_path):
  header, rows = _mtt_rows()
  rows[0][0], rows[1][0] = "35644", "57881"
  path = tmp_path / "annotations_final.csv"
  with open(path, "w", newline="") as f:
    csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL).writerows([header] + rows)
  idx = mtt.load(str(path), "", "pons", "", index.packaged_tags("mtt_top50"))
  assert len(idx.songs) == 398 and idx.excluded["broken_audio"] == 2
  lists = tmp_path / "lists"
  lists.mkdir()
  np.save(lists / "train.npy", np.array([f"{i}\t{r[-1]}" for i, r in enumerate(rows[2:12])]))
  (lists / "valid.txt").write_text("\n".join(r[-1] for r in rows[12:15]))
  with open(lists / "test_list_pub.cP", "wb") as f:   # Lee's original form
    pickle.dump([r[-1] for r in rows[15:19]], f, protocol=2)
  clean = mtt.load(str(path), "", "clean", str(lists), index.packaged_tags("mtt_top50"))
  assert clean.counts() == {"train": 10, "valid": 3, "test": 4}
  assert clean.excluded["not_in_split_lists"] == 398 - 17


def test_msd_both_label_forms_agree(tmp_path):
  tags = index.packaged_tags("msd_top50")
  ids, y = msd.read_labels(f"{MSD_IDS}:{MSD_Y}")
  tsv_ids, tsv_y = msd.read_labels(MSD_TSV)
  assert y.shape == tsv_y.shape == (300, 50)
  assert np.array_equal(y, np.load(MSD_Y).astype(np.float32))
  # The two samples hold different tracks: convert each into the other form and compare label by label.
  (tmp_path / "a.tsv").write_text("".join(f"{i}\t{json.dumps(row.astype(int).tolist())}\n" for i, row in zip(ids, y)))
  (tmp_path / "b_ids.txt").write_text("\n".join(tsv_ids) + "\n")
  np.save(tmp_path / "b_y.npy", tsv_y.astype(bool))
  for spec_a, spec_b in ((f"{MSD_IDS}:{MSD_Y}", str(tmp_path / "a.tsv")),
                         (MSD_TSV, f"{tmp_path / 'b_ids.txt'}:{tmp_path / 'b_y.npy'}")):
    a = msd.load({"valid": spec_a}, "/msd", "{id[2]}/{id[3]}/{id[4]}/{id}.clip.mp3", tags)
    b = msd.load({"valid": spec_b}, "/msd", "{id[2]}/{id[3]}/{id[4]}/{id}.clip.mp3", tags)
    assert [s.id for s in a.songs] == [s.id for s in b.songs]
    np.testing.assert_array_equal(np.stack([s.targets for s in a.songs]), np.stack([s.targets for s in b.songs]))
  s = a.songs[0]
  assert s.path == f"/msd/{s.id[2]}/{s.id[3]}/{s.id[4]}/{s.id}.clip.mp3" and s.split == "valid"
  d = config_lib.base_config().data
  d.dataset, d.root, d.labels.valid, d.labels.test = "msd", "/msd", MSD_TSV, f"{MSD_IDS}:{MSD_Y}"
  assert index.load_songs(d).counts() == {"train": 0, "valid": 300, "test": 300}


def _write_manifest(tmp_path, n=40, with_split=True):
  rows = [{"path": f"a/{i}.flac", "tags": ["rock"] + (["piano"] if i % 3 == 0 else []),
           "targets": {"rock": 0.9, "piano": 0.3 if i % 3 else 0.8}, "artist": f"art{i % 10}"} for i in range(n)]
  for i, r in enumerate(rows):
    if with_split:
      r["split"] = ("train", "train", "valid", "test")[i % 4]
  path = tmp_path / "m.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  return path, rows


def test_manifest_jsonl_csv_binary_and_graded(tmp_path):
  path, rows = _write_manifest(tmp_path)
  binary = index.from_manifest(str(path), "", None, graded=False, use_artist_split=False)
  assert binary.tags == ["rock", "piano"] and binary.counts() == {"train": 20, "valid": 10, "test": 10}
  assert binary.songs[0].path == os.path.join(str(tmp_path), "a/0.flac") and binary.songs[0].artist == "art0"
  np.testing.assert_array_equal(binary.songs[1].targets, [1, 0])
  graded = index.from_manifest(str(path), "/root", None, graded=True, use_artist_split=False)
  np.testing.assert_allclose(graded.songs[1].targets, [0.9, 0.3])
  assert graded.songs[1].path == "/root/a/1.flac" and graded.graded
  csv_path = tmp_path / "m.csv"
  with open(csv_path, "w", newline="") as f:
    w = csv.DictWriter(f, ["path", "tags", "targets", "split", "artist"])
    w.writeheader()
    w.writerows([{**r, "tags": ";".join(r["tags"]), "targets": json.dumps(r["targets"])} for r in rows])
  from_csv = index.from_manifest(str(csv_path), "", None, graded=True, use_artist_split=False)
  np.testing.assert_array_equal(np.stack([s.targets for s in from_csv.songs]), np.stack([s.targets for s in graded.songs]))


def test_artist_split_and_nested_train_subsets(tmp_path):
  path, _ = _write_manifest(tmp_path, n=200, with_split=False)
  with pytest.raises(ValueError, match="artist_split"):
    index.from_manifest(str(path), "", None, False, use_artist_split=False)
  idx = index.from_manifest(str(path), "", None, False, use_artist_split=True)
  artists = {name: {s.artist for s in idx.split(name)} for name in manifest.SPLITS}
  assert all(artists[name] for name in manifest.SPLITS)
  assert not (artists["train"] & artists["valid"] or artists["train"] & artists["test"] or artists["valid"] & artists["test"])
  fixed = {n: [s.id for s in idx.split(n)] for n in ("valid", "test")}
  subsets = []
  for size in (50, 100):
    sub = index.subset_train(index.from_manifest(str(path), "", None, False, True), size)
    assert len(sub.split("train")) == size and sub.train_pool == len(idx.split("train"))
    assert {n: [s.id for s in sub.split(n)] for n in ("valid", "test")} == fixed
    subsets.append({s.id for s in sub.split("train")})
  assert subsets[0] < subsets[1]


def test_config_mistakes_fail_with_the_key_to_set():
  for key, value, match in (("dataset", "mttt", "valid: 'generated'"), ("short_policy", "drop", "pad"),
                            ("dataset", "mtt", "data.annotations"), ("dataset", "manifest", "data.manifest"),
                            ("dataset", "msd", "data.labels")):
    c = config_lib.base_config()
    setattr(c.data, key, value)
    with pytest.raises(ValueError, match=match):   # at start, by the config schema
      config_lib.validate(c)
  d = config_lib.base_config().data
  d.dataset = "mttt"                              # a stored config: the reader dispatch's own guard
  with pytest.raises(ValueError, match="valid: 'generated'"):
    index.load_songs(d)
  d = config_lib.base_config().data
  d.dataset, d.annotations, d.mtt_split = "mtt", MTT_CSV, "cleaned"
  with pytest.raises(ValueError, match="pons"):
    index.load_songs(d)
  with pytest.raises(ValueError, match="valid: \\['train', 'valid', 'test'\\]"):
    index.SongIndex(tags=[], songs=[]).split("val")


def test_summary_command_on_mtt_without_audio():
  out = subprocess.run([sys.executable, "-m", "jaxtag.data.summary", "--config=configs/mtt.py",
                        f"--config.data.annotations={MTT_CSV}", "--config.data.root=/nonexistent"],
                       cwd=ROOT, capture_output=True, text=True, check=True).stdout
  summary = json.loads(out)
  assert summary["songs"] == {"train": 308, "valid": 22, "test": 70}
  assert summary["tags"] == index.packaged_tags("mtt_top50")
  assert set(summary["prevalence"]) == set(summary["tags"])
