"""Loader settings from the machine: ``data.num_workers`` / ``data.read_threads`` of ``-1`` (the default) mean auto.

Why these rules (measured on the 2-core CPU, docs/results.md "Throughput"): a chunk from an audio file costs a
decode of the whole song (1-14 ms for an 8-s FLAC), so file reading wants every core but the one that runs
the step (``cpus - 1`` workers); a packed chunk is one record read, a slice and an int16 -> float32
conversion (0.06-0.2 ms), so a few workers keep any accelerator fed and more only cost start-up time and
memory (``cpus // 4``, at most 8). Threads
inside a worker overlap I/O, which matters for records on network storage more than for decoding.

The train iterator's checkpointed state depends on ``num_workers`` (jax_stack §4.3), so a trainer must
not re-resolve it on another machine at resume: ``jaxtag.training.feed.pin_loader`` stores the first resolution in
the workdir. Numpy-only: this module is imported by grain worker processes.
"""
from __future__ import annotations

import os

AUTO = -1


def machine_cpus() -> int:
  """CPUs this process may run on (the affinity mask, which containers and ``taskset`` narrow)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:   # not on Linux
    return os.cpu_count() or 1


def auto_workers(packed: bool, cpus: int) -> int:
  return max(1, min(cpus // 4, 8)) if packed else max(1, min(cpus - 1, 32))


def auto_read_threads(packed: bool, cpus: int) -> int:
  return 2 if packed else max(2, min(cpus, 4))


def resolve(data_cfg, cpus: int | None = None) -> dict:
  """``{"num_workers", "read_threads", "worker_buffer_size"}`` with auto (-1) values resolved for this machine."""
  cpus = cpus or machine_cpus()
  packed = bool(data_cfg.packed_dir)
  workers = int(data_cfg.num_workers)
  threads = int(data_cfg.read_threads)
  return {"num_workers": auto_workers(packed, cpus) if workers == AUTO else workers,
          "read_threads": auto_read_threads(packed, cpus) if threads == AUTO else threads,
          "worker_buffer_size": int(data_cfg.worker_buffer_size)}
