"""Peak memory of one decode worker on a long file: ``decode.load_audio_stream`` (what ``jaxtag.serving.tag``'s
workers run) vs the whole-file ``decode.load_audio``, on a 2-hour 44.1-kHz stereo FLAC.

    PYTHONPATH=$PWD python benchmarks/tag_long_file.py [--minutes=120] [--whole]

Each decode runs in a fresh process that reports its peak RSS (``ru_maxrss``) and its RSS before decoding;
``--whole`` adds the whole-file decoder (it needs about 5 GB). Raw rows: benchmarks/results/tag_long_file.jsonl.
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

PROBE = r'''
import json, resource, sys, time
import numpy as np
from jaxtag.data import decode
path, fn, cap = sys.argv[1], sys.argv[2], float(sys.argv[3])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.time()
if fn == "stream":
  wave, _ = decode.load_audio_stream(path, 16000, cap or None)
else:
  wave = decode.load_audio(path, 16000)
print(json.dumps({"decoder": fn, "max_seconds": cap, "out_mb": wave.nbytes / 2**20, "seconds": time.time() - t0,
                  "rss_before_mb": before / 1024, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def make_long(path: str, minutes: float) -> None:
  """Stereo 44.1-kHz 16-bit FLAC written 10 s at a time (tones + a little noise)."""
  import soundfile as sf
  if os.path.exists(path):
    return
  sr, block = 44100, 441000
  rng = np.random.default_rng(0)
  tmp = path + ".tmp.flac"
  with sf.SoundFile(tmp, "w", samplerate=sr, channels=2, format="FLAC", subtype="PCM_16") as f:
    for start in range(0, int(minutes * 60 * sr), block):
      t = (start + np.arange(block)) / sr
      x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 331 * t) + 0.01 * rng.standard_normal(block)
      f.write(np.stack([x, 0.8 * x], axis=1).astype(np.float32))
  os.replace(tmp, path)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--minutes", type=float, default=120)
  ap.add_argument("--path", default="/tmp/jaxtag_long_44k_stereo.flac")
  ap.add_argument("--whole", action="store_true", help="also the whole-file decoder (about 5 GB)")
  ap.add_argument("--json_out", default=os.path.join(ROOT, "benchmarks", "results", "tag_long_file.jsonl"))
  args = ap.parse_args()
  make_long(args.path, args.minutes)
  runs = [("stream", 0.0), ("stream", 600.0)] + ([("whole", 0.0)] if args.whole else [])
  env = {**os.environ, "PYTHONPATH": ROOT}
  rows = []
  for fn, cap in runs:
    out = subprocess.run([sys.executable, "-c", PROBE, args.path, fn, str(cap)], capture_output=True, text=True,
                         env=env, check=True)
    rows.append({**json.loads(out.stdout.strip().splitlines()[-1]), "file_minutes": args.minutes,
                 "file_mb": os.path.getsize(args.path) / 2**20})
    print(json.dumps(rows[-1]), flush=True)
  with open(args.json_out, "a") as f:
    f.write(json.dumps({"benchmark": "tag_long_file", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "load_avg_1m": os.getloadavg()[0], "rows": rows}) + "\n")


if __name__ == "__main__":
  main()
