"""Evaluation protocols (all chunks vs Won et al.'s 16 crops) on a hand-made song, each robustness
perturbation measured on real audio, and ``analyze robustness`` on an untrained run writing its table and plot."""
import json
import os

import numpy as np
import pytest

from jaxtag.analyze import robustness
from jaxtag.core import choices, scoring
from jaxtag.data import protocols
from jaxtag.models import contract

SR = 16000


def test_all_chunks_and_16_crops_on_a_hand_made_song():
  c = contract.Contract("chunks", SR, 4)
  wave = np.arange(54, dtype=np.float32)   # 54 samples, chunks of 4
  chunks = c.model_inputs(wave, SR)
  crops = protocols.inputs_for(c, "crops16").model_inputs(wave, SR)
  # all chunks: 13 chunks at 0, 4, ..., 48 (samples 52, 53 dropped); 16 crops: hop (54 - 4) // 16 = 3
  assert [int(x[0]) for x in chunks] == list(range(0, 52, 4))
  assert [int(x[0]) for x in crops] == [3 * i for i in range(16)] and crops.shape == (16, 4)
  # a "model" whose score is the mean of its input: song score = mean over the inputs, as evaluate averages
  song_chunks = scoring.aggregate_chunks(chunks.mean(axis=1, keepdims=True), np.zeros(13, int), 1)[0, 0]
  song_crops = scoring.aggregate_chunks(crops.mean(axis=1, keepdims=True), np.zeros(16, int), 1)[0, 0]
  assert song_chunks == pytest.approx(25.5)   # mean of 0..51
  assert song_crops == pytest.approx(24.0)    # mean over i of (3 i + 1.5), i = 0..15
  short = protocols.inputs_for(c, "crops16").model_inputs(np.ones(3, np.float32), SR)
  assert short.shape == (16, 4) and np.all(short == [1, 1, 1, 0])   # padded to one chunk, 16 times
  patches = contract.Contract("musicnn_patches", SR, 48000, {"n_mels": 96}, 187, 187)
  with pytest.raises(choices.ConfigError, match="crops16"):
    protocols.inputs_for(patches, "crops16")


def _music(seconds=2.0, f=440.0):
  t = np.arange(int(seconds * SR)) / SR
  return (0.3 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(2 * np.pi * 2.5 * f * t)).astype(np.float32)


def _peak_hz(x):
  spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
  return np.argmax(spec) * SR / len(x)


def test_each_perturbation_changes_the_audio_by_the_requested_amount():
  x = _music()
  for snr in (40.0, 10.0, 0.0):
    y = robustness.Perturbation("white_noise", snr)(x, SR)
    measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert abs(measured - snr) < 0.1
  np.testing.assert_array_equal(robustness.Perturbation("white_noise", 10.0)(x, SR),
                                robustness.Perturbation("white_noise", 10.0)(x, SR))   # same song, same noise
  for db in (-20.0, 10.0):
    y = robustness.Perturbation("gain", db)(x, SR)
    assert 20 * np.log10(np.sqrt(np.mean(y ** 2) / np.mean(x ** 2))) == pytest.approx(db, abs=1e-3)
  for rate in (0.7, 1.4):
    y = robustness.Perturbation("time_stretch", rate)(x, SR)
    assert len(y) / len(x) == pytest.approx(1 / rate, rel=0.01)
    assert _peak_hz(y) == pytest.approx(440.0, abs=3.0)   # same pitch
  y = robustness.Perturbation("pitch_shift", 2.0)(x, SR)
  assert len(y) == len(x) and _peak_hz(y) == pytest.approx(440.0 * 2 ** (2 / 12), abs=4.0)
  rates, snrs = [], []
  for level in (0.5, 0.9):
    y, kbps = robustness.mp3_round_trip(x, SR, level)
    assert len(y) == len(x)
    rates.append(kbps)
    snrs.append(10 * np.log10(np.mean(x ** 2) / np.mean((y - x) ** 2)))
  assert rates[0] > rates[1] > 0 and snrs[0] > 10   # the decoder's delay is undone (else the SNR is ~0 dB)
  with pytest.raises(choices.ConfigError):
    robustness.parse(["reverb:1"])


def test_analyze_robustness_on_an_untrained_run_writes_table_and_plot(tmp_path):
  from configs import smoke
  from jaxtag.training import checkpoint
  from jaxtag.data import generate
  config = smoke.get_config()
  config.data.update(dataset="generated", generated_n=40, generated_clip_seconds=2.0, chunk_seconds=1.0,
                     cache_dir=str(tmp_path / "cache"), num_workers=0)
  config.eval.batch_size = 16
  tags = list(generate.TAGS)
  run = str(tmp_path / "run")
  checkpoint.save_inference_checkpoint(run, config, checkpoint.new_model(config, len(tags)), tags)
  res = robustness.run([run], "test", ["gain:-20", "white_noise:0", "mp3:0.9"])[run]
  assert [r["kind"] for r in res["rows"]] == ["gain", "white_noise", "mp3"] and res["rows"][2]["kbps"] > 0
  assert all(0 <= r["roc_auc"] <= 1 and r["songs"] == res["clean"]["songs"] > 0 for r in res["rows"])
  assert res["rows"][1]["roc_auc"] != res["clean"]["roc_auc"]   # 0 dB noise changes the scores
  with open(res["files"]["json"]) as f:
    assert json.load(f)["rows"] == res["rows"]
  md = open(res["files"]["md"]).read()
  assert "| white_noise | 0 SNR dB |" in md and f"{100 * res['clean']['roc_auc']:.2f}" in md
  assert os.path.getsize(res["files"]["png"]) > 5000
