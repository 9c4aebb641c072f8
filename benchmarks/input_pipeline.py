"""Decoded chunks/s of the train pipeline with 0, 1 and 2 grain workers on the generated corpus.

``python benchmarks/input_pipeline.py [--n=240 --clip_seconds=8 --chunk_seconds=3 --batch=32 --batches=30]``
Each setting builds a fresh iterator, takes one batch (worker start-up, reported apart), then times
``--batches`` batches. Also times one pass of the eval pipeline (all chunks of every song, in-process).
"""
from __future__ import annotations

import json
import time

from absl import app, flags

from configs import common
from jaxtag.data import index, pipeline

flags.DEFINE_integer("n", 240, "Generated clips.")
flags.DEFINE_float("clip_seconds", 8.0, "Generated clip length (s).")
flags.DEFINE_float("chunk_seconds", 3.0, "Chunk length (s).")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("batches", 30, "Timed batches per setting.")
flags.DEFINE_string("format", "flac", "Generated audio format (flac | mp3 | wav).")
flags.DEFINE_string("cache_dir", "", "Corpus cache directory.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  d = common.base_config().data
  d.generated_n, d.generated_clip_seconds, d.generated_format = FLAGS.n, FLAGS.clip_seconds, FLAGS.format
  d.chunk_seconds, d.cache_dir = FLAGS.chunk_seconds, FLAGS.cache_dir
  t0 = time.time()
  songs = index.load_songs(d).songs
  results = {"corpus": f"{FLAGS.n} x {FLAGS.clip_seconds:g} s {FLAGS.format}", "index_s": round(time.time() - t0, 2),
             "chunk_seconds": FLAGS.chunk_seconds, "batch": FLAGS.batch}
  for workers in (0, 1, 2):
    d.num_workers = workers
    t0 = time.time()
    it = pipeline.train_iterator(d, songs, local_batch=FLAGS.batch, seed=0)
    next(it)
    startup = time.time() - t0
    t0 = time.time()
    for _ in range(FLAGS.batches):
      next(it)
    dt = time.time() - t0
    it.close()
    results[f"workers={workers}"] = {"chunks_per_s": round(FLAGS.batches * FLAGS.batch / dt, 1),
                                     "first_batch_s": round(startup, 2)}
  t0 = time.time()
  ev = pipeline.eval_batches(d, songs, batch=64)
  n_batches = sum(1 for _ in ev)
  results[f"eval (eval_num_workers={d.eval_num_workers}, read_threads={d.read_threads})"] = {"songs": len(songs), "chunks": ev.chunks, "batches": n_batches,
                               "seconds": round(time.time() - t0, 2)}
  print(json.dumps(results))


if __name__ == "__main__":
  app.run(main)
