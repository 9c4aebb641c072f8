"""``python -m jaxtag.tag --workdir=W --input=DIR|files.txt|manifest.jsonl --out=OUTDIR [--top=10]
[--embeddings] [--taggram] [--checkpoint=best] [--max_seconds=S]``: tag a whole library.

``jaxtag.serving.predict`` is for a handful of files; this is for a collection. Decoding runs in a pool of worker
processes (``jaxtag.data.decode``, streamed block by block); chunks of many files fill one fixed-shape batch
on all local devices (one compile); a multi-process run (``--coordinator_address`` etc., or
``launch/local_multiprocess.sh -m jaxtag.tag``) gives entry ``i`` of the input to process
``i % process_count``. Output: ``OUTDIR/tags-pPPP-SSSSSS.jsonl`` (``--format=parquet``: ``.parquet``) shards,
one row per file (path, duration, top-k tags, all scores in ``OUTDIR/tags.json`` order, optional song
embedding = the mean of the penultimate layer over chunks, optional taggram = per-chunk scores), each shard
committed atomically; failures in
``OUTDIR/errors.jsonl`` (path, reason); totals in ``OUTDIR/summary.json``. Running the same command again
after a crash skips every file of a committed shard. Bad files never stop the run: the exit status is 0
when the run completed, whatever failed.

Scores are the mean of the chunk sigmoids, exactly as ``predict`` computes them (same chunking, same model
call). Long files are chunked whole; ``--max_seconds=S`` tags only their first S seconds (and stops reading
there), which bounds the time and the worker's memory (about 230 MB per hour of audio otherwise).
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np
from absl import flags
from etils import epath

from jaxtag.core import choices, paths, rundir
from jaxtag.serving import tag_inputs as inputs, tag_shards as shards, tag_worker as worker


def define_flags():
  """Flags exist only when run as a program (spawned decode workers re-import this module)."""
  flags.DEFINE_string("workdir", None, "Run directory (trained, or imported musicnn weights).")
  flags.DEFINE_string("input", None, "A directory, a text file of paths, or a JSONL manifest with 'path'.")
  flags.DEFINE_string("out", None, "Output directory (shards, errors.jsonl, summary.json).")
  from jaxtag.core import cli
  cli.checkpoint_flag()
  flags.DEFINE_integer("top", 10, "Top tags per row.", lower_bound=1)
  flags.DEFINE_bool("embeddings", False, "Add each file's song embedding (mean penultimate features).")
  flags.DEFINE_bool("taggram", False, "Add each file's per-chunk scores.")
  flags.DEFINE_float("max_seconds", 0.0, "Tag only the first S seconds of each file (0: the whole file).",
                     lower_bound=0.0)
  flags.DEFINE_integer("batch", 64, "Chunks per process per forward pass (rounded up to the local devices).",
                       lower_bound=1)
  flags.DEFINE_integer("workers", -1, "Decode processes (-1: one per CPU core; 0: decode in this process).",
                       lower_bound=-1)
  flags.DEFINE_enum("format", "jsonl", list(shards.FORMATS), "Output shards: JSONL, or Parquet (pyarrow, the "
                    "[parquet] extra).")
  flags.DEFINE_integer("shard_size", 256, "Files per output shard (tagged or failed).", lower_bound=1)
  flags.DEFINE_float("shard_seconds", 60.0, "Commit a shard at least this often (seconds).")
  flags.DEFINE_float("progress_seconds", 10.0, "Seconds between progress lines.")
  flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process runs).")
  flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).", lower_bound=1)
  flags.DEFINE_integer("process_id", None, "This process's index (multi-process runs).", lower_bound=0)
  for name in ("shard_seconds", "progress_seconds"):
    flags.register_validator(name, lambda v: v > 0, f"--{name} must be > 0")


MAX_TRIES = 3   # a file whose decode worker died this often, decoding it alone, is failed as ``worker_crashed``


class _Now:
  """A finished-at-once future for ``workers=0``."""

  def __init__(self, fn, *args):
    self.value = fn(*args)

  def result(self):
    return self.value


class _File:
  """A decoded file whose chunks are on their way through the model."""
  __slots__ = ("duration", "embs", "left", "path", "probs", "seconds")

  def __init__(self, path, duration, seconds, n, want_emb):
    self.path, self.duration, self.seconds, self.left = path, duration, seconds, n
    self.probs = [None] * n
    self.embs = [None] * n if want_emb else None


class Progress:
  """Files/s, audio-hours/h and ETA; the total is counted by a background walk of the same input."""

  def __init__(self, every: float, count_fn=None):
    self.every, self.t0 = every, time.monotonic()
    self.last = self.t0
    self.total = None
    if count_fn is not None:
      threading.Thread(target=lambda: setattr(self, "total", count_fn()), daemon=True).start()

  def line(self, files: int, failed: int, seconds: float) -> str:
    dt = max(time.monotonic() - self.t0, 1e-9)
    rate = (files + failed) / dt
    eta = ""
    if self.total is not None and rate > 0:
      left = max(self.total - files - failed, 0)
      eta = f", {left} left, ETA {time.strftime('%H:%M:%S', time.gmtime(left / rate))}"
    return f"tagged {files} (+{failed} failed): {rate:.2f} files/s, {seconds / dt:.1f} audio-h/h{eta}"

  def maybe(self, *counts) -> None:
    if time.monotonic() - self.last >= self.every:
      self.last = time.monotonic()
      print(self.line(*counts), file=sys.stderr, flush=True)


def _entries(spec: str, done: inputs.DoneSet, pi: int, pc: int):
  """This process's entries not yet in a committed shard (an unusable input row is keyed by its place)."""
  for e in inputs.my_share(inputs.iter_entries(spec), pi, pc):
    if (e.path if e.path is not None else "row:" + e.where) not in done:
      yield e


def run(workdir: str, spec: str, out: str, *, top: int = 10, embeddings: bool = False, taggram: bool = False,
        which="best", max_seconds: float = 0.0, batch: int = 64, workers: int = -1, shard_size: int = 256,
        shard_seconds: float = 60.0, progress_seconds: float = 10.0, fmt: str = "jsonl") -> dict:
  """Tags every not-yet-done file of ``spec`` into ``out``; returns the summary (process 0: whole output)."""
  import jax
  from jaxtag.core import distributed
  from jaxtag.serving import inference
  inputs.check_readable(spec)
  rundir.require_run(workdir)   # not a run directory: one line before any worker starts
  if epath.Path(out).exists() and not epath.Path(out).is_dir():
    raise choices.ConfigError(f"--out={out} is a file; give a directory for the output shards (new, or one "
                              "to resume)")
  choices.check("--format", fmt, shards.FORMATS)
  if (other := shards.formats_in(out) - {fmt}):
    raise choices.ConfigError(f"--out={out} already holds {sorted(other)[0]} shards; resume it with "
                              f"--format={sorted(other)[0]} or write to a new directory")
  if fmt == "parquet":
    shards.require_pyarrow()
  engine = inference.RunModel(workdir, which, batch=batch, embeddings=embeddings)
  contract, tags, B = engine.contract, engine.tags, engine.batch
  pi, pc = jax.process_index(), jax.process_count()
  try:
    epath.Path(out).mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise choices.ConfigError(f"--out={out}: cannot make the output directory ({e.strerror or e})") from e
  if pi == 0:
    shards._atomic_write(shards._join(out, "tags.json"), json.dumps(list(tags)).encode())
  done = shards.load_done(out)
  distributed.barrier("jaxtag.serving.tag: resume set read")   # before any process commits a new shard
  writer = shards.ShardWriter(out, pi, shard_size, shard_seconds, fmt)
  # Long files' decoded chunks, on their way in: next to the output, or in a local folder when that is a bucket.
  scratch = (tempfile.mkdtemp(prefix="jaxtag-tag-scratch-") if paths.is_remote(out)
             else os.path.join(out, ".scratch", f"p{pi:03d}"))
  shutil.rmtree(scratch, ignore_errors=True)
  os.makedirs(scratch)
  source = _entries(spec, done, pi, pc)
  workers = os.cpu_count() if workers < 0 else workers
  new_pool = lambda: cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
  pool = new_pool() if workers else None
  max_inflight = max(2 * workers, 1) + 1
  progress = Progress(progress_seconds, (lambda: sum(1 for _ in _entries(spec, done, pi, pc))) if pi == 0 else None)
  cap = max_seconds or None
  inflight, files, queue = {}, {}, collections.deque()   # future -> (path, tries, pool, alone); [id, chunks, next]
  # Files in flight when a decode worker died: any of them may have killed it, so each is retried alone, and
  # only a death while it was alone counts against it (a crashing file must not fail its neighbours).
  alone_next = collections.deque()
  buffered, exhausted, next_id = 0, False, 0
  n_tagged, n_failed, n_seconds = 0, collections.Counter(), 0.0
  started = time.monotonic()

  def submit(path, tries, alone=False):
    args = (worker.decode_file, path, contract, cap, scratch)
    fut = pool.submit(*args) if pool else _Now(*args)
    inflight[fut] = (path, tries, pool, alone)

  def fail(path, reason, detail="", where=""):
    writer.add_error(path, reason, detail, where)
    n_failed[reason] += 1
    print(f"failed: {path or where}: {reason}" + (f" ({detail})" if detail else ""), file=sys.stderr, flush=True)

  def absorb(r):
    nonlocal buffered, next_id
    if "reason" in r:
      fail(r["path"], r["reason"], r["detail"])
      return
    chunks = worker.load_chunks(r)
    n = len(chunks)
    files[next_id] = _File(r["path"], r["duration"], r["seconds"], n, embeddings)
    queue.append([next_id, chunks, 0])
    buffered += n
    next_id += 1

  def finish(f: _File):
    nonlocal n_tagged, n_seconds
    probs = np.stack(f.probs)
    mean = probs.mean(axis=0)
    order = np.argsort(-mean, kind="stable")[:top]
    row = {"path": f.path, "duration": round(f.duration, 4), "seconds": round(f.seconds, 4), "chunks": len(probs),
           "top": [[str(tags[t]), round(float(mean[t]), 6)] for t in order], "scores": mean}
    if embeddings:
      row["embedding"] = np.stack(f.embs).mean(axis=0)
    if taggram:
      row["taggram"] = probs
    writer.add_row(f.path, row)
    n_tagged += 1
    n_seconds += f.seconds

  try:
    while True:
      if alone_next and not inflight:
        submit(*alone_next.popleft(), alone=True)
      while not exhausted and not alone_next and len(inflight) < max_inflight and buffered < 4 * B:
        e = next(source, None)
        if e is None:
          exhausted = True
        elif e.path is None:
          fail(None, e.error, e.detail, e.where)
        else:
          submit(e.path, 1)
      if buffered < B and inflight:
        ready = [f for f in inflight if isinstance(f, _Now)] or cf.wait(
            inflight, return_when=cf.FIRST_COMPLETED)[0]
        for fut in ready:
          path, tries, source_pool, alone = inflight.pop(fut)
          try:
            absorb(fut.result())
          except cf.process.BrokenProcessPool:   # a worker died (OOM kill, a decoder crash): retry, then give up
            if source_pool is pool:
              pool.shutdown(wait=False, cancel_futures=True)
              pool = new_pool()
            if not alone:
              alone_next.append((path, tries))
            elif tries < MAX_TRIES:
              alone_next.append((path, tries + 1))
            else:
              fail(path, "worker_crashed", f"the decode worker died {tries} times decoding it alone")
        continue
      if distributed.all_processes(buffered == 0 and not inflight and not alone_next and exhausted):
        break
      x = np.zeros((B, *contract.input_shape), np.float32)
      owners = []
      while queue and len(owners) < B:
        item = queue[0]
        fid, chunks, i = item
        take = min(len(chunks) - i, B - len(owners))
        x[len(owners):len(owners) + take] = chunks[i:i + take]
        owners += [(fid, i + k) for k in range(take)]
        item[2] += take
        if item[2] == len(chunks):
          queue.popleft()
      buffered -= len(owners)
      probs, embs = engine(x)
      for row, (fid, c) in enumerate(owners):
        f = files[fid]
        f.probs[c] = probs[row]
        if embs is not None:
          f.embs[c] = embs[row]
        f.left -= 1
        if f.left == 0:
          finish(files.pop(fid))
      if pi == 0:
        progress.maybe(n_tagged, sum(n_failed.values()), n_seconds)
    writer.commit()
  finally:
    if pool:
      pool.shutdown(cancel_futures=True)
    shutil.rmtree(scratch, ignore_errors=True)
  counts = distributed.sum_over_processes(np.asarray([n_tagged, sum(n_failed.values()), n_seconds], np.float32))
  distributed.barrier("jaxtag.serving.tag: all shards committed")
  counts = [float(c) for c in counts] + [time.monotonic() - started]   # wall: after every process finished
  summary = {"this_run": {"tagged": int(counts[0]), "failed": int(counts[1]), "audio_hours": counts[2] / 3600,
                          "wall_seconds": counts[3], "files_per_s": (counts[0] + counts[1]) / max(counts[3], 1e-9),
                          "audio_hours_per_hour": counts[2] / max(counts[3], 1e-9), "processes": pc,
                          "failed_by_reason_process_0": dict(n_failed) if pi == 0 else None}}
  if pi == 0:
    summary.update(shards.finalize(out))
    shards._atomic_write(shards._join(out, "summary.json"), json.dumps(summary, indent=1).encode())
  return summary


def main(argv):
  if len(argv) > 1:
    raise choices.ConfigError(f"unexpected arguments: {argv[1:]}")
  F = flags.FLAGS
  from absl import logging
  from jaxtag.core import distributed
  logging.set_verbosity(logging.WARNING)
  from jaxtag.core import remote
  remote.require_gcs(workdir=F.workdir, input=F.input, out=F.out)
  distributed.initialize(F.coordinator_address, F.num_processes, F.process_id)
  s = run(F.workdir, F.input, F.out, top=F.top, embeddings=F.embeddings, taggram=F.taggram, which=F.checkpoint,
          max_seconds=F.max_seconds, batch=F.batch, workers=F.workers, shard_size=F.shard_size,
          shard_seconds=F.shard_seconds, progress_seconds=F.progress_seconds, fmt=F.format)
  if "tagged" in s:
    r = s["this_run"]
    print(f"done: {s['tagged']} files tagged, {s['failed']} failed {s['failed_by_reason']}, "
          f"{s['audio_hours']:.3f} audio hours in {s['shards']} shards; this run: {r['tagged']} tagged, "
          f"{r['failed']} failed, {r['files_per_s']:.2f} files/s, {r['audio_hours_per_hour']:.1f} audio-h/h "
          f"-> {shards._join(F.out, 'summary.json')}")


if __name__ == "__main__":   # spawned decode workers re-import __main__
  from jaxtag.core import cli
  cli.run(main, define_flags, required=("workdir", "input", "out"))
