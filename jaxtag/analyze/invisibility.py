"""Proof that the testbed's invisible families are invisible to a log-mel, and visible in the waveform.

``python -m jaxtag.analyze.invisibility --n=400`` (or ``--manifest=M``): for every invisible tag of
``jaxtag.data.render.evidence``, three probes are fit on half the clips (artist-disjoint halves when the rows
name artists) and scored on the other half, then the other way round (mean ROC-AUC of the two folds):

- *log-mel probe*: an L2 logistic regression on per-band statistics (mean, std, mean |delta|) of a log-mel of
  the paper's shape (96 Slaney bands, 512-sample Hann window, 256 hop, 16 kHz): 288 features;
- *GBT probe*: the per-tag gradient-boosted trees of ``jaxtag.analyze.baseline`` on its 164 features
  (optional, slower);
- *oracle probe*: the same logistic regression on the tag's one waveform feature
  (``evidence.oracle_features``: folded-period crest factor, 2-10 ms autocorrelation, cents off the grid).

Near 0.5 for the log-mel and high for the oracle is what "invisible to the spectrogram front-end" means here.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from jaxtag.data.render import evidence
from jaxtag.models.logmel import mel_filterbank

N_FFT, HOP, N_MELS = 512, 256, 96


def logmel(wave: np.ndarray, sr: int = 16000) -> np.ndarray:
  """(frames, 96) dB log-mel with the paper's front-end shape (numpy; same filterbank as the model's)."""
  wave = np.asarray(wave, np.float32)
  frames = np.lib.stride_tricks.sliding_window_view(np.pad(wave, N_FFT // 2, mode="reflect"), N_FFT)[::HOP]
  power = np.abs(np.fft.rfft(frames * np.hanning(N_FFT + 1)[:-1], axis=1)) ** 2
  return 10 * np.log10(power @ mel_filterbank(sr, N_FFT, N_MELS, 0.0, sr / 2) + 1e-10)


def logmel_features(wave: np.ndarray, sr: int = 16000) -> np.ndarray:
  m = logmel(wave, sr)
  return np.concatenate([m.mean(0), m.std(0), np.abs(np.diff(m, axis=0)).mean(0)]).astype(np.float32)


def halves(n: int, groups=None, seed: int = 0) -> np.ndarray:
  """A boolean 'fit' mask over ``n`` rows: half of the groups (artists) when given, else half of the rows."""
  rng = np.random.default_rng(seed)
  if groups is None:
    return rng.permutation(n) < n // 2
  uniq = np.array(sorted(set(groups)))
  fit_groups = set(uniq[rng.permutation(len(uniq)) < len(uniq) // 2])
  return np.array([g in fit_groups for g in groups])


def probe_auc(x: np.ndarray, y: np.ndarray, fit: np.ndarray, model: str = "logistic") -> float:
  """Held-out ROC-AUC, two-fold: fit on the ``fit`` rows and score the others, then the other way round; the mean."""
  return 0.5 * (_one_way(x, y, fit, model) + _one_way(x, y, ~fit, model))


def _one_way(x: np.ndarray, y: np.ndarray, fit: np.ndarray, model: str) -> float:
  from sklearn.linear_model import LogisticRegression
  from sklearn.metrics import roc_auc_score
  x = np.asarray(x, np.float64).reshape(len(y), -1)
  if model == "gbt":
    from sklearn.ensemble import HistGradientBoostingClassifier
    clf = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x[fit], y[fit])
  else:
    mu, sd = x[fit].mean(0), x[fit].std(0) + 1e-9
    x = (x - mu) / sd
    clf = LogisticRegression(C=0.1, max_iter=2000).fit(x[fit], y[fit])
  return float(roc_auc_score(y[~fit], clf.predict_proba(x[~fit])[:, 1]))


def measure(waves, states: list[dict], groups=None, gbt: bool = False, seed: int = 0) -> dict:
  """Per invisible tag: positives, log-mel probe, (GBT probe,) oracle probe ROC-AUCs on held-out halves."""
  fit = halves(len(waves), groups, seed)
  x_mel = np.stack([logmel_features(w) for w in waves])
  oracle = [evidence.oracle_features(w) for w in waves]
  x_gbt = None
  if gbt:
    from jaxtag.analyze import baseline
    x_gbt = np.stack([baseline.features(w, evidence.SR) for w in waves])
  out = {}
  for tag in evidence.TAGS:
    y = np.array([bool(s[tag]) for s in states], int)
    row = {"family": evidence.FAMILY[tag], "positives": int(y.sum()), "clips": len(y),
           "logmel_probe": probe_auc(x_mel, y, fit),
           "oracle_probe": probe_auc(np.array([o[tag] for o in oracle]), y, fit)}
    if gbt:
      row["gbt_probe"] = probe_auc(x_gbt, y, fit, "gbt")
    out[tag] = row
  return out


def synthetic_set(n: int, seconds: float = 3.0, seed: int = 0):
  """``n`` clips of the numpy generator's music with the evidence layers: (waves, states, artists).
  The quick stand-in for rendered music (no SoundFont, no score table): same layers, same oracles."""
  from jaxtag.data import generate
  waves, states, artists = [], [], []
  for i in range(n):
    music, row = generate.render_clip(i, n, seed, seconds)
    rng = np.random.default_rng([seed, i, 0x7E57])
    st = evidence.draw_states(rng)
    y, _ = evidence.add(music, rng, st)
    waves.append(y)
    states.append(st)
    artists.append(row["artist"])
  return waves, states, artists


def from_manifest(path: str, limit: int = 0):
  """Clips of a testbed corpus (its manifest rows carry the evidence states as tags)."""
  import soundfile as sf
  rows = [json.loads(line) for line in open(path)]
  rows = rows[:limit] if limit else rows
  root = os.path.dirname(path)
  waves = [sf.read(os.path.join(root, r["path"]), dtype="float32")[0] for r in rows]
  states = [{t: t in r["tags"] for t in evidence.TAGS} for r in rows]
  return waves, states, [r["artist"] for r in rows]


def table(result: dict) -> str:
  from jaxtag.evaluation import report
  gbt = any("gbt_probe" in r for r in result.values())
  head = ["family", "tag", "positives / clips", "log-mel probe ROC-AUC"] + (["GBT probe ROC-AUC"] if gbt else []) + \
         ["oracle probe ROC-AUC"]
  body = [[r["family"], t, f"{r['positives']} / {r['clips']}", f"{r['logmel_probe']:.3f}"]
          + ([f"{r['gbt_probe']:.3f}"] if gbt else []) + [f"{r['oracle_probe']:.3f}"] for t, r in result.items()]
  return report.markdown_table(head, body)


def main(argv):
  del argv
  t0 = time.time()
  if FLAGS.manifest:
    waves, states, groups = from_manifest(FLAGS.manifest, FLAGS.n)
  else:
    waves, states, groups = synthetic_set(FLAGS.n, FLAGS.seconds, FLAGS.seed)
  res = measure(waves, states, groups, FLAGS.gbt, FLAGS.seed)
  print(table(res))
  print(json.dumps({"clips": len(waves), "seconds": round(time.time() - t0, 1), "result": res}))


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_string("manifest", "", "A testbed corpus manifest (default: the numpy-music stand-in).")
  flags.DEFINE_integer("n", 200, "Clips (the first n of the manifest, or n generated).")
  flags.DEFINE_float("seconds", 3.0, "Clip length of the generated stand-in.")
  flags.DEFINE_integer("seed", 0, "Seed.")
  flags.DEFINE_bool("gbt", False, "Also fit the GBT baseline's features.")
  FLAGS = flags.FLAGS
  app.run(main)
