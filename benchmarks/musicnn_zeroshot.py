"""Realism, measured: the authors' MTT musicnn, never shown our corpora, tags them zero-shot.

  python benchmarks/musicnn_zeroshot.py --n=400 --clip_seconds=10

imports ``MTT_musicnn`` (``jaxtag.tools.import_musicnn``, weights in ../shared/musicnn_ref/), scores every clip
of the rendered corpus (jaxtag/data/render) and of the numpy corpus (jaxtag/data/generate) as the evaluation
protocol does (mean sigmoid over non-overlapping 3-s chunks), and reports ROC-AUC per tag shared with MTT's
50 (tags with positives and negatives only), against the noisy tags and against the clean attributes (a
tag is a clean positive when its graded target is > 0.5 or it names a non-graded attribute). The more a
corpus sounds like MagnaTagATune, the higher the macro mean. Rows go to
benchmarks/results/musicnn_zeroshot.jsonl.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxtag.core import scoring  # noqa: E402
from jaxtag.data import generate  # noqa: E402
from jaxtag.data.render import corpus as render_corpus  # noqa: E402
from jaxtag.data.render import label  # noqa: E402

WEIGHTS = os.path.join(os.path.dirname(ROOT), "shared", "musicnn_ref", "MTT_musicnn_weights.npz")


def clean_matrix(rows, tags, degrees) -> np.ndarray:
  """Clean positives: graded target > 0.5 for degree tags, any target > 0 otherwise."""
  y = np.zeros((len(rows), len(tags)), np.float32)
  for i, r in enumerate(rows):
    for j, t in enumerate(tags):
      v = r["targets"].get(t, 0.0)
      y[i, j] = v > 0.5 if t in degrees else v > 0
  return y


def zeroshot(tagger, manifest: str, degrees: tuple, batch: int) -> dict:
  from jaxtag.serving import predict
  rows = [json.loads(line) for line in open(manifest)]
  files = [os.path.join(os.path.dirname(manifest), r["path"]) for r in rows]
  t0 = time.time()
  results, failures = predict.tag_files(tagger, files, top=1)
  if failures:
    raise RuntimeError(f"{len(failures)} clips failed to decode, e.g. {failures[0]}")
  scores = np.stack([r["scores"] for r in results])
  model_tags = list(tagger.tags)
  corpus_tags = set(t for r in rows for t in r["tags"])
  shared = [t for t in model_tags if t in corpus_tags]
  cols = [model_tags.index(t) for t in shared]
  noisy = np.array([[t in r["tags"] for t in shared] for r in rows], np.float32)
  clean = clean_matrix(rows, shared, degrees)
  out = {}
  for name, y in (("noisy", noisy), ("clean", clean)):
    auc = scoring.roc_auc(y, scores[:, cols])
    per = {t: round(float(a), 4) for t, a in zip(shared, auc) if np.isfinite(a)}
    out[name] = {"macro_roc_auc": round(float(np.mean(list(per.values()))), 4), "n_tags": len(per), "per_tag": per}
  out["clips"], out["seconds"] = len(rows), round(time.time() - t0, 1)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--n", type=int, default=400, help="clips per corpus")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--clip_seconds", type=float, default=10.0)
  p.add_argument("--cache_dir", default="", help="corpus cache (default ~/.cache/jaxtag)")
  p.add_argument("--weights", default=WEIGHTS)
  p.add_argument("--run_dir", default="/tmp/jaxtag_MTT_musicnn")
  p.add_argument("--corpora", default="rendered,generated")
  p.add_argument("--batch", type=int, default=3, help="chunks per call: a 10-s clip has 3 (padding is wasted work)")
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "musicnn_zeroshot.jsonl"))
  a = p.parse_args()
  from jaxtag.serving import inference
  from jaxtag.tools import import_musicnn
  if not os.path.exists(os.path.join(a.run_dir, "config.json")):
    import_musicnn.import_musicnn(a.weights, a.run_dir, "MTT_musicnn")
  tagger = inference.RunModel(a.run_dir, batch=a.batch)
  commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
  for name in a.corpora.split(","):
    if name == "rendered":
      manifest = render_corpus.ensure_corpus(a.n, a.seed, a.clip_seconds, "flac", a.cache_dir)
      degrees = label.DEGREES
    else:
      manifest = generate.ensure_corpus(a.n, a.seed, a.clip_seconds, "flac", a.cache_dir)
      degrees = generate.DEGREES
    r = zeroshot(tagger, manifest, degrees, a.batch)
    row = {"corpus": name, "n": a.n, "seed": a.seed, "clip_seconds": a.clip_seconds, "model": "MTT_musicnn",
           "commit": commit.strip(), "date": datetime.date.today().isoformat(), **r}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "a") as f:
      f.write(json.dumps(row) + "\n")
    print(f"{name}: macro ROC-AUC {r['noisy']['macro_roc_auc']:.3f} over {r['noisy']['n_tags']} shared tags "
          f"(noisy tags), {r['clean']['macro_roc_auc']:.3f} over {r['clean']['n_tags']} (clean), "
          f"{r['clips']} clips in {r['seconds']} s")
    worst = sorted(r["noisy"]["per_tag"].items(), key=lambda kv: kv[1])
    print("  per tag (noisy): " + ", ".join(f"{t} {v:.2f}" for t, v in worst))


if __name__ == "__main__":
  main()
