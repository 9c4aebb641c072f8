"""Pipeline-only throughput: chunks/s of the train pipeline from audio files and from packed shards, with
0, 1, 2 and N (auto) grain workers, plus the size and per-chunk read cost of each packed encoding.

``python -m benchmarks.input_pipeline [--n=240 --clip_seconds=8 --chunk_seconds=1.5,3 --batch=32 --batches=20
--repeats=3 --encodings=auto,float32,flac --json_out=benchmarks/results/input_pipeline.jsonl]``

Each (chunk length, source, workers) builds a fresh iterator, takes one batch (worker start-up, reported
apart), then times ``--batches`` batches ``--repeats`` times (median). ``read_us`` is the in-process cost of
one random chunk (``SongReader.read_chunk``): a whole decode + resample for files, a record read and slice
for packs. Packs of the generated corpus (16-bit FLAC at 16 kHz) are made in ``--pack_dir`` if missing.
Also times one pass of the eval pipeline (all chunks of every song, in-process) from files and from the pack.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np
from absl import app, flags

from benchmarks import harness
from jaxtag.core import config as config_lib
from jaxtag.data import index, pack, pipeline, readers, tuning

flags.DEFINE_integer("n", 240, "Generated clips.")
flags.DEFINE_float("clip_seconds", 8.0, "Generated clip length (s).")
flags.DEFINE_list("chunk_seconds", ["1.5", "3"], "Chunk lengths (s): 1.5 = smoke, 3 = MTT.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("batches", 20, "Timed batches per repeat.")
flags.DEFINE_integer("repeats", 3, "Repeats (median reported).")
flags.DEFINE_list("workers", ["0", "1", "2", "auto"], "Worker counts ('auto' = jaxtag.data.tuning).")
flags.DEFINE_list("encodings", ["auto", "float32", "flac"], "Packed encodings to measure (first: the pipeline's).")
flags.DEFINE_string("pack_dir", "", "Where packs are made/reused ('' = a temporary directory).")
flags.DEFINE_string("cache_dir", "", "Corpus cache directory.")
flags.DEFINE_string("json_out", "benchmarks/results/input_pipeline.jsonl", "Append results here ('' = don't).")
FLAGS = flags.FLAGS


def _rate(d, songs) -> dict:
  t0 = time.perf_counter()
  it = pipeline.train_iterator(d, songs, local_batch=FLAGS.batch, seed=0)
  next(it)
  first = time.perf_counter() - t0
  seconds = harness.timed(lambda: [next(it) for _ in range(FLAGS.batches)], FLAGS.repeats)
  it.close()
  return {"chunks_per_s": round(FLAGS.batches * FLAGS.batch / harness.median(seconds), 1),
          "first_batch_s": round(first, 2)}


def _read_us(d, songs, n: int = 64) -> float:
  reader = readers.song_reader(d, songs)
  rng = np.random.default_rng(0)
  for i in range(0, len(songs), 16):   # warm-up: open every shard (and the page cache) before timing
    reader.read_chunk(i, rng)
  picks = rng.integers(len(songs), size=n)
  t0 = time.perf_counter()
  for i in picks:
    reader.read_chunk(int(i), rng)
  return round(1e6 * (time.perf_counter() - t0) / n, 1)


def main(argv):
  del argv
  d = config_lib.base_config().data
  d.generated_n, d.generated_clip_seconds, d.cache_dir = FLAGS.n, FLAGS.clip_seconds, FLAGS.cache_dir
  songs = index.load_songs(d).split("train")
  rows, packs = [], {}
  with tempfile.TemporaryDirectory() as tmp:
    for enc in FLAGS.encodings:
      out = os.path.join(FLAGS.pack_dir or tmp, f"pack-{enc}")
      t0 = time.perf_counter()
      meta = pack.pack_config(d, out, "train", encoding=enc)
      packs[enc] = out
      rows.append({"source": f"pack {enc}", "what": "pack", "pack_s": round(time.perf_counter() - t0, 1),
                   "mb_per_audio_hour": round(meta["bytes"] / 1e6 / meta["hours"], 1),
                   "encodings": ",".join(f"{k}:{v}" for k, v in meta["encodings"].items() if v)})
    for chunk in map(float, FLAGS.chunk_seconds):
      d.chunk_seconds = chunk
      for source in ["files"] + [f"pack {e}" for e in FLAGS.encodings]:
        d.packed_dir = packs[source[5:]] if source != "files" else ""
        rows.append({"source": source, "what": "read_chunk", "chunk_s": chunk, "read_us": _read_us(d, songs)})
        if source not in ("files", f"pack {FLAGS.encodings[0]}"):
          continue   # the pipeline rates: files and the default encoding
        for w in FLAGS.workers:
          d.num_workers, d.read_threads = (tuning.AUTO if w == "auto" else int(w)), tuning.AUTO
          row = {"source": source, "what": "pipeline", "chunk_s": chunk,
                 "workers": f"{tuning.resolve(d)['num_workers']}{' (auto)' if w == 'auto' else ''}"}
          rows.append({**row, **_rate(d, songs)})
          print(rows[-1], flush=True)
        t0 = time.perf_counter()
        ev = pipeline.eval_batches(d, songs, batch=64)
        for _ in ev:
          pass
        rows.append({"source": source, "what": "eval pass", "chunk_s": chunk,
                     "chunks_per_s": round(ev.chunks / (time.perf_counter() - t0), 1)})
  harness.report("input_pipeline", rows, ["source", "what", "chunk_s", "workers", "chunks_per_s", "first_batch_s",
                                          "read_us", "pack_s", "mb_per_audio_hour", "encodings"], FLAGS.json_out,
                 {"corpus": f"{FLAGS.n} x {FLAGS.clip_seconds:g} s generated FLAC", "batch": FLAGS.batch,
                  "batches": FLAGS.batches, "repeats": FLAGS.repeats})


if __name__ == "__main__":   # required: grain workers re-import __main__
  app.run(main)
