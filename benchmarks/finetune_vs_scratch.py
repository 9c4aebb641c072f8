"""Fine-tuning imported MTT musicnn against the same config from scratch: test ROC-AUC against steps.

  python benchmarks/finetune_vs_scratch.py --source=runs/MTT_musicnn --out=/tmp/ft [--steps=40 --eval_every=5]

The data is a user's manifest built from the generated corpus (3-s clips), labelled with a vocabulary that
overlaps MTT's in part (``TAGS``: 6 MTT tags, 2 new). Both arms run ``configs/finetune.py`` through
``jaxtag.main`` with the same steps, batch, seed and ``--trainable``; one starts from ``--source``, the other from
scratch. Validation runs on the test split every ``--eval_every`` steps (this is a learning-curve measurement, no
checkpoint is selected with it); step 0 is scored in-process. Appends one JSON row per (arm, step) to
``benchmarks/results/finetune_vs_scratch.jsonl`` and draws ``finetune_vs_scratch_<trainable>.png``. Re-running
resumes both runs from their checkpoints.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
TAGS = ["drums", "rock", "piano", "classical", "electronic", "vocal", "minor", "bass"]


def user_manifest(n: int, out: str, cache: str) -> tuple[str, str]:
  from jaxtag.data import generate
  source = generate.ensure_corpus(n, 0, 3.0, "flac", cache)
  os.makedirs(out, exist_ok=True)
  manifest, tags = os.path.join(out, "manifest.jsonl"), os.path.join(out, "tags.txt")
  with open(source) as f, open(manifest, "w") as g:
    for line in f:
      row = json.loads(line)
      row["path"] = os.path.join(os.path.dirname(source), row["path"])
      row["tags"] = [t for t in row["tags"] if t in TAGS]
      g.write(json.dumps(row) + "\n")
  with open(tags, "w") as f:
    f.write("\n".join(TAGS) + "\n")
  return manifest, tags


def run_arm(workdir, init, manifest, tags, a):
  cmd = [sys.executable, "-m", "jaxtag.main", f"--config={ROOT}/configs/finetune.py", f"--workdir={workdir}",
         f"--config.data.manifest={manifest}", f"--config.data.tags_file={tags}", f"--config.init.workdir={init}",
         f"--config.train.trainable={a.trainable}", f"--config.train.steps={a.steps}",
         f"--config.train.eval_every={a.eval_every}", f"--config.train.checkpoint_every={a.eval_every}",
         f"--config.train.global_batch_size={a.batch}", f"--config.train.learning_rate={a.lr}",
         "--config.train.early_stopping_patience=0", "--config.eval.split=test", f"--config.eval.batch_size={a.batch}",
         "--config.train.log_every=5", "--config.train.metrics_every=5", f"--config.seed={a.seed}"]
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=os.path.join(a.out, "xla_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  subprocess.run(cmd, cwd=ROOT, check=True, env=env)


def step0(init, manifest, tags, a) -> dict:
  """Test metrics of the initial model of an arm (scored the way validation scores)."""
  from configs import finetune
  from jaxtag.training import checkpoint, step as step_lib, train_state, transfer
  from jaxtag.serving import inference
  from jaxtag.core import scoring, sharding
  from jaxtag.data import index as index_lib
  c = finetune.get_config(None)
  c.data.manifest, c.data.tags_file, c.init.workdir, c.seed = manifest, tags, init, a.seed
  c.data.num_workers, c.data.read_threads = 0, 1
  idx = index_lib.load_songs(c.data)
  model = checkpoint.new_model(c, len(idx.tags), seed=a.seed)
  graphdef, params, rest = step_lib.split_model(model)
  if init:
    params, rest, _ = transfer.apply(params, rest, c, idx.tags)
  mesh = sharding.make_mesh()
  songs = idx.split("test")
  p, r = train_state.on_mesh((params, rest), mesh)
  logits, song, _ = inference.predict_on_mesh(inference.make_eval_fn(graphdef, mesh), p, r, c.data, songs,
                                              global_batch=a.batch, mesh=mesh)
  scores = scoring.aggregate_chunks(scoring.sigmoid(logits), song, len(songs))
  return scoring.macro_scores(np.stack([s.targets for s in songs]), scores)


def curve(workdir) -> list[dict]:
  from jaxtag.training import metrics
  return [{"step": r["step"], "roc_auc": r["val/roc_auc"], "pr_auc": r["val/pr_auc"]}
          for r in metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl")) if "val/roc_auc" in r]


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--source", required=True)
  ap.add_argument("--out", required=True)
  ap.add_argument("--n", type=int, default=160)
  ap.add_argument("--steps", type=int, default=40)
  ap.add_argument("--eval_every", type=int, default=5)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--lr", type=float, default=3e-3)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--trainable", default="head")
  a = ap.parse_args()
  from benchmarks import harness
  manifest, tags = user_manifest(a.n, os.path.join(a.out, "data"), os.path.join(a.out, "corpus"))
  rows, t0 = [], time.time()
  for arm, init in (("fine-tune", a.source), ("scratch", "")):
    workdir = os.path.join(a.out, f"{arm}_{a.trainable}")
    s0 = step0(init, manifest, tags, a)
    run_arm(workdir, init, manifest, tags, a)
    for point in [{"step": 0, "roc_auc": s0["roc_auc"], "pr_auc": s0["pr_auc"]}] + curve(workdir):
      rows.append({"arm": arm, "trainable": a.trainable, **point})
  meta = {"bench": "finetune_vs_scratch", "source": a.source, "songs": a.n, "tags": TAGS, "batch": a.batch,
          "lr": a.lr, "seed": a.seed, "steps": a.steps, "wall_s": round(time.time() - t0, 1),
          "machine": harness.machine()}
  os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
  with open(os.path.join(ROOT, "benchmarks", "results", "finetune_vs_scratch.jsonl"), "a") as f:
    for r in rows:
      f.write(json.dumps({**meta, **r}) + "\n")
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  for arm in ("fine-tune", "scratch"):
    pts = sorted((r["step"], r["roc_auc"]) for r in rows if r["arm"] == arm)
    ax.plot(*zip(*pts), marker="o", label=arm)
  ax.set(xlabel="training step", ylabel="test macro ROC-AUC",
         title=f"MTT musicnn -> 8-tag manifest, trainable={a.trainable}")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(ROOT, "benchmarks", "results", f"finetune_vs_scratch_{a.trainable}.png"), dpi=120)
  print("arm        step  roc_auc  pr_auc")
  for r in rows:
    print(f"{r['arm']:<10} {r['step']:>4}  {r['roc_auc']:.4f}   {r['pr_auc']:.4f}")


if __name__ == "__main__":
  main()
