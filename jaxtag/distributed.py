"""When and how ``jax.distributed.initialize()`` runs.

Called first thing inside ``main()`` (never at import: grain worker processes re-import ``__main__``,
google/grain#802). Explicit flags win (CPU and plain GPU hosts); otherwise Cloud TPU slices and Slurm are
auto-detected by JAX; a plain single-process run does nothing. ``plan`` is the pure decision, so the
launcher logic is testable without a cluster.
"""
from __future__ import annotations

import os
import re

from absl import logging


def _tasks_on_this_node(environ) -> int:
  """Slurm's ``SLURM_STEP_TASKS_PER_NODE`` looks like ``8(x2)`` or ``1,2``: the leading count is ours."""
  match = re.match(r"\d+", environ.get("SLURM_STEP_TASKS_PER_NODE", environ.get("SLURM_TASKS_PER_NODE", "")))
  return int(match.group()) if match else 0


def plan(coordinator_address: str | None, num_processes: int | None, process_id: int | None,
         environ=os.environ) -> dict | None:
  """Keyword arguments for ``jax.distributed.initialize``, or None for a single-process run.

  * explicit ``--coordinator_address/--num_processes/--process_id``: all three are required;
  * Slurm with more than one task: JAX reads the coordinator, count and rank from the Slurm environment.
    With one task per GPU JAX gives each process the GPU of its ``SLURM_LOCALID``; with one task per node
    it would do the same and leave all but one GPU idle, so every GPU of the node is named here;
  * a multi-host Cloud TPU slice (``TPU_WORKER_HOSTNAMES`` lists several workers), or
    ``JAXTAG_DISTRIBUTED=1`` (what ``launch/tpu_pod.sh`` sets): JAX's own auto-detection.
  """
  if coordinator_address or (num_processes or 1) > 1 or process_id is not None:
    if coordinator_address is None or num_processes is None or process_id is None:
      raise ValueError("multi-process run: give all of --coordinator_address, --num_processes, --process_id "
                       "(or none of them, to auto-detect Cloud TPU / Slurm)")
    return {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
  if int(environ.get("SLURM_NTASKS", "1")) > 1:
    gpus = int(environ.get("SLURM_GPUS_ON_NODE", "0") or 0)
    if _tasks_on_this_node(environ) == 1 and gpus > 1:
      return {"local_device_ids": list(range(gpus))}
    return {}
  if environ.get("TPU_WORKER_HOSTNAMES", "").count(",") >= 1 or environ.get("JAXTAG_DISTRIBUTED"):
    return {}
  return None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, timeout_s: int = 300) -> bool:
  """Initialises multi-process JAX when asked or when a launcher is detected; returns True if it did."""
  kwargs = plan(coordinator_address, num_processes, process_id)
  if kwargs is None:
    return False
  import jax
  jax.distributed.initialize(initialization_timeout=timeout_s, **kwargs)
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True
