"""When and how ``jax.distributed.initialize()`` runs.

Called first thing inside ``main()`` (never at import: grain worker processes re-import ``__main__``,
google/grain#802). Explicit flags win; otherwise Cloud TPU pods and Slurm are auto-detected by JAX;
a plain single-process run does nothing.
"""
from __future__ import annotations

import os

from absl import logging


def _under_launcher() -> bool:
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    return True
  if os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") >= 1:   # multi-host Cloud TPU slice
    return True
  return bool(os.environ.get("JAXTAG_DISTRIBUTED"))


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, timeout_s: int = 300) -> bool:
  """Initialises multi-process JAX when asked or when a launcher is detected; returns True if it did."""
  import jax
  if coordinator_address or (num_processes or 1) > 1:
    if coordinator_address is None or num_processes is None or process_id is None:
      raise ValueError("multi-process run: give all of --coordinator_address, --num_processes, --process_id "
                       "(or none of them, to auto-detect Cloud TPU / Slurm)")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=timeout_s)
  elif _under_launcher():
    jax.distributed.initialize(initialization_timeout=timeout_s)
  else:
    return False
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True
