"""Decoding, the generated corpus and the grain pipelines: bad input, exact resume, sharding, eval chunks."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

from conftest import data_config as _cfg
from jaxtag.data import decode, generate, index, pipeline

SR = 16000


def _tone(seconds, sr=SR, amp=0.3):
  return (amp * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """16 generated clips of 3 s, as a manifest whose tag list is the song ids: targets identify the song."""
  out = str(tmp_path_factory.mktemp("gen"))
  rows = [json.loads(line) for line in open(generate.generate(out, 16, seed=1, clip_seconds=3.0, workers=1))]
  ids = [r["id"] for r in rows]
  path = os.path.join(out, "by_id.jsonl")
  with open(path, "w") as f:
    f.writelines(json.dumps({"path": r["path"], "tags": [r["id"]], "split": "train"}) + "\n" for r in rows)
  return out, path, ids


def _songs(manifest_path, ids):
  return index.from_manifest(manifest_path, "", ids, graded=False, use_artist_split=False).songs


def _salt(tmp):
  """One file per bad reason (too_short needs short_policy='skip'); returns {reason: path}."""
  tmp.mkdir(exist_ok=True)
  p = {r: str(tmp / f"{r}.flac") for r in decode.BAD_REASONS}
  p["missing"] = str(tmp / "nope.flac")
  open(p["empty"], "wb").close()
  p["not_audio"] = str(tmp / "not_audio.wav")
  open(p["not_audio"], "w").write("not audio\n" * 100)
  sf.write(str(tmp / "ok.flac"), _tone(3.0), SR)
  data = open(tmp / "ok.flac", "rb").read()
  open(p["corrupt"], "wb").write(data[:200] + np.random.default_rng(0).bytes(len(data) - 200))
  open(p["truncated"], "wb").write(data[:len(data) // 2])
  p["bad_sample_rate"] = str(tmp / "rate.wav")
  sf.write(p["bad_sample_rate"], _tone(3.0, sr=100), 100)
  p["non_finite"] = str(tmp / "nan.wav")
  sf.write(p["non_finite"], np.where(np.arange(SR * 3) == 5, np.nan, _tone(3.0)), SR, subtype="FLOAT")
  sf.write(p["silent"], np.zeros(SR * 3, np.float32), SR)
  sf.write(p["too_short"], _tone(0.5), SR)
  return p


def test_decode_reasons_resampling_and_mono(tmp_path):
  for reason, path in _salt(tmp_path).items():
    if reason == "too_short":
      assert len(decode.load_audio(path, SR)) == SR // 2
      continue
    with pytest.raises(decode.DecodeError) as e:
      decode.load_audio(path, SR)
    assert e.value.reason == reason, (reason, str(e.value))
  stereo = np.stack([_tone(2.0, sr=44100), -0.5 * _tone(2.0, sr=44100)], axis=1)
  sf.write(str(tmp_path / "st.wav"), stereo, 44100)
  y = decode.load_audio(str(tmp_path / "st.wav"), SR)
  assert y.dtype == np.float32 and abs(len(y) - 2 * SR) <= 1
  spectrum = np.abs(np.fft.rfft(y))
  assert abs(np.argmax(spectrum) * SR / len(y) - 220) < 2 and 0.07 < np.abs(y).max() < 0.08   # mean of 0.3 and -0.15


def test_generated_corpus_deterministic_tagged_and_cached(corpus, tmp_path):
  out, _, _ = corpus
  rows = [json.loads(line) for line in open(os.path.join(out, "manifest.jsonl"))]
  again = [json.loads(line) for line in open(generate.generate(str(tmp_path / "a"), 16, seed=1, clip_seconds=3.0))]
  assert rows == again
  assert sf.read(os.path.join(out, rows[3]["path"]))[0].tolist() == sf.read(str(tmp_path / "a" / rows[3]["path"]))[0].tolist()
  serial, parallel = (generate.generate(str(tmp_path / w), 24, seed=5, clip_seconds=1.0, workers=int(w)) for w in "12")
  assert open(serial).read() == open(parallel).read()   # the worker count does not change the corpus
  assert sf.read(serial.replace("manifest.jsonl", "audio/000/gen000023.flac"))[0].tolist() == \
      sf.read(parallel.replace("manifest.jsonl", "audio/000/gen000023.flac"))[0].tolist()
  assert 20 <= len(generate.TAGS) <= 50 and all(set(r["tags"]) <= set(generate.TAGS) for r in rows)
  assert all(0 < v <= 1 for r in rows for v in r["targets"].values())
  d = _cfg(generated_n=12, generated_seed=2, generated_clip_seconds=2.0, cache_dir=str(tmp_path / "cache"), graded=True)
  idx = index.load_songs(d)
  assert idx.graded and len(idx.songs) == 12 and idx.tags == list(generate.TAGS)
  assert os.listdir(tmp_path / "cache") == [os.path.basename(generate.corpus_dir(12, 2, 2.0, "flac"))]
  assert index.load_songs(d).songs[5].path == idx.songs[5].path   # second call reads the cache


def test_racing_corpus_builds_end_with_one_complete_mp3_corpus(tmp_path):
  import concurrent.futures
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    paths = list(pool.map(lambda _: generate.ensure_corpus(4, 9, 1.0, "mp3", str(tmp_path)), range(2)))
  assert paths[0] == paths[1] and os.listdir(tmp_path) == [os.path.basename(os.path.dirname(paths[0]))]
  rows = [json.loads(line) for line in open(paths[0])]
  audio = decode.load_audio(os.path.join(os.path.dirname(paths[0]), rows[0]["path"]), SR)
  assert rows[0]["path"].endswith(".mp3") and abs(len(audio) - SR) < 0.1 * SR


def _identify(batch, ids):
  assert batch["targets"].sum(axis=1).tolist() == [1.0] * len(batch["targets"])
  return [ids[j] for j in batch["targets"].argmax(axis=1)]


def test_bad_files_are_skipped_and_counted_by_reason(corpus, tmp_path, caplog):
  out, path, ids = corpus
  salted = _salt(tmp_path)
  good = _songs(path, ids)
  bad = [index.Song(id=r, path=p, targets=np.zeros(len(ids), np.float32), split="train") for r, p in salted.items()]
  songs = good + bad
  d = _cfg(short_policy="skip")
  ev = pipeline.eval_batches(d, songs, batch=8)
  batches = list(ev)
  assert ev.bad_counts == {r: 1 for r in decode.BAD_REASONS}
  assert sorted(ev.bad_songs) == list(range(len(good), len(songs)))
  assert {int(s) for b in batches for s in b["song"] if s >= 0} == set(range(len(good)))
  # Train: in one epoch every salted file is met (then replaced, possibly by another bad one, each skip
  # counted), and no chunk comes from a bad file.
  it = pipeline.train_iterator(d, songs, local_batch=5, seed=3)
  counts, seen = np.zeros(len(decode.BAD_REASONS), int), []
  for _ in range(len(songs) // 5):
    b = next(it)
    seen += _identify(b, ids)
    counts += b["bad"].sum(axis=0)
    assert np.isfinite(b["audio"]).all() and (np.abs(b["audio"]).max(axis=1) > 1e-4).all()
  assert (counts >= 1).all() and set(seen) <= set(ids)
  logged = [r.getMessage() for r in caplog.records if "skipping bad audio" in r.getMessage()]
  for reason, bad_path in salted.items():   # once by the eval reader, once by the train reader
    assert sum(bad_path in m and f"({reason})" in m for m in logged) == 2, (reason, logged)


def test_short_songs_padded_and_eval_chunk_counts_sharded(tmp_path):
  lengths = [0.5, 1.0, 2.7, 3.2, 1.9, 4.0, 0.2]
  songs = []
  for i, sec in enumerate(lengths):
    sf.write(str(tmp_path / f"{i}.flac"), _tone(sec), SR)
    songs.append(index.Song(id=str(i), path=str(tmp_path / f"{i}.flac"), targets=np.eye(len(lengths))[i], split="test"))
  d = _cfg()
  per_song, covered = {}, []
  for p in range(2):
    d.eval_num_workers = 2 * p   # process 1 decodes in worker processes: same batches either way
    ev = pipeline.eval_batches(d, songs, batch=4, process_index=p, process_count=2)
    mine = []
    for b in ev:
      assert b["audio"].shape == (4, SR) and b["song"].dtype == np.int32
      for a, s in zip(b["audio"], b["song"]):
        if s < 0:
          assert not a.any()
          continue
        mine.append(int(s))
        per_song[int(s)] = per_song.get(int(s), 0) + 1
    assert set(mine) == set(range(p, len(songs), 2))
    covered += sorted(set(mine))
  assert sorted(covered) == list(range(len(songs)))
  assert per_song == {i: max(1, int(sec // 1.0)) for i, sec in enumerate(lengths)}
  d.eval_num_workers = 0
  ev = pipeline.eval_batches(d, songs, batch=64)
  assert next(ev)["song"].tolist()[:4] == [0, 1, 2, 2] and ev.chunks == sum(per_song.values())
  with pytest.raises(StopIteration):
    next(ev)
  b = next(pipeline.train_iterator(d, songs, local_batch=7, seed=0))
  assert b["audio"].shape == (7, SR) and not b["bad"].any()   # pad policy: short songs are fed, padded


def test_two_processes_read_disjoint_shards_covering_the_split(corpus):
  _, path, ids = corpus
  songs = _songs(path, ids)
  d = _cfg(chunks_per_song=2)
  shards = []
  for p in range(2):
    it = pipeline.train_iterator(d, songs, local_batch=4, seed=7, process_index=p, process_count=2)
    seen = [s for _ in range(4) for s in _identify(next(it), ids)]   # one epoch: 8 songs x 2 chunks
    assert sorted(set(seen)) == sorted(ids[p::2]) and all(seen.count(s) == 2 for s in set(seen))
    shards.append(set(seen))
  assert not shards[0] & shards[1] and shards[0] | shards[1] == set(ids)


def test_exact_resume_with_two_workers(corpus, tmp_path):
  """Save with grain's checkpoint handler (what Orbax's CheckpointSave/Restore call), restore into a fresh
  pipeline: the next batches are bit-identical to those of the uninterrupted run."""
  import grain
  from etils import epath
  _, path, ids = corpus
  songs = _songs(path, ids)
  d = _cfg(num_workers=2, chunk_seconds=0.5)
  k, m = 3, 4
  it = pipeline.train_iterator(d, songs, local_batch=4, seed=11)
  for _ in range(k):
    next(it)
  handler = grain.checkpoint.CheckpointHandler()
  handler.save(epath.Path(tmp_path), args=grain.checkpoint.CheckpointSave(it))
  expected = [next(it) for _ in range(m)]
  it.close()
  fresh = pipeline.train_iterator(d, songs, local_batch=4, seed=11)
  handler.restore(epath.Path(tmp_path), args=grain.checkpoint.CheckpointRestore(fresh))
  for want in expected:
    got = next(fresh)
    for key in ("audio", "targets", "bad"):
      np.testing.assert_array_equal(got[key], want[key])
  fresh.close()
  # Epoch boundary: the next epoch is a new order of the same songs.
  it = pipeline.train_iterator(_cfg(), songs, local_batch=16, seed=11)
  e1, e2 = _identify(next(it), ids), _identify(next(it), ids)
  assert sorted(e1) == sorted(e2) == sorted(ids) and e1 != e2
