"""Packed shards: the same batches as decoding the files (bad files included), and a pack interrupted and
restarted writes the same bytes as one uninterrupted pack."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

from conftest import data_config as _cfg
from jaxtag.data import generate, index, pack, packed, pipeline

SR = 16000


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
  """12 generated 3-s clips (16-bit FLAC: packed as pcm16), a 22.05-kHz stereo WAV (resampled: float32),
  a short clip and three bad files; the tag list is the song ids, so targets identify the song."""
  out = tmp_path_factory.mktemp("gen")
  rows = [json.loads(line) for line in open(generate.generate(str(out), 12, seed=2, clip_seconds=3.0, workers=1))]
  paths = [str(out / r["path"]) for r in rows]
  t = np.arange(int(2.5 * 22050)) / 22050
  sf.write(str(out / "stereo.wav"), np.stack([0.3 * np.sin(2 * np.pi * 330 * t), 0.2 * np.sin(2 * np.pi * 97 * t)], 1),
           22050, subtype="FLOAT")
  sf.write(str(out / "short.flac"), (0.2 * np.sin(np.arange(SR // 2) / 7)).astype(np.float32), SR)
  sf.write(str(out / "silent.flac"), np.zeros(SR * 2, np.float32), SR)
  open(out / "corrupt.flac", "wb").write(open(paths[0], "rb").read()[:100] + b"\x00" * 5000)
  paths += [str(out / n) for n in ("stereo.wav", "short.flac", "silent.flac", "corrupt.flac", "missing.flac")]
  ids = [f"s{i:02d}" for i in range(len(paths))]
  return [index.Song(id=s, path=p, targets=np.eye(len(ids), dtype=np.float32)[i], split="train")
          for i, (s, p) in enumerate(zip(ids, paths))]


def _batches(d, songs, n=6):
  it = pipeline.train_iterator(d, songs, local_batch=5, seed=4)
  out = [next(it) for _ in range(n)]
  it.close()
  return out


@pytest.mark.parametrize("encoding", ["auto", "flac"])
def test_packed_and_file_pipelines_give_identical_batches(songs, tmp_path, encoding):
  """``auto`` is exact for every source; ``flac`` (16-bit) only for 16-bit sources, so not the float WAV."""
  if encoding == "flac":
    songs = [s for s in songs if not s.path.endswith("stereo.wav")]
  meta = pack.pack_split(_cfg(), songs, str(tmp_path / "train"), encoding=encoding, workers=1, songs_per_shard=5)
  assert meta["bad"]["silent"] == meta["bad"]["corrupt"] == meta["bad"]["missing"] == 1
  if encoding == "auto":
    assert meta["encodings"] == {"pcm16": 13, "float32": 1, "flac": 0, "bad": 3}
  for policy in ("pad", "skip"):
    files, packs = _cfg(short_policy=policy), _cfg(short_policy=policy, packed_dir=str(tmp_path))
    for want, got in zip(_batches(files, songs), _batches(packs, songs)):
      for key in ("audio", "targets", "bad"):
        np.testing.assert_array_equal(got[key], want[key])
    ev_files, ev_packs = (pipeline.eval_batches(d, songs, batch=4) for d in (files, packs))
    for want, got in zip(list(ev_files), list(ev_packs), strict=True):
      np.testing.assert_array_equal(got["audio"], want["audio"])
      np.testing.assert_array_equal(got["song"], want["song"])
    assert ev_packs.bad_counts == ev_files.bad_counts and ev_packs.chunks == ev_files.chunks
  subset = songs[3:9:2]   # matched by id: a subset (train_size, a process shard) reads the same pack
  np.testing.assert_array_equal(_batches(_cfg(packed_dir=str(tmp_path)), subset, 2)[1]["audio"],
                                _batches(_cfg(), subset, 2)[1]["audio"])


def _contents(directory):
  """Shard bytes, and the tables' arrays (npz zips carry a timestamp)."""
  out = {}
  for n in sorted(os.listdir(directory)):
    path = os.path.join(directory, n)
    if n.endswith(".npz"):
      out[n] = {k: v.tolist() for k, v in np.load(path).items()}
    elif n != "pack.json":   # pack.json differs only in last_run_s
      out[n] = open(path, "rb").read()
  return out


def test_interrupted_pack_restarts_to_the_same_shards(songs, tmp_path, monkeypatch):
  clean = str(tmp_path / "clean")
  pack.pack_split(_cfg(), songs, clean, workers=2, songs_per_shard=4)   # parallel, uninterrupted
  calls = {"n": 0}
  real = pack.load_audio

  def dying(path, sr):
    calls["n"] += 1
    if calls["n"] == 7:   # halfway through the second shard
      raise KeyboardInterrupt
    return real(path, sr)

  out = str(tmp_path / "killed")
  monkeypatch.setattr(pack, "load_audio", dying)
  with pytest.raises(KeyboardInterrupt):
    pack.pack_split(_cfg(), songs, out, workers=1, songs_per_shard=4)
  monkeypatch.setattr(pack, "load_audio", real)
  assert os.path.exists(os.path.join(out, pack.shard_name(0, 5)))
  assert not os.path.exists(os.path.join(out, pack.shard_name(1, 5))) and not packed.is_packed(str(tmp_path), "killed")
  meta = pack.pack_split(_cfg(), songs, out, workers=1, songs_per_shard=4)   # the same command again
  assert len(meta["shards"]) == 5 and meta["songs"] == len(songs)
  assert _contents(out) == _contents(clean)
  with pytest.raises(ValueError, match="different pack"):
    pack.pack_split(_cfg(), songs, out, workers=1, songs_per_shard=3)
