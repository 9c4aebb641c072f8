"""jaxtag.serving.tag: streamed inputs, atomic shards, the streaming decoder, a SIGKILL mid-run then the same command
again (every good file exactly once, scores equal to predict's, every broken file in errors.jsonl with its
reason), and a 2-process run through launch/local_multiprocess.sh equal to the 1-process one."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, save_untrained_run
from jaxtag.serving import inference, predict
from jaxtag.data import decode
from jaxtag.serving import tag_inputs as inputs, tag_shards as shards

BROKEN = {"x_corrupt.mp3": "corrupt", "x_empty.wav": "empty", "x_silent.flac": "silent",
          "x_text.wav": "not_audio", "x_truncated.flac": "truncated", "x_nan.wav": "non_finite",
          "x_rate.wav": "bad_sample_rate"}
N_GOOD = 24


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """An untrained smoke-config model saved as a run (1-s chunks)."""
  return save_untrained_run(str(tmp_path_factory.mktemp("tag_run")))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
  """24 good clips (wav/flac/mp3, 16 and 44.1 kHz, mono and stereo, 0.5-3.4 s) in two folders, and one file
  of each broken kind the decoder names."""
  root = tmp_path_factory.mktemp("library")
  rng = np.random.default_rng(0)
  for i in range(N_GOOD):
    sub = root / ("a" if i % 2 else "b")
    sub.mkdir(exist_ok=True)
    seconds = 0.5 + (i % 5) * 0.7
    if i % 3 == 0:
      sf.write(sub / f"c{i:02d}.flac", 0.2 * rng.standard_normal((int(seconds * 44100), 2)), 44100)
    elif i % 3 == 1:
      sf.write(sub / f"c{i:02d}.mp3", 0.2 * rng.standard_normal(int(seconds * 16000)), 16000)
    else:
      sf.write(sub / f"c{i:02d}.wav", 0.2 * rng.standard_normal(int(seconds * 16000)), 16000)
  (root / "x_corrupt.mp3").write_bytes(b"ID3 this is not audio" * 50)
  (root / "x_empty.wav").write_bytes(b"")
  sf.write(root / "x_silent.flac", np.zeros(16000), 16000)
  (root / "x_text.wav").write_text("just some text, no RIFF header\n" * 20)
  sf.write(root / "x_truncated.flac", 0.2 * rng.standard_normal(3 * 16000), 16000)
  data = (root / "x_truncated.flac").read_bytes()
  (root / "x_truncated.flac").write_bytes(data[:len(data) // 2])
  sf.write(root / "x_nan.wav", np.where(np.arange(16000) == 5, np.nan, 0.1), 16000, subtype="FLOAT")
  sf.write(root / "x_rate.wav", 0.2 * rng.standard_normal(300), 100)
  (root / ".hidden.wav").write_bytes(b"")
  return root


def tag_cmd(run, library, out, *extra):
  return [sys.executable, "-m", "jaxtag.tag", f"--workdir={run}", f"--input={library}", f"--out={out}",
          "--batch=8", "--workers=1", "--top=3", "--embeddings", "--taggram", *extra]


def read_rows(out):
  return shards.read_rows(str(out))


# --- pieces, in process --------------------------------------------------------------------------------------

def test_inputs_stream_lists_manifests_and_directories(tmp_path, library):
  (tmp_path / "list.txt").write_text("# a comment\nsong1.mp3\n\n/abs/song2.wav\n")
  (tmp_path / "m.jsonl").write_text('{"path": "s.mp3", "tags": ["rock"]}\nnot json\n{"no_path": 1}\n')
  assert [e.path for e in inputs.iter_entries(str(tmp_path / "list.txt"))] == [str(tmp_path / "song1.mp3"),
                                                                             "/abs/song2.wav"]
  m = list(inputs.iter_entries(str(tmp_path / "m.jsonl")))
  assert m[0].path == str(tmp_path / "s.mp3") and [e.error for e in m[1:]] == ["bad_input_row"] * 2
  assert m[1].where.endswith("m.jsonl:2")
  walked = [os.path.relpath(e.path, library) for e in inputs.iter_entries(str(library))]
  assert walked[:2] == ["x_corrupt.mp3", "x_empty.wav"] and len(walked) == N_GOOD + len(BROKEN)
  assert ".hidden.wav" not in walked and walked[len(BROKEN)].startswith("a/")
  shares = [list(inputs.my_share(iter(range(7)), p, 3)) for p in range(3)]
  assert shares == [[0, 3, 6], [1, 4], [2, 5]]
  done = inputs.DoneSet(np.array([inputs.path_key("x"), inputs.path_key("y")], np.uint64))
  assert "x" in done and "y" in done and "z" not in done and len(done) == 2
  with pytest.raises(FileNotFoundError, match="no such directory or file"):
    list(inputs.iter_entries(str(tmp_path / "nope")))


def test_shard_commit_is_the_tags_rename_and_orphans_are_ignored(tmp_path):
  out = str(tmp_path)
  w = shards.ShardWriter(out, 0, size=2, seconds=1e9)
  w.add_row("a", {"path": "a", "seconds": 1.0})
  w.add_error("b", "corrupt", "x")                        # 2 files: committed as shard 1
  w.add_row("c", {"path": "c", "seconds": 2.0})            # pending, as if killed now
  assert shards.committed(out) == ["p000-000001"] and w.pending() == 1
  done = shards.load_done(out)
  assert "a" in done and "b" in done and "c" not in done
  # a shard killed between its sidecars and its tags file: sidecars present, not committed, not "done"
  np.save(os.path.join(out, ".index", "keys-p001-000007.npy"), np.array([inputs.path_key("d")], np.uint64))
  assert "d" not in shards.load_done(out) and shards.next_sequence(out) == 8
  w.commit()
  totals = shards.finalize(out)
  assert totals == {"tagged": 2, "failed": 1, "failed_by_reason": {"corrupt": 1}, "audio_hours": 3 / 3600,
                    "shards": 2}
  assert not os.path.exists(os.path.join(out, ".index", "keys-p001-000007.npy"))
  assert [json.loads(s)["path"] for s in open(os.path.join(out, "errors.jsonl"))] == ["b"]


def test_parquet_shards_read_back_as_the_jsonl_rows(tmp_path):
  """The same rows through both formats: Parquet keeps float32 scores exactly, JSONL to 6 decimals; a run
  cannot mix the two in one output directory."""
  from jaxtag.core import choices
  from jaxtag.serving import tag
  rng = np.random.default_rng(3)
  rows = [{"path": f"f{i}", "duration": 1.5, "seconds": 1.5, "chunks": 2, "top": [["rock", 0.75], ["pop", 0.5]],
           "scores": rng.random(5).astype(np.float32), "embedding": rng.standard_normal(4).astype(np.float32),
           "taggram": rng.random((2, 5)).astype(np.float32)} for i in range(3)]
  back = {}
  for fmt in shards.FORMATS:
    w = shards.ShardWriter(str(tmp_path / fmt), 0, size=2, seconds=1e9, fmt=fmt)
    for r in rows:
      w.add_row(r["path"], r)
    w.commit()
    assert shards.formats_in(str(tmp_path / fmt)) == {fmt} and len(shards.committed(str(tmp_path / fmt))) == 2
    back[fmt] = shards.read_rows(str(tmp_path / fmt))
  for r, j, q in zip(rows, back["jsonl"], back["parquet"]):
    assert j["path"] == q["path"] == r["path"] and j["top"] == q["top"] == r["top"] and j["chunks"] == q["chunks"]
    np.testing.assert_array_equal(np.float32(q["scores"]), r["scores"])
    np.testing.assert_array_equal(np.float32(q["taggram"]), r["taggram"])
    np.testing.assert_allclose(j["embedding"], r["embedding"], atol=5e-7)
  (tmp_path / "config.json").write_text("{}")   # passes for a run directory up to the format check
  (tmp_path / "tags.json").write_text("[]")
  with pytest.raises(choices.ConfigError, match="already holds jsonl shards; resume it with --format=jsonl"):
    tag.run(str(tmp_path), str(tmp_path), str(tmp_path / "jsonl"), fmt="parquet")


def test_streaming_decoder_equals_load_audio(tmp_path):
  """Bit-identical to the whole-file decoder (soxr's stream = its one-shot resampler), and capped."""
  rng = np.random.default_rng(1)
  p = str(tmp_path / "s.flac")
  sf.write(p, 0.2 * rng.standard_normal((int(3.3 * 44100), 2)), 44100)
  whole = decode.load_audio(p, 16000)
  wave, seconds = decode.load_audio_stream(p, 16000)
  np.testing.assert_array_equal(wave, whole)
  assert seconds == pytest.approx(3.3, abs=1e-4)
  capped, seconds = decode.load_audio_stream(p, 16000, max_seconds=1.0)
  assert len(capped) == 16000 and seconds == pytest.approx(3.3, abs=1e-4)
  np.testing.assert_allclose(capped[:15000], whole[:15000], atol=1e-6)   # only the resampler's edge differs
  (tmp_path / "t.wav").write_bytes(b"RIFF garbage" * 10)
  with pytest.raises(decode.DecodeError) as e:
    decode.load_audio_stream(str(tmp_path / "t.wav"), 16000)
  assert e.value.reason in ("corrupt", "not_audio")


# --- the command ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resumed(run, library, tmp_path_factory):
  """``tag`` killed with SIGKILL (whole process group: the command and its decode workers) once a shard with
  tagged rows is committed, then the same command again."""
  out = tmp_path_factory.mktemp("tag_out") / "out"
  cmd = tag_cmd(run, library, out, "--shard_size=2")
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  try:
    deadline = time.monotonic() + 600
    while not read_rows(out):
      assert proc.poll() is None, proc.stderr.read()[-3000:]
      assert time.monotonic() < deadline
      time.sleep(0.02)
  finally:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
  before = read_rows(out)
  assert not (out / "summary.json").exists() and len(before) < N_GOOD   # killed mid-run
  second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert second.returncode == 0, second.stderr[-3000:]
  return out, before, second


def test_killed_run_resumes_every_good_file_once_with_predicts_scores(resumed, run, library):
  out, before, second = resumed
  rows = read_rows(out)
  paths = [r["path"] for r in rows]
  good = sorted(str(p) for p in library.rglob("c*.*"))
  assert sorted(paths) == good                                   # each good file exactly once
  assert {r["path"] for r in before} <= set(paths)               # committed rows kept, not redone
  summary = json.loads((out / "summary.json").read_text())
  assert summary["this_run"]["tagged"] == N_GOOD - len(before)
  # the reference: jaxtag.serving.predict's own functions on the same files
  tagger = inference.RunModel(run, batch=16, embeddings=True)
  ref, failures = predict.tag_files(tagger, good, top=3, want_embeddings=True)
  assert not failures
  tags = json.loads((out / "tags.json").read_text())
  assert tags == list(tagger.tags)
  by_path = {r["path"]: r for r in rows}
  for r in ref:
    row = by_path[r["file"]]
    assert row["chunks"] == r["chunks"] and row["seconds"] == pytest.approx(r["seconds"], abs=1e-4)
    np.testing.assert_allclose(row["scores"], r["scores"], atol=1e-5)
    np.testing.assert_allclose(row["taggram"], r["taggram"], atol=1e-5)
    np.testing.assert_allclose(row["embedding"], r["embeddings"].mean(axis=0), atol=1e-5, rtol=1e-5)
    assert [t for t, _ in row["top"]] == [t for t, _ in r["top"]]
  # every broken file once, with the decoder's reason; the exit status was 0 all the same
  errors = [json.loads(line) for line in open(out / "errors.jsonl")]
  assert {os.path.basename(e["path"]): e["reason"] for e in errors} == BROKEN and len(errors) == len(BROKEN)
  assert summary["tagged"] == N_GOOD and summary["failed_by_reason"] == {v: 1 for v in BROKEN.values()}
  assert summary["audio_hours"] == pytest.approx(sum(r["seconds"] for r in ref) / 3600, rel=1e-4)
  assert f"done: {N_GOOD} files tagged, {len(BROKEN)} failed" in second.stdout
  assert not glob.glob(str(out / "**" / "*.tmp-*"), recursive=True)


def test_two_processes_give_the_same_rows_as_one(resumed, run, library, tmp_path):
  """``launch/local_multiprocess.sh -m jaxtag.tag``: 2 processes x 2 CPU devices, one output directory."""
  from test_multiprocess import _free_port, launch_env
  out, logs = tmp_path / "out2", tmp_path / "logs"
  flags = tag_cmd(run, library, out, "--format=parquet")[3:]   # and the Parquet shards hold the same rows
  proc = subprocess.run(["bash", os.path.join(ROOT, "launch", "local_multiprocess.sh"), "-n", "2", "-d", "2",
                         "-p", str(_free_port()), "-l", str(logs), "-m", "jaxtag.tag", "--", *flags],
                        cwd=ROOT, env=launch_env(), capture_output=True, text=True, timeout=600)
  tails = "\n".join(p.read_text()[-2000:] for p in sorted(logs.glob("process_*.log")))
  assert proc.returncode == 0, tails
  rows = {r["path"]: r for r in read_rows(out)}
  one = {r["path"]: r for r in read_rows(resumed[0])}
  assert sorted(rows) == sorted(one)
  assert {os.path.basename(p).split("-")[1] for p in glob.glob(str(out / "tags-*.parquet"))} == {"p000", "p001"}
  for p, r in rows.items():
    np.testing.assert_allclose(r["scores"], one[p]["scores"], atol=1e-5)
    np.testing.assert_allclose(r["embedding"], one[p]["embedding"], atol=1e-5, rtol=1e-5)
  summary = json.loads((out / "summary.json").read_text())
  assert summary["this_run"]["processes"] == 2 and summary["tagged"] == N_GOOD and summary["failed"] == len(BROKEN)
  assert "done: 24 files tagged" in (logs / "process_0.log").read_text()


def test_worker_spills_big_inputs_and_caps_long_files(tmp_path, monkeypatch):
  """A long file's chunks come back through a scratch file (no pickled copy); ``max_seconds`` caps it."""
  from jaxtag.models.contract import Contract
  from jaxtag.serving import tag_worker as worker
  p = str(tmp_path / "long.flac")
  sf.write(p, 0.2 * np.random.default_rng(2).standard_normal((int(6.5 * 22050), 2)), 22050)
  contract = Contract("chunks", 16000, 16000)   # 1-s waveform chunks at 16 kHz
  direct = worker.decode_file(p, contract, None)
  assert direct["chunks"].shape == (6, 16000) and direct["duration"] == pytest.approx(6.5, abs=1e-4)
  monkeypatch.setattr(worker, "SPILL_BYTES", 1000)
  spilled = worker.decode_file(p, contract, None, scratch=str(tmp_path))
  chunks = worker.load_chunks(spilled)
  np.testing.assert_array_equal(chunks, direct["chunks"])
  assert "chunks" not in spilled and not os.path.exists(spilled["chunks_file"])
  capped = worker.decode_file(p, contract, 2.0)
  assert capped["chunks"].shape == (2, 16000) and capped["seconds"] == 2.0 and capped["duration"] > 6
  assert worker.decode_file(str(tmp_path / "nope.wav"), contract, None)["reason"] == "missing"


def test_a_file_that_kills_its_worker_fails_alone(run, library, tmp_path, monkeypatch):
  """A file whose decode worker dies (here: ``os._exit`` in the worker, as an OOM kill would) is retried alone
  and failed as ``worker_crashed`` after ``MAX_TRIES`` deaths; the files in flight beside it are tagged."""
  import shutil
  import crashing_decoder
  from jaxtag.serving import tag
  lib = tmp_path / "lib"
  lib.mkdir()
  good = sorted(library.rglob("c0*.wav"))[:3]
  for p in good:
    shutil.copy(p, lib / p.name)
  shutil.copy(good[0], lib / "crash.wav")
  monkeypatch.setattr(tag.worker, "decode_file", crashing_decoder.decode_file)
  summary = tag.run(run, str(lib), str(tmp_path / "out"), top=3, batch=8, workers=2, progress_seconds=1e9)
  assert sorted(os.path.basename(r["path"]) for r in read_rows(tmp_path / "out")) == sorted(p.name for p in good)
  errors = [json.loads(line) for line in open(tmp_path / "out" / "errors.jsonl")]
  assert [(os.path.basename(e["path"]), e["reason"]) for e in errors] == [("crash.wav", "worker_crashed")]
  assert f"died {tag.MAX_TRIES} times" in errors[0]["detail"]
  assert summary["tagged"] == 3 and summary["failed_by_reason"] == {"worker_crashed": 1}
