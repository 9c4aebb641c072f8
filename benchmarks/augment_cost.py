"""What on-device augmentation costs: step time of the jitted train step with and without ``config.augment``.

``python benchmarks/augment_cost.py [--models=smoke --steps=5 --repeats=5 --json_out=benchmarks/results/augment_cost.jsonl]``

The step as the trainer runs it (``step.jit_train_step``, state donated, one device-resident synthetic batch),
timed to ``block_until_ready``, median over ``--repeats``, for: no augmentation; the waveform augmentations
only (gain, polarity, crop jitter, mixup, white noise); those plus SpecAugment masks; all of them plus
varispeed (the one with gathers). The goal is under 10 % of a step for the smoke model.
"""
from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import app, flags

from benchmarks import harness
from jaxtag.training import augment

flags.DEFINE_list("models", ["smoke"], "Benchmark models (benchmarks/harness.py MODELS).")
flags.DEFINE_integer("steps", 5, "Timed steps per repeat.")
flags.DEFINE_integer("repeats", 5, "Repeats (median reported).")
flags.DEFINE_string("json_out", "benchmarks/results/augment_cost.jsonl", "Append results here ('' = don't).")
FLAGS = flags.FLAGS
N_TAGS = 50

WAVEFORM = {"gain_db": 6.0, "polarity": 0.5, "shift_seconds": 0.1, "mixup_alpha": 0.4, "noise_prob": 0.5}
SPEC = {"time_masks": 2, "time_mask_frames": 20, "freq_masks": 2, "freq_mask_bins": 12}
SETTINGS = {"none": {}, "waveform": WAVEFORM, "waveform+spec": {**WAVEFORM, **SPEC},
            "all+speed": {**WAVEFORM, **SPEC, "speed": 0.1}}


def compiled_step(name: str, setting: dict):
  """``(run, compile s)``: ``run()`` does ``--steps`` steps of model ``name`` with ``config.augment = setting``."""
  c = harness.model_config(name)
  c.augment.update(setting)
  fn, state, batch = harness.synthetic_step(c, N_TAGS, augment=augment.from_config(c))
  lr = np.float32(1e-4)
  t0 = time.perf_counter()
  fn = fn.lower(state, batch, lr).compile()
  compile_s = time.perf_counter() - t0
  holder = {"state": state}

  def run():
    s = holder["state"]
    for _ in range(FLAGS.steps):
      s, _ = fn(s, batch, lr)
    jax.block_until_ready(s)
    holder["state"] = s

  run()   # warm-up
  return run, compile_s


def main(argv):
  """Settings are timed round-robin (one repeat of each in turn), so a load change on a shared machine hits
  all of them alike; the median over repeats is reported."""
  del argv
  rows = []
  for name in FLAGS.models:
    runs = {label: compiled_step(name, setting) for label, setting in SETTINGS.items()}
    times = {label: [] for label in SETTINGS}
    for _ in range(FLAGS.repeats):
      for label, (run, _) in runs.items():
        times[label] += harness.timed(run, 1)
    base = harness.median(times["none"])
    for label in SETTINGS:
      ms = 1e3 * harness.median(times[label]) / FLAGS.steps
      row = {"model": name, "augment": label, "step_ms": round(ms, 1),
             "overhead": round(harness.median(times[label]) / base - 1, 3), "compile_s": round(runs[label][1], 1),
             "backend": jax.default_backend(), "devices": jax.device_count(),
             "load_avg_1m": round(os.getloadavg()[0], 1)}
      rows.append(row)
      print(f"{name:8s} {label:14s} {ms:8.1f} ms/step  {100 * row['overhead']:+6.1f} %  "
            f"(compile {row['compile_s']:.0f} s)", flush=True)
  if FLAGS.json_out:
    os.makedirs(os.path.dirname(FLAGS.json_out) or ".", exist_ok=True)
    with open(FLAGS.json_out, "a") as f:
      for r in rows:
        f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
  app.run(main)
