"""jaxtag.serving.predict on a directory of good files in several formats and one corrupt file, and on musicnn's
imported MTT weights against musicnn's own outputs."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, SHARED, save_untrained_run
from jaxtag.serving import inference, predict


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """An untrained smoke-config model saved as a run (1-s chunks): predict needs no training to be tested."""
  return save_untrained_run(str(tmp_path_factory.mktemp("predict_run")))


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("mine")
  rng = np.random.default_rng(0)
  sf.write(d / "a_16k_mono.wav", 0.2 * rng.standard_normal(int(2.5 * 16000)), 16000)        # 2 chunks
  sf.write(d / "b_44k_stereo.flac", 0.2 * rng.standard_normal((int(1.7 * 44100), 2)), 44100)  # 1 chunk
  sf.write(d / "c_short.ogg", 0.2 * rng.standard_normal(4000), 16000)                       # padded to 1
  (d / "d_corrupt.mp3").write_bytes(b"ID3 this is not audio" * 50)
  (d / ".hidden.wav").write_bytes(b"")                                                     # ignored
  return str(d)


def test_directory_with_a_corrupt_file(run, audio_dir, tmp_path):
  png, emb = str(tmp_path / "tg.png"), str(tmp_path / "emb.npz")
  proc = subprocess.run([sys.executable, "-m", "jaxtag.predict", audio_dir, f"--workdir={run}", "--top=5", "--json",
                         f"--taggram={png}", f"--embeddings={emb}"], cwd=ROOT, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 1, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "d_corrupt.mp3" in errors[0] and ".hidden" not in proc.stderr
  out = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [os.path.basename(o["file"]) for o in out] == ["a_16k_mono.wav", "b_44k_stereo.flac", "c_short.ogg"]
  assert [o["chunks"] for o in out] == [2, 1, 1]
  z = np.load(emb)
  assert z["embeddings"].shape == (4, 64) and np.isfinite(z["embeddings"]).all()   # smoke back-end: 64 units
  assert z["chunk_file"].tolist() == [0, 0, 1, 2] and z["taggram"].shape == (4, len(z["tags"]))
  for i, o in enumerate(out):
    mean = z["taggram"][z["chunk_file"] == i].mean(axis=0)
    order = np.argsort(-mean, kind="stable")[:5]
    assert [t["tag"] for t in o["tags"]] == [str(z["tags"][t]) for t in order]
    np.testing.assert_allclose([t["score"] for t in o["tags"]], mean[order], rtol=1e-5)
  for stem in ("a_16k_mono", "b_44k_stereo", "c_short"):
    assert os.path.getsize(tmp_path / f"tg_{stem}.png") > 3000


def test_chunking_and_file_listing(audio_dir):
  assert predict.chunk_wave(np.arange(25, dtype=np.float32), 10).tolist() == [list(range(10)), list(range(10, 20))]
  assert predict.chunk_wave(np.ones(4, np.float32), 10).tolist() == [[1, 1, 1, 1] + [0] * 6]
  names = [os.path.basename(f) for f in predict.list_files([audio_dir])]
  assert names == ["a_16k_mono.wav", "b_44k_stereo.flac", "c_short.ogg", "d_corrupt.mp3"]


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "musicnn_ref")), reason="needs ../shared/musicnn_ref")
def test_imported_musicnn_tags_the_reference_wav(tmp_path):
  from jaxtag.tools import import_musicnn
  ref_dir = os.path.join(SHARED, "musicnn_ref")
  w = str(tmp_path / "MTT_musicnn")
  import_musicnn.import_musicnn(os.path.join(ref_dir, "MTT_musicnn_weights.npz"), w)
  tagger = inference.RunModel(w, batch=16)
  res, failures = predict.tag_files(tagger, [os.path.join(ref_dir, "synth_chords_clicks_16k.wav")], top=10)
  assert not failures and res[0]["chunks"] == 3
  ref = np.load(os.path.join(ref_dir, "MTT_musicnn_synth_outputs.npz"))
  ref_mean = ref["prob"].mean(axis=0)
  ref_top = [str(ref["tags"][t]) for t in np.argsort(-ref_mean)[:10]]
  ours = [t for t, _ in res[0]["top"]]
  assert ours == ref_top and ours[:5] == ["slow", "guitar", "beat", "electronic", "synth"]
  # the run's contract feeds musicnn's own patches of one whole-file log-mel (tests/test_contract.py)
  np.testing.assert_allclose(res[0]["scores"], ref_mean, atol=1e-4)
