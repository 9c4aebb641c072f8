"""The preprocessing contract: imported musicnn tags exactly as musicnn (per patch and through ``predict`` on an
MP3), inputs follow the stored contract (sample rate, patches, overlap), evaluate feeds the same inputs."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, SHARED, data_config
from jaxtag.models import contract
from jaxtag.serving import inference, predict

REF = os.path.join(SHARED, "musicnn_ref")
MP3_REF = os.path.join(ROOT, "tests", "data", "musicnn_mp3")
WAV = os.path.join(REF, "synth_chords_clicks_16k.wav")
needs_ref = pytest.mark.skipif(not os.path.isdir(REF), reason="../shared/musicnn_ref not present")


def _musicnn_contract(hop=contract.PATCH_FRAMES):
  return contract.Contract("musicnn_patches", 16000, 48000, {
      "n_fft": 512, "hop": 256, "n_mels": 96, "fmin": 0.0, "fmax": 8000.0, "log_scale": 10000.0,
      "float16_rounding": True}, contract.PATCH_FRAMES, hop)


@pytest.fixture(scope="module")
def mtt_run(tmp_path_factory):
  """The MTT musicnn weights imported as a run, and its inference model (compiled once for the module)."""
  from jaxtag.tools import import_musicnn
  w = str(tmp_path_factory.mktemp("runs") / "MTT_musicnn")
  import_musicnn.import_musicnn(os.path.join(REF, "MTT_musicnn_weights.npz"), w)
  return w, inference.RunModel(w, batch=4)


@needs_ref
def test_patches_equal_musicnn_bit_for_bit():
  """musicnn's exact network input (synth_logmel.npz, from musicnn's batch_data) from the decoded wav."""
  audio, sr = sf.read(WAV, dtype="float32")
  patches = _musicnn_contract().model_inputs(audio, sr)
  np.testing.assert_array_equal(patches, np.load(os.path.join(REF, "synth_logmel.npz"))["patches"])


@needs_ref
def test_imported_run_stores_musicnn_contract_and_matches_per_patch(mtt_run):
  w, tagger = mtt_run
  with open(os.path.join(w, "contract.json")) as f:
    stored = json.load(f)
  assert stored["kind"] == "musicnn_patches" and stored["sample_rate"] == 16000
  assert stored["patch_frames"] == stored["patch_hop"] == 187 and stored["logmel"]["float16_rounding"]
  assert tagger.contract == _musicnn_contract()
  assert contract.for_run(w, tagger.config, overlap_seconds=1.0) == _musicnn_contract(hop=61)   # --input_overlap=1
  audio, sr = sf.read(WAV, dtype="float32")
  prob = tagger.run(tagger.contract.model_inputs(audio, sr))[0]
  ref = np.load(os.path.join(REF, "MTT_musicnn_synth_outputs.npz"))
  err = np.abs(prob - ref["prob"]).max()
  print(f"per-patch max |prob - musicnn| = {err:.2e}")
  assert prob.shape == (3, 50) and err <= 1e-4


@needs_ref
def test_predict_on_mp3_matches_musicnn_on_that_mp3(mtt_run):
  """Reference: musicnn 0.1.0 itself on the committed MP3 (tests/data/musicnn_mp3/make_reference.py)."""
  _, tagger = mtt_run
  with open(os.path.join(MP3_REF, "MTT_musicnn_mp3_reference.json")) as f:
    ref = json.load(f)
  res, failures = predict.tag_files(tagger, [os.path.join(MP3_REF, ref["mp3"])], top=10)
  assert not failures and res[0]["chunks"] == len(ref["taggram"]) == 3
  assert [str(t) for t in tagger.tags] == ref["tags"]
  err = np.abs(res[0]["scores"] - np.asarray(ref["mean"])).max()
  print(f"mp3: max |mean prob - musicnn| = {err:.2e}; taggram {np.abs(res[0]['taggram'] - ref['taggram']).max():.2e}")
  assert err <= 1e-3
  assert [t for t, _ in res[0]["top"]] == ref["top10"]


@needs_ref
def test_resamples_any_rate_to_the_contract():
  """44.1 kHz input is resampled to 16 kHz first: the same patches as resampling by hand (soxr HQ)."""
  import soxr
  audio, _ = sf.read(WAV, dtype="float32")
  high = soxr.resample(audio, 16000, 44100, quality="HQ").astype(np.float32)
  c = _musicnn_contract()
  np.testing.assert_array_equal(c.model_inputs(high, 44100),
                                c.model_inputs(soxr.resample(high, 44100, 16000, quality="HQ"), 16000))
  chunks = contract.Contract("chunks", 16000, 16000)
  assert chunks.model_inputs(high, 44100).shape == (10, 16000)
  with pytest.raises(ValueError, match="mono"):
    c.model_inputs(np.zeros((48000, 2), np.float32), 16000)


def test_chunks_patching_and_overlap_follow_musicnn():
  librosa = pytest.importorskip("librosa")
  chunks = contract.Contract("chunks", 16000, 10)
  np.testing.assert_array_equal(chunks.model_inputs(np.arange(25, dtype=np.float32), 16000),
                                predict.chunk_wave(np.arange(25, dtype=np.float32), 10))
  assert chunks.model_inputs(np.ones(4, np.float32), 16000).shape == (1, 10)   # short: padded to one
  for s in (1, 1.5, 2):   # musicnn's input_overlap=s: patch hop librosa.time_to_frames(s)
    assert contract.musicnn_hop_frames(s) == int(librosa.time_to_frames(s, sr=16000, n_fft=512, hop_length=256))
  wave = np.random.default_rng(0).standard_normal(16000 * 7).astype(np.float32) * 0.1
  c, full = _musicnn_contract(hop=contract.musicnn_hop_frames(1.0)), contract.logmel_numpy(
      wave, **_musicnn_contract().logmel, sample_rate=16000)
  p = c.model_inputs(wave, 16000)
  assert len(full) == 1 + len(wave) // 256 and p.shape == ((len(full) - 187) // 61 + 1, 187, 96)
  np.testing.assert_array_equal(p[2], full[122:309])
  assert _musicnn_contract().model_inputs(wave[:20000], 16000).shape == (1, 187, 96)   # < 3 s: padded to 3 s
  mel = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=512, hop_length=256, n_mels=96).T
  np.testing.assert_allclose(full, np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1), atol=5e-4)


def test_contract_from_config_and_run(tmp_path):
  from configs import smoke
  from jaxtag.training import checkpoint
  from jaxtag.tools import import_musicnn
  config = smoke.get_config()
  c = contract.from_config(config)
  assert c.kind == "chunks" and c.chunk_samples == int(round(config.data.chunk_seconds * 16000)) and c.logmel["n_mels"] == 96
  assert contract.from_config(smoke.get_config("waveform")).logmel is None
  with pytest.raises(ValueError, match="musicnn runs only"):
    contract.from_config(config, overlap_seconds=1.0)
  legacy = import_musicnn.musicnn_config("MTT_vgg")
  del legacy.data["input_pipeline"]          # a run imported before the contract existed
  assert contract.from_config(legacy) == _musicnn_contract()
  checkpoint.write_run_info(str(tmp_path), config, ["a", "b"])
  assert contract.for_run(str(tmp_path), config) == c
  config.data.sample_rate = 22050            # config edited after the run was written: refuse
  with pytest.raises(ValueError, match="disagrees with config.json.*sample_rate"):
    contract.for_run(str(tmp_path), config)
  config.data.input_pipeline = "spectrogram"
  with pytest.raises(ValueError, match="valid: 'chunks', 'musicnn_patches'"):
    contract.from_config(config)


def test_eval_batches_feed_the_contract_inputs(tmp_path):
  """``evaluate`` feeds each song's contract inputs (here musicnn patches), padded to a fixed batch."""
  from jaxtag.data import pipeline
  from jaxtag.data.songs import Song
  rng = np.random.default_rng(1)
  lengths = [16000 * 7, 16000 * 2, 16000 * 4]
  songs = []
  for i, n in enumerate(lengths):
    path = str(tmp_path / f"s{i}.flac")
    sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000)
    songs.append(Song(str(i), path, np.zeros(2, np.float32), "test"))
  c = _musicnn_contract()
  batches = list(pipeline.eval_batches(data_config(chunk_seconds=3.0), songs, batch=4, contract=c))
  audio = np.concatenate([b["audio"] for b in batches])
  song = np.concatenate([b["song"] for b in batches])
  assert audio.shape[1:] == (187, 96) and song.tolist() == [0, 0, 1, 2]
  want = [c.model_inputs(sf.read(s.path, dtype="float32")[0], 16000) for s in songs]
  np.testing.assert_allclose(audio[:4], np.concatenate(want), atol=1e-6)


@needs_ref
def test_evaluate_path_feeds_musicnn_patches(mtt_run):
  """``evaluate``'s inference (the device mesh, the eval pipeline) gives the imported run the same patches,
  hence the same per-patch logits, as ``predict``."""

  from jaxtag.core import scoring
  from jaxtag.data.songs import Song
  w, tagger = mtt_run
  from jaxtag.training import checkpoint
  _, _, model, _ = checkpoint.load_for_inference(w)
  songs = [Song("synth", WAV, np.zeros(50, np.float32), "test")]
  logits, song = inference.predict_chunks(model, tagger.config, songs, batch=8,
                                          contract=contract.for_run(w, tagger.config))
  ref = np.load(os.path.join(REF, "MTT_musicnn_synth_outputs.npz"))
  assert song.tolist() == [0, 0, 0]
  assert np.abs(scoring.sigmoid(logits) - ref["prob"]).max() <= 1e-4
