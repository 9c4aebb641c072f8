"""Memory and time of a 2-hour 44.1-kHz stereo FLAC: a whole decode vs one random training chunk.

  python benchmarks/long_file.py --cache=/tmp/jaxtag_long [--minutes=120]

Each measurement runs in a fresh subprocess (peak RSS = ``ru_maxrss`` of that process, what a loader worker
would cost). The FLAC (a tone, written block by block) is cached in ``--cache``. Rows append to
``benchmarks/results/long_file.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RATE = 44100

CHILD = """
import json, resource, sys, time
import numpy as np
from jaxtag.data import decode, pipeline
path, what = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if what == "whole":
  n = len(decode.load_audio(path, 16000))
else:
  reader = pipeline.SongReader([path], 16000, 3 * 16000, "pad")
  n = sum(len(reader.read_chunk(0, np.random.default_rng(s))) for s in range(5)) // 5
seconds = (time.perf_counter() - t0) / (1 if what == "whole" else 5)
print(json.dumps({"what": what, "samples": n, "seconds": round(seconds, 3),
                  "peak_rss_mb": round(int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024)}))
"""


def make_flac(path: str, minutes: float) -> float:
  t0 = time.time()
  n, block = int(minutes * 60 * RATE), 60 * RATE
  t = np.arange(block) / RATE
  tone = (0.25 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.1 * t))).astype(np.float32)
  stereo = np.stack([tone, 0.5 * tone], 1)
  with sf.SoundFile(path + ".tmp", "w", RATE, 2, subtype="PCM_16", format="FLAC") as f:
    for i in range(0, n, block):
      f.write(stereo[:min(block, n - i)])
  os.replace(path + ".tmp", path)
  return time.time() - t0


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--cache", default="/tmp/jaxtag_long")
  ap.add_argument("--minutes", type=float, default=120)
  ap.add_argument("--json_out", default=os.path.join(ROOT, "benchmarks", "results", "long_file.jsonl"))
  args = ap.parse_args()
  os.makedirs(args.cache, exist_ok=True)
  path = os.path.join(args.cache, f"tone_{args.minutes:g}min_44k_stereo.flac")
  if not os.path.exists(path):
    print(f"writing {path} ({args.minutes:g} min) ...", flush=True)
    print(f"  {make_flac(path, args.minutes):.0f} s", flush=True)
  rows = []
  for what in ("chunk", "whole"):
    out = subprocess.run([sys.executable, "-c", CHILD, path, what], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT})
    if out.returncode:
      raise SystemExit(out.stderr[-2000:])
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(rows[-1], flush=True)
  from benchmarks import harness
  harness.report("long_file", rows, ["what", "samples", "seconds", "peak_rss_mb"], args.json_out,
                 {"minutes": args.minutes, "file_mb": round(os.path.getsize(path) / 2**20), "rate": RATE,
                  "channels": 2, "model_rate": 16000, "chunk_s": 3})


if __name__ == "__main__":
  main()
