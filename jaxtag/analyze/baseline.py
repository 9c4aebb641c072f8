"""The paper's baseline: hand-crafted audio features and one gradient-boosted-trees model per tag.

Pandora's baseline was "GBT + features", one model per tag (Pons et al. 2018). We rebuild it from what runs
anywhere: mel / MFCC statistics, spectral shape, an onset envelope and its autocorrelation (tempo-like), and
scikit-learn's ``HistGradientBoostingClassifier`` per tag, trained on the same train split as the deep models.
Its test predictions go through the same ``report`` code, so it is one more row of the results table and the
"independent" column of ``analyze exclusive``.
"""
from __future__ import annotations

import logging
import os

import numpy as np
from scipy import fft as sfft

from jaxtag.core import choices
from jaxtag.evaluation import report
from jaxtag.models.logmel import mel_filterbank

N_FFT, HOP, N_MELS, N_MFCC = 512, 256, 40, 20
BPM_EDGES = (40, 60, 80, 100, 120, 140, 170, 200, 240)   # tempo bins for the onset autocorrelation


def _stats(x: np.ndarray) -> list[np.ndarray]:
  return [x.mean(axis=0), x.std(axis=0)]


def features(wave: np.ndarray, sr: int) -> np.ndarray:
  """One fixed-length vector per song (164 values): the kind of features a per-tag GBT baseline is fed."""
  wave = np.asarray(wave, np.float32)
  if len(wave) < N_FFT:
    wave = np.pad(wave, (0, N_FFT - len(wave)))
  frames = np.lib.stride_tricks.sliding_window_view(wave, N_FFT)[::HOP]
  power = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1)) ** 2 + 1e-12       # (F, 257)
  freqs = np.fft.rfftfreq(N_FFT, 1.0 / sr)
  log_mel = 10 * np.log10(power @ mel_filterbank(sr, N_FFT, N_MELS, 0.0, sr / 2) + 1e-10)   # (F, 40) dB
  mfcc = sfft.dct(log_mel, type=2, norm="ortho", axis=1)[:, :N_MFCC]
  total = power.sum(axis=1)
  centroid = power @ freqs / total
  spread = np.sqrt(power @ freqs ** 2 / total - centroid ** 2)
  rolloff = freqs[np.argmax(np.cumsum(power, axis=1) >= 0.85 * total[:, None], axis=1)]
  flatness = np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)
  rms = np.sqrt((frames ** 2).mean(axis=1))
  zcr = (np.diff(np.signbit(frames), axis=1) != 0).mean(axis=1)
  shape = np.stack([centroid, spread, rolloff, flatness, rms, zcr], axis=1)
  onset = np.maximum(np.diff(log_mel, axis=0), 0).sum(axis=1) if len(log_mel) > 1 else np.zeros(1)
  return np.concatenate(_stats(log_mel) + _stats(mfcc) + [np.diff(mfcc, axis=0).std(axis=0) if len(mfcc) > 1
                                                        else np.zeros(N_MFCC)]
                        + _stats(shape) + [_tempo_features(onset, sr / HOP)]).astype(np.float32)


def _tempo_features(onset: np.ndarray, frame_rate: float) -> np.ndarray:
  """Onset-strength statistics and the onset autocorrelation's peak per tempo band, plus the best tempo."""
  o = onset - onset.mean()
  ac = np.correlate(o, o, "full")[len(o) - 1:]
  ac = ac / ac[0] if ac[0] > 0 else np.zeros_like(ac)
  lags = np.arange(len(ac))
  bpm = np.where(lags > 0, 60.0 * frame_rate / np.maximum(lags, 1), np.inf)
  bands = [ac[(bpm >= lo) & (bpm < hi)].max(initial=0.0) for lo, hi in zip(BPM_EDGES[:-1], BPM_EDGES[1:])]
  valid = (bpm >= BPM_EDGES[0]) & (bpm < BPM_EDGES[-1])
  best = float(bpm[valid][np.argmax(ac[valid])]) if valid.any() else 0.0
  return np.array([onset.mean(), onset.std(), onset.max(), best, *bands])


def extract(songs, sample_rate: int) -> np.ndarray:
  """Feature rows for songs, decoded by the data layer; a file that fails to decode gets a NaN row."""
  from jaxtag.data import decode
  rows, bad = [], 0
  for song in songs:
    try:
      rows.append(features(decode.load_audio(song.path, sample_rate), sample_rate))
    except decode.DecodeError as e:
      logging.warning("baseline: skipping %s (%s)", song.path, getattr(e, "reason", e))
      rows.append(None)
      bad += 1
  width = next((len(r) for r in rows if r is not None), 0)
  if bad:
    logging.warning("baseline: %d of %d files could not be decoded", bad, len(rows))
  return np.stack([r if r is not None else np.full(width, np.nan, np.float32) for r in rows])


def fit_predict(x_train, y_train, x_test, seed: int = 0, max_iter: int = 100) -> np.ndarray:
  """One gradient-boosted-trees classifier per tag (independent models); returns (n_test, T) probabilities.

  Training rows with NaN features (undecodable files) are dropped; test rows with NaN get NaN scores, so they
  count as missing songs exactly as they do for the deep models. A tag with one class in training predicts its
  training rate.
  """
  from sklearn.ensemble import HistGradientBoostingClassifier
  y_train = np.asarray(y_train) >= choices.POSITIVE_THRESHOLD
  ok = ~np.isnan(x_train).any(axis=1)
  x_train, y_train = x_train[ok], y_train[ok]
  out = np.full((len(x_test), y_train.shape[1]), np.nan, np.float32)
  test_ok = ~np.isnan(x_test).any(axis=1)
  for t in range(y_train.shape[1]):
    if y_train[:, t].all() or not y_train[:, t].any():
      out[test_ok, t] = y_train[:, t].mean()
      continue
    clf = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.1, early_stopping=False,
                                         random_state=seed)
    clf.fit(x_train, y_train[:, t])
    out[test_ok, t] = clf.predict_proba(x_test[test_ok])[:, 1]
  return out


def _cached_rows(cache: str, ids: np.ndarray):
  """The cached feature rows of ``ids`` when the cache holds every one of them (a larger run's cache serves a
  train subset: features are per song), else None."""
  if not os.path.exists(cache):
    return None
  with np.load(cache) as f:
    where = {i: n for n, i in enumerate(f["ids"])}
    if not all(i in where for i in ids):
      return None
    return f["x"][[where[i] for i in ids]]


def run(config, workdir: str, split: str = "test", max_iter: int = 100) -> dict:
  """Features for the train and ``split`` songs (cached in ``W/report``), per-tag GBTs, predictions and report."""
  from jaxtag.data import index as data_index
  idx = data_index.load_songs(config.data)
  train, test = idx.split("train"), idx.split(split)
  sr = config.data.sample_rate
  cache = os.path.join(report.report_dir(workdir), "baseline_features.npz")
  os.makedirs(report.report_dir(workdir), exist_ok=True)
  ids = np.array([s.id for s in list(train) + list(test)], str)
  cached = _cached_rows(cache, ids)
  if cached is not None:
    x = cached
  else:
    x = extract(list(train) + list(test), sr)
    np.savez(cache, ids=ids, x=x)
  x_train, x_test = x[:len(train)], x[len(train):]
  y_train = np.stack([s.targets for s in train])
  scores = fit_predict(x_train, y_train, x_test, config.seed, max_iter)
  pos, cooc, n = report.train_label_stats(y_train)
  p = report.Predictions(song_ids=np.array([s.id for s in test], str), scores=scores,
                         targets=np.stack([s.targets for s in test]).astype(np.float32),
                         tags=np.asarray(idx.tags, str), dataset=report.dataset_name(config.data),
                         split=split, step=0, train_pos=pos, train_cooc=cooc, n_train=n)
  report.save_predictions(report.predictions_path(workdir, split), p)
  return report.write_report(report.report_dir(workdir), p, {"title": report.title(config.data, split),
                                                            "model": "baseline", "checkpoint": "gbt"})
