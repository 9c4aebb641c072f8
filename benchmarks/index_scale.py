"""Index cost of a large manifest and the trainer's memory before its first step, e.g. 1,000,000 rows.

  python benchmarks/index_scale.py --rows=1000000 [--trainer] [--workdir=/tmp/jaxtag_index]

Builds (and caches) a private-style JSONL manifest: ``rows`` graded rows ({"targets": {tag: value}}, 5 tags
each of the generated corpus' tags, split 98/1/1) whose paths cycle over the real files of a small generated
corpus. Measures in fresh subprocesses: ``index.load_songs`` (wall time, peak RSS), and with ``--trainer`` a
1-step smoke-model run of ``jaxtag.main`` on the manifest (peak RSS of the trainer and its loader workers,
sampled every 0.1 s), each also for a 1,000-row manifest as the baseline. Rows append to
``benchmarks/results/index_scale.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

INDEX_CHILD = """
import json, resource, sys, time
from configs import smoke
from jaxtag.data import index
c = smoke.get_config().data
c.dataset, c.manifest, c.graded, c.train_size = "manifest", sys.argv[1], True, 0
hwm = lambda: int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024
before = hwm()
t0 = time.perf_counter()
idx = index.load_songs(c)
seconds = time.perf_counter() - t0
print(json.dumps({"rows": sum(idx.counts().values()), "index_s": round(seconds, 2),
                  "index_peak_rss_mb": round(hwm()), "rss_before_mb": round(before)}))
"""


def build_manifest(path: str, rows: int, audio_dir: str, audio_files: list[str], tags: list[str]) -> float:
  t0 = time.time()
  rng = np.random.default_rng(0)
  picks = rng.integers(0, len(tags), size=(rows, 5))
  values = np.round(rng.random((rows, 5)), 3)
  with open(path + ".tmp", "w") as f:
    for i in range(rows):
      split = "valid" if i % 100 == 1 else "test" if i % 100 == 2 else "train"
      targets = {tags[j]: float(v) for j, v in zip(picks[i], values[i])}
      f.write(json.dumps({"id": f"s{i:07d}", "path": os.path.join(audio_dir, audio_files[i % len(audio_files)]),
                          "targets": targets, "split": split}) + "\n")
  os.replace(path + ".tmp", path)
  return time.time() - t0


def tree_rss_mb(pid: int) -> float:
  """RSS of ``pid`` and all its descendants (loader workers, resource tracker)."""
  total, todo = 0, [pid]
  while todo:
    p = todo.pop()
    try:
      total += int(open(f"/proc/{p}/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
      for task in os.listdir(f"/proc/{p}/task"):
        todo += [int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split()]
    except OSError:
      continue
  return total / 2**20


def trainer_peak(manifest: str, workdir: str) -> dict:
  cmd = [sys.executable, "-m", "jaxtag.main", f"--config={ROOT}/configs/smoke.py", f"--workdir={workdir}",
         "--config.data.dataset=manifest", f"--config.data.manifest={manifest}", "--config.data.graded=True",
         "--config.train.loss=mse", "--config.train.steps=1", "--config.train.eval_every=1000",
         "--config.train.checkpoint_every=1000", "--config.eval.max_songs=4", "--config.data.train_size=0",
         "--config.data.num_workers=-1"]
  t0 = time.time()
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT})
  peak, stop = [0.0], threading.Event()

  def sample():
    while not stop.is_set():
      peak[0] = max(peak[0], tree_rss_mb(proc.pid))
      time.sleep(0.1)
  threading.Thread(target=sample, daemon=True).start()
  _, err = proc.communicate()
  stop.set()
  if proc.returncode:
    raise SystemExit(err[-3000:])
  workers = next((line.split("loader: ")[1].split(" workers")[0] for line in err.splitlines()
                  if "loader: " in line), "?")
  return {"trainer_peak_rss_mb": round(peak[0]), "trainer_wall_s": round(time.time() - t0), "workers": workers}


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--rows", type=int, default=1_000_000)
  ap.add_argument("--workdir", default="/tmp/jaxtag_index")
  ap.add_argument("--trainer", action="store_true")
  ap.add_argument("--json_out", default=os.path.join(ROOT, "benchmarks", "results", "index_scale.jsonl"))
  args = ap.parse_args()
  os.makedirs(args.workdir, exist_ok=True)
  from jaxtag.data import generate
  corpus = generate.ensure_corpus(8, 0, 3.0, "flac", os.path.join(args.workdir, "corpus"))
  audio_dir = os.path.dirname(corpus)
  files = sorted(json.loads(line)["path"] for line in open(corpus))
  rows = []
  for n in (1000, args.rows):
    manifest = os.path.join(args.workdir, f"manifest_{n}.jsonl")
    if not os.path.exists(manifest):
      print(f"building {manifest} ...", flush=True)
      print(f"  {build_manifest(manifest, n, audio_dir, files, list(generate.TAGS)):.0f} s", flush=True)
    out = subprocess.run([sys.executable, "-c", INDEX_CHILD, manifest], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ROOT})
    if out.returncode:
      raise SystemExit(out.stderr[-3000:])
    row = {"manifest_rows": n, "manifest_mb": round(os.path.getsize(manifest) / 2**20),
           **json.loads(out.stdout.strip().splitlines()[-1])}
    if args.trainer:
      row.update(trainer_peak(manifest, os.path.join(args.workdir, f"run_{n}_{int(time.time())}")))
    rows.append(row)
    print(row, flush=True)
  from benchmarks import harness
  harness.report("index_scale", rows, ["manifest_rows", "manifest_mb", "index_s", "index_peak_rss_mb",
                                       "trainer_peak_rss_mb", "workers"], args.json_out, {"trainer": args.trainer})


if __name__ == "__main__":
  main()
