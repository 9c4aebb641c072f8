"""The trainer's input feed: loader settings pinned per workdir, and global batches prefetched onto the mesh.

Why a background thread: assembling the global ``jax.Array`` (``make_array_from_process_local_data``) copies
the host batch to the devices; done in the loop it serialises with the step. Here a thread keeps
``data.device_prefetch`` batches already on the devices, so the copy of batch n+1 overlaps step n. Grain's
``ThreadPrefetchIterDataset`` records, with each buffered batch, the loader state *after* that batch, so
checkpointing the feed saves the position of the last batch the step consumed, not of the prefetched ones:
a resume still continues with the exact next batch.
"""
from __future__ import annotations

import json

import grain
import ml_collections
from absl import logging

from jaxtag.core import distributed, errors, rundir, sharding
from jaxtag.data import tuning


def pin_loader(data_cfg, workdir: str, resuming: bool, write: bool = True):
  """``data_cfg`` with auto loader settings resolved, and ``num_workers`` pinned in ``workdir/loader.json``.

  The checkpointed iterator state only restores into the same worker count (jax_stack §4.3). So the first
  start resolves ``-1`` from the machine and records it; later starts reuse the record, whatever machine they
  run on. An explicit ``num_workers`` that contradicts the record of a run being resumed fails here, with the
  fix, instead of as a KeyError deep inside grain.
  """
  path = rundir.path(workdir, rundir.LOADER)   # epath: workdirs may be gs://
  stored = json.loads(path.read_text())["num_workers"] if path.exists() else None
  # every process reads the record before process 0 may rewrite it: a process that read it half-written
  # failed with a JSONDecodeError while the others hung in the next collective (seen in a 2-process test)
  distributed.barrier("jaxtag: loader.json read")
  requested = int(data_cfg.num_workers)
  if resuming and stored is not None and requested not in (tuning.AUTO, stored):
    raise errors.UserError(f"{workdir} was trained with data.num_workers={stored} and its checkpoint holds "
                           f"that loader's state; resume with --config.data.num_workers={stored} (or -1), or use "
                           "a new workdir")
  out = ml_collections.ConfigDict(data_cfg.to_dict())
  if requested == tuning.AUTO and stored is not None and resuming:
    out.num_workers = stored
  settings = tuning.resolve(out)
  out.num_workers, out.read_threads = settings["num_workers"], settings["read_threads"]
  if write and out.num_workers != stored:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{rundir.LOADER}.tmp"
    tmp.write_text(json.dumps({"num_workers": out.num_workers, "cpus": tuning.machine_cpus()}))
    tmp.replace(path)   # a reader never sees half a record
  logging.info("loader: %d workers, %d read threads per worker, %d batches prefetched to the devices%s",
               out.num_workers, out.read_threads, out.device_prefetch, " (pinned by the run)" if stored else "")
  return out


class _ToGlobal(grain.transforms.Map):
  """Local numpy batch -> global arrays on the mesh for the step's inputs; other keys stay on the host."""

  def __init__(self, mesh, keys: tuple[str, ...]):
    self.mesh, self.keys = mesh, keys

  def map(self, batch: dict) -> dict:
    on_device = sharding.to_global({k: batch[k] for k in self.keys}, self.mesh)
    return {**{k: v for k, v in batch.items() if k not in self.keys}, **on_device}


def device_feed(ds: grain.IterDataset, mesh, *, keys=("audio", "targets"), prefetch: int = 2) -> grain.DatasetIterator:
  """Iterator of batches whose ``keys`` are global ``jax.Array``s, ``prefetch`` of them transferred ahead.

  ``ds`` yields process-local numpy batches (after any ``mp_prefetch``). The iterator is checkpointable like
  ``ds``'s own (same state format), and ``close()`` stops the thread and the loader's workers.
  """
  ds = ds.map(_ToGlobal(mesh, tuple(keys)))
  if prefetch > 0:
    ds = grain.experimental.ThreadPrefetchIterDataset(ds, prefetch_buffer_size=prefetch)
  return iter(ds)

