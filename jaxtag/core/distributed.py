"""When and how ``jax.distributed.initialize()`` runs.

Called first thing inside ``main()`` (never at import: grain worker processes re-import ``__main__``,
google/grain#802). Explicit flags win (CPU and plain GPU hosts); otherwise Cloud TPU slices and Slurm are
auto-detected by JAX; a plain single-process run does nothing. ``plan`` is the pure decision, so the
launcher logic is testable without a cluster.

It is also the one home of what crosses processes on the host side: ``any_process`` / ``all_processes`` /
``sum_over_processes`` / ``assert_same`` (each a no-op with one process) and the ``StopFlag`` that turns
SIGTERM/SIGINT into a step every process agrees on.
"""
from __future__ import annotations

import os
import re
import signal

import numpy as np
from absl import logging

from jaxtag.core.choices import ConfigError


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
      given = [f"--{k}" for k, v in (("coordinator_address", coordinator_address), ("num_processes", num_processes),
                                     ("process_id", process_id)) if v is not None]
      raise ConfigError(f"multi-process run: {', '.join(given)} given alone; give all of --coordinator_address, "
                        "--num_processes, --process_id (or none of them, to auto-detect Cloud TPU / Slurm)")
    if not 0 <= process_id < num_processes:
      raise ConfigError(f"--process_id={process_id} is not in 0..{num_processes - 1} (--num_processes={num_processes})")
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


def _allgather(x) -> np.ndarray:
  import jax
  from jax.experimental import multihost_utils
  if jax.process_count() == 1:
    return np.asarray(x)[None]
  return np.asarray(multihost_utils.process_allgather(np.asarray(x)))


def any_process(flag: bool) -> bool:
  """True if ``flag`` is true on any process (a collective: every process must call it)."""
  return bool(np.any(_allgather(bool(flag))))


def all_processes(flag: bool) -> bool:
  """True if ``flag`` is true on every process (a collective)."""
  return bool(np.all(_allgather(bool(flag))))


def sum_over_processes(values) -> np.ndarray:
  """Element-wise sum of a same-shaped array over processes (a collective)."""
  return _allgather(values).sum(axis=0)


def barrier(name: str) -> None:
  """Every process waits here until all have arrived (a no-op in a one-process run)."""
  import jax
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def assert_same(value: int, message: str) -> None:
  """Fails on every process if ``value`` differs between processes (a disagreement would hang a collective)."""
  import jax
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.assert_equal(value, message)


class StopFlag:
  """Set by SIGTERM/SIGINT; the loop saves and returns at a step boundary all processes agree on."""

  def __init__(self):
    self.signal = None
    self._old = {}

  def install(self) -> "StopFlag":
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._old[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    self.signal = signal.Signals(signum).name

  def restore(self) -> None:
    for sig, old in self._old.items():
      signal.signal(sig, old)

  def requested(self, step: int, every: int) -> bool:
    """One process: checked every step. Several: agreed on every ``every`` steps (one allgather), so that
    all processes stop, and save, at the same step."""
    import jax
    if jax.process_count() == 1:
      return self.signal is not None
    return step % every == 0 and any_process(self.signal is not None)
