"""Simple-feature baseline on the generated corpus: is it learnable, and not trivially so?

``python benchmarks/generated_baseline.py --n=2000 --out=/tmp/gen2000`` generates (or reuses) a corpus,
then fits one logistic regression per tag on log-mel mean/std (+ spectral flux) of each whole clip and
reports macro ROC-AUC on the artist-disjoint test split (``--split=random``: a random 10 %), for the binary
noisy tags and the noise-free clean tags.
A good corpus sits well above chance (0.5) but clearly below near-perfect (>= 0.95).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from scipy import signal
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from jaxtag.data import generate
from jaxtag.data.decode import load_audio

SR = 16000


def mel_filters(n_fft=512, n_mels=64):
  hz = lambda m: 700 * (10 ** (m / 2595) - 1)   # noqa: E731
  edges = hz(np.linspace(0, 2595 * np.log10(1 + 8000 / 700), n_mels + 2))
  bins = np.fft.rfftfreq(n_fft, 1 / SR)
  lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
  return np.maximum(0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))


def features(path: str, fb: np.ndarray) -> np.ndarray:
  y = load_audio(path, SR)
  _, _, z = signal.stft(y, SR, nperseg=512, noverlap=256)
  logmel = np.log10(1e4 * (fb @ np.abs(z) ** 2) + 1)
  flux = np.maximum(0, np.diff(logmel, axis=1)).sum(axis=0)
  return np.concatenate([logmel.mean(1), logmel.std(1), [flux.mean(), flux.std()]])


def per_tag_auc(x_tr, y_tr, x_te, y_te, vocab) -> dict[str, float]:
  """ROC-AUC per tag that has positives and negatives on both sides."""
  scaler = StandardScaler().fit(x_tr)
  aucs = {}
  for j, tag in enumerate(vocab):
    if 0 < y_tr[:, j].sum() < len(y_tr) and 0 < y_te[:, j].sum() < len(y_te):
      clf = LogisticRegression(C=0.1, max_iter=2000).fit(scaler.transform(x_tr), y_tr[:, j])
      aucs[tag] = round(float(roc_auc_score(y_te[:, j], clf.decision_function(scaler.transform(x_te)))), 3)
  return aucs


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--n", type=int, default=2000)
  ap.add_argument("--seconds", type=float, default=10.0)
  ap.add_argument("--out", default="/tmp/jaxtag-gen-baseline")
  ap.add_argument("--split", choices=("artist", "random"), default="artist",
                  help="test set: the corpus's artist-disjoint test split, or a random 10% of clips")
  args = ap.parse_args()
  manifest = os.path.join(args.out, "manifest.jsonl")
  if not os.path.exists(manifest):
    t0 = time.time()
    generate.generate(args.out, args.n, seed=0, clip_seconds=args.seconds)
    dt = time.time() - t0
    print(f"generated {args.n} x {args.seconds:g} s clips in {dt:.1f} s = {args.n / dt:.1f} clips/s")
  rows = [json.loads(line) for line in open(manifest)]
  cache = os.path.join(args.out, "baseline_features.npy")   # features are the slow part: reuse them
  if not os.path.exists(cache):
    fb = mel_filters()
    np.save(cache, np.stack([features(os.path.join(args.out, r["path"]), fb) for r in rows]))
  x = np.load(cache)
  if args.split == "artist":
    te = np.array([r["split"] == "test" for r in rows])
  else:
    te = np.random.default_rng(0).permutation(len(rows)) < len(rows) // 10
  tr = ~te
  result = {"clips": len(rows), "split": args.split, "train": int(tr.sum()), "test": int(te.sum())}
  for name, key in (("noisy_tags", "tags"), ("clean_tags", "clean_tags")):
    vocab = sorted({t for r in rows for t in r[key]})
    y = np.array([[t in r[key] for t in vocab] for r in rows], np.int32)
    aucs = per_tag_auc(x[tr], y[tr], x[te], y[te], vocab)
    result[name] = {"macro_roc_auc": round(float(np.mean(list(aucs.values()))), 4), "tags_scored": len(aucs),
                    "per_tag": dict(sorted(aucs.items(), key=lambda kv: kv[1]))}
  print(json.dumps(result))


if __name__ == "__main__":
  main()
