"""End-to-end throughput: chunks/s of real training (``train.train_and_evaluate``) on the generated corpus,
with the input pipeline, from audio files and from packed shards.

``python -m benchmarks.end_to_end [--models=smoke,mtt_spectrogram,mtt_waveform --sources=files,packed
--batch=0 --windows=4 --window_steps=5 --json_out=benchmarks/results/end_to_end.jsonl]``

Each (model, source) trains ``(windows + 1) * window_steps`` steps in a fresh workdir with the default loader
settings (auto workers, device prefetch). The trainer logs chunks/s every ``window_steps`` steps; the first
window (compilation, worker start-up) is dropped and the median of the others is reported. Validation runs
once at the end on 2 songs and checkpoints only at the end, both outside the timed windows.
"""
from __future__ import annotations

import os
import tempfile

from absl import app, flags, logging

from benchmarks import harness
from jaxtag.training import metrics, train
from jaxtag.data import pack, packed

flags.DEFINE_list("models", list(harness.MODELS), "Benchmark models (benchmarks/harness.py MODELS).")
flags.DEFINE_list("sources", ["files", "packed"], "files | packed.")
flags.DEFINE_string("dtype", "float32", "Compute dtype.")
flags.DEFINE_integer("batch", 0, "Global batch (0 = the config's).")
flags.DEFINE_integer("windows", 4, "Timed windows (after one warm-up window).")
flags.DEFINE_integer("window_steps", 5, "Steps per window.")
flags.DEFINE_string("pack_dir", "", "Packed corpus directory (made if missing; '' = a temporary one).")
flags.DEFINE_string("json_out", "benchmarks/results/end_to_end.jsonl", "Append results here ('' = don't).")
FLAGS = flags.FLAGS


def bench(name: str, source: str, pack_dir: str, *, dtype: str = "float32", batch: int = 0, windows: int = 4,
          window_steps: int = 5, cache_dir: str = "", **config) -> dict:
  """One row: ``name`` trained from ``source`` (``files`` | ``packed``, packs made in ``pack_dir`` if missing);
  ``config``: more ``harness.model_config`` options (e.g. ``kernels``)."""
  c = harness.model_config(name, dtype=dtype, batch=batch, cache_dir=cache_dir, **config)
  if source == "packed":
    if not packed.is_packed(pack_dir, "train"):
      pack.pack_config(c.data, pack_dir, "train")
    c.data.packed_dir = pack_dir
  k = window_steps
  c.train.update(steps=(windows + 1) * k, log_every=k, metrics_every=k, eval_every=10**9,
                 checkpoint_every=10**9)
  c.eval.max_songs = 2
  with tempfile.TemporaryDirectory() as workdir:
    train.train_and_evaluate(c, workdir)
    records = [r for r in metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl")) if "chunks_per_s" in r]
  rates = [r["chunks_per_s"] for r in records if r["step"] > k]
  return {"model": name, "source": source, "dtype": dtype, "batch": c.train.global_batch_size,
          "chunk_s": c.data.chunk_seconds, "steps_timed": len(rates) * k, "chunks_per_s": round(harness.median(rates), 1),
          "min": round(min(rates), 1), "max": round(max(rates), 1)}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    pack_dir = FLAGS.pack_dir or tmp
    for name in FLAGS.models:
      for source in FLAGS.sources:
        rows.append(bench(name, source, pack_dir, dtype=FLAGS.dtype, batch=FLAGS.batch, windows=FLAGS.windows,
                          window_steps=FLAGS.window_steps))
        print(rows[-1], flush=True)
  harness.report("end_to_end", rows, ["model", "source", "dtype", "batch", "chunk_s", "steps_timed",
                                      "chunks_per_s", "min", "max"], FLAGS.json_out,
                 {"windows": FLAGS.windows, "window_steps": FLAGS.window_steps})


if __name__ == "__main__":   # required: grain workers re-import __main__
  app.run(main)
