"""Library tagging throughput on this CPU: ``jaxtag.serving.tag`` vs musicnn's own tagger vs ``jaxtag.serving.predict``, on the
same 30-s mp3 clips, with the authors' MTT musicnn weights (imported into a jaxtag run for the jaxtag rows).

    PYTHONPATH=$PWD python benchmarks/tag_library.py --n=120 [--musicnn_python=/work/venvs/musicnn/bin/python]

Each system runs as its own process on all the files, timed from process start to exit (what a user waits
for: imports, model load and compilation included); ``jaxtag.serving.tag`` also reports its own loop rate (after
the model is loaded). musicnn runs the way its README tags a file (``musicnn.tagger.top_tags`` per file, which
builds the TF graph and restores the checkpoint every call) and, as a stronger baseline, with one TF session
reused for every file (its ``batch_data`` preprocessing, then one ``sess.run`` per file).

musicnn is never a jaxtag dependency. Its venv (what /work/venvs/musicnn holds): Python 3.11,
``pip install tensorflow-cpu==2.15.* numpy==1.26.4 librosa==0.10.*`` then ``pip install --no-deps
musicnn==0.1.0`` (its pins, numpy<1.17, predate Python 3.11; run unmodified it is exact under numpy 1.26,
see ../shared/musicnn_ref/README.md). Without that interpreter the musicnn rows are skipped.

The clips: generated 16-kHz mono mp3 (MTT's format), each a different mix of harmonic tones, percussion
clicks and noise, written once into ``--work`` and reused. Raw rows go to benchmarks/results/tag_library.jsonl.
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
SHARED = os.path.join(os.path.dirname(ROOT), "shared")

MUSICNN_SCRIPT = r'''
import json, os, sys, time
t0 = time.time()
mode, listing, out = sys.argv[1], sys.argv[2], sys.argv[3]
files = [l.strip() for l in open(listing) if l.strip()]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
from musicnn import configuration as config
rows = []
if mode == "top_tags":                      # musicnn's documented per-file call
  from musicnn.tagger import top_tags
  for f in files:
    rows.append({"path": f, "top": top_tags(f, model="MTT_musicnn", topN=10, print_tags=False)})
else:                                       # one session for every file
  import tensorflow as tf
  from musicnn import extractor, models
  import librosa
  n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE, hop_length=config.FFT_HOP) + 1
  tf.compat.v1.reset_default_graph()
  with tf.name_scope("model"):
    x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
    is_training = tf.compat.v1.placeholder(tf.bool)
    y = tf.nn.sigmoid(models.define_model(x, is_training, "MTT_musicnn", len(config.MTT_LABELS))[0])
  sess = tf.compat.v1.Session()
  sess.run(tf.compat.v1.global_variables_initializer())
  tf.compat.v1.train.Saver().restore(sess, os.path.dirname(extractor.__file__) + "/MTT_musicnn/")
  for f in files:
    batch, _ = extractor.batch_data(f, n_frames, n_frames)
    p = sess.run(y, feed_dict={x: batch, is_training: False}).mean(axis=0)
    rows.append({"path": f, "top": [config.MTT_LABELS[i] for i in np.argsort(-p)[:10]]})
json.dump({"rows": rows, "wall_in_process": time.time() - t0}, open(out, "w"))
'''


def make_clips(d: str, n: int, seconds: float, seed: int = 0) -> list[str]:
  """``n`` 30-s 16-kHz mono mp3 clips (cached: existing files are kept)."""
  import soundfile as sf
  os.makedirs(d, exist_ok=True)
  sr, paths = 16000, []
  t = np.arange(int(seconds * sr)) / sr
  for i in range(n):
    p = os.path.join(d, f"clip_{i:05d}.mp3")
    paths.append(p)
    if os.path.exists(p) and os.path.getsize(p) > 0:
      continue
    rng = np.random.default_rng(seed + i)
    x = np.zeros_like(t)
    for f0 in rng.uniform(80, 900, size=rng.integers(1, 5)):
      for h in range(1, 5):
        x += np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t))
    beat = rng.uniform(0.25, 0.8)
    clicks = (np.mod(t, beat) < 0.01) * rng.standard_normal(len(t))
    x = x / np.abs(x).max() * 0.4 + 0.3 * clicks + rng.uniform(0, 0.05) * rng.standard_normal(len(t))
    tmp = p + ".tmp.mp3"
    sf.write(tmp, np.clip(x, -1, 1).astype(np.float32), sr, format="MP3")
    os.replace(tmp, p)
  return paths


def timed_run(cmd, **kw) -> tuple[float, subprocess.CompletedProcess]:
  t0 = time.monotonic()
  proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
  wall = time.monotonic() - t0
  if proc.returncode not in (0, 1):
    raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}): {proc.stderr[-3000:]}")
  return wall, proc


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--n", type=int, default=120, help="clips")
  ap.add_argument("--seconds", type=float, default=30.0)
  ap.add_argument("--work", default="/tmp/jaxtag_tag_bench")
  ap.add_argument("--weights", default=os.path.join(SHARED, "musicnn_ref", "MTT_musicnn_weights.npz"))
  ap.add_argument("--musicnn_python", default="/work/venvs/musicnn/bin/python")
  ap.add_argument("--systems", default="tag,predict,musicnn_session,musicnn_top_tags")
  ap.add_argument("--tag_flags", default="", help="extra flags for jaxtag.serving.tag, space-separated")
  ap.add_argument("--json_out", default=os.path.join(ROOT, "benchmarks", "results", "tag_library.jsonl"))
  args = ap.parse_args()
  clips = make_clips(os.path.join(args.work, "clips"), args.n, args.seconds)
  clip_dir = os.path.join(args.work, f"set_{args.n}")   # exactly these n clips, as a directory and a list
  os.makedirs(clip_dir, exist_ok=True)
  for p in clips:
    link = os.path.join(clip_dir, os.path.basename(p))
    if not os.path.exists(link):
      os.symlink(p, link)
  listing = os.path.join(args.work, f"list_{args.n}.txt")
  with open(listing, "w") as f:
    f.write("".join(os.path.join(clip_dir, os.path.basename(p)) + "\n" for p in clips))
  run_dir = os.path.join(args.work, "MTT_musicnn")
  if not os.path.exists(os.path.join(run_dir, "config.json")):
    from jaxtag.tools import import_musicnn
    import_musicnn.import_musicnn(args.weights, run_dir)
  audio_s = args.n * args.seconds
  env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
  rows, tops = [], {}
  for system in args.systems.split(","):
    load0 = os.getloadavg()[0]
    extra = {}
    if system == "tag":
      out = os.path.join(args.work, f"tag_out_{int(time.time())}")
      wall, proc = timed_run([sys.executable, "-m", "jaxtag.tag", f"--workdir={run_dir}", f"--input={clip_dir}",
                              f"--out={out}", "--top=10", "--progress_seconds=30", *args.tag_flags.split()],
                             cwd=ROOT, env=env)
      s = json.load(open(os.path.join(out, "summary.json")))
      extra = {"loop_files_per_s": s["this_run"]["files_per_s"], "loop_audio_h_per_h": s["this_run"]["audio_hours_per_hour"],
               "tagged": s["tagged"], "failed": s["failed"]}
      tops[system] = {}
      for p in sorted(os.listdir(out)):
        if p.startswith("tags-"):
          for line in open(os.path.join(out, p)):
            r = json.loads(line)
            tops[system][os.path.basename(r["path"])] = [t for t, _ in r["top"]]
    elif system == "predict":
      wall, proc = timed_run([sys.executable, "-m", "jaxtag.predict", clip_dir, f"--workdir={run_dir}", "--top=10",
                              "--json"], cwd=ROOT, env=env)
      tops[system] = {os.path.basename(r["file"]): [t["tag"] for t in r["tags"]]
                      for r in map(json.loads, proc.stdout.splitlines())}
      extra = {"tagged": len(tops[system])}
    elif system.startswith("musicnn"):
      if not os.path.exists(args.musicnn_python):
        print(f"skipping {system}: no {args.musicnn_python}")
        continue
      script = os.path.join(args.work, "musicnn_bench.py")
      open(script, "w").write(MUSICNN_SCRIPT)
      res = os.path.join(args.work, f"{system}.json")
      mode = "top_tags" if system == "musicnn_top_tags" else "session"
      wall, proc = timed_run([args.musicnn_python, script, mode, listing, res], cwd=args.work,
                             env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")})
      got = json.load(open(res))
      tops[system] = {os.path.basename(r["path"]): list(r["top"]) for r in got["rows"]}
      extra = {"tagged": len(tops[system])}
    else:
      raise SystemExit(f"unknown system {system!r}")
    rows.append({"system": system, "files": args.n, "wall_s": wall, "files_per_s": args.n / wall,
                 "audio_h_per_h": audio_s / wall, "load_before": load0, "load_after": os.getloadavg()[0], **extra})
    print(json.dumps(rows[-1]), flush=True)
  by = {r["system"]: r for r in rows}
  if "tag" in by:
    for other in ("predict", "musicnn_top_tags", "musicnn_session"):
      if other in by:
        by["tag"][f"x_{other}"] = by["tag"]["files_per_s"] / by[other]["files_per_s"]
    for other in tops:
      if other != "tag":
        common = set(tops["tag"]) & set(tops[other])
        by["tag"][f"top3_same_set_{other}"] = float(np.mean(
            [set(tops["tag"][k][:3]) == set(tops[other][k][:3]) for k in common])) if common else None
  from benchmarks import harness
  harness.report("tag_library", rows, ["system", "files", "wall_s", "files_per_s", "audio_h_per_h", "load_before",
                                       "load_after"], args.json_out,
                 {"n": args.n, "seconds": args.seconds, "tag_flags": args.tag_flags, "cpus": os.cpu_count()})
  if "tag" in by:
    print({k: v for k, v in by["tag"].items() if k.startswith(("x_", "top3", "loop"))})


if __name__ == "__main__":
  main()
