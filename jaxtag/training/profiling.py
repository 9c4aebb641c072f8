"""Where the trainer's time goes: a per-window step-time breakdown and a jax.profiler trace of chosen steps.

``StepTimer`` adds up the host's wall time in three phases of the loop and reports them per logged window
(seconds per step, in ``metrics.jsonl`` and TensorBoard under ``time/``):

* ``data_wait``: blocked in ``next()`` for the next global batch (the input pipeline is behind);
* ``step``: dispatching the jitted step (XLA runs it asynchronously, so this is short unless the host has
  to wait for the previous step's buffers);
* ``host_sync``: the periodic ``device_get`` of the metrics, i.e. waiting for the device to finish the
  queued steps (on a compute-bound run most of the step's compute shows up here).

The window's wall time minus the three is ``other`` (logging, validation, checkpoint queuing). When more
than ``INPUT_BOUND`` of the window went to ``data_wait`` the progress line says the input is the bottleneck.

``ProfileHook`` (``--config.train.profile_steps=A:B``) writes a jax.profiler trace of steps A+1..B into
``WORKDIR/profile/`` (TensorBoard's profile plugin or Perfetto read it; ``benchmarks/profile_step.py``
reduces one to per-op self times).
"""
from __future__ import annotations

import contextlib
import os
import time

import jax
from absl import logging

from jaxtag.core import config as config_lib, rundir

INPUT_BOUND = 0.3   # share of the window's wall time spent waiting for data above which the input is the bottleneck
PHASES = ("data_wait", "step", "host_sync")


class StepTimer:
  """Wall seconds per loop phase since the last ``window()`` call."""

  def __init__(self):
    self._t0 = time.perf_counter()
    self._acc = dict.fromkeys(PHASES, 0.0)
    self._steps = 0

  @contextlib.contextmanager
  def phase(self, name: str):
    t = time.perf_counter()
    try:
      yield
    finally:
      self._acc[name] += time.perf_counter() - t

  def count_step(self) -> None:
    self._steps += 1

  def window(self) -> dict:
    """``time/*`` scalars of the window (seconds per step and shares of its wall time), then a reset."""
    now = time.perf_counter()
    wall, steps = max(now - self._t0, 1e-9), max(self._steps, 1)
    out = {f"time/{k}_s": v / steps for k, v in self._acc.items()}
    out["time/other_s"] = max(wall - sum(self._acc.values()), 0.0) / steps
    out.update({f"time/{k}_frac": v / wall for k, v in self._acc.items()})
    self.__init__()
    return out


def input_bound(scalars: dict) -> bool:
  return scalars.get("time/data_wait_frac", 0.0) > INPUT_BOUND


def progress_suffix(scalars: dict) -> str:
  """A few words for the progress line: the breakdown, and a warning when the input is the bottleneck."""
  if "time/data_wait_frac" not in scalars:
    return ""
  parts = "  ".join(f"{k} {100 * scalars[f'time/{k}_frac']:.0f}%" for k in PHASES)
  warn = "  INPUT-BOUND: the step waits for data (more loader workers, packed shards)" if input_bound(scalars) else ""
  return f"  [{parts}]{warn}"


parse_steps = config_lib.parse_step_range   # ``'A:B'`` -> ``(A, B)``; the config schema checks it at start


class ProfileHook:
  """A train-loop hook that traces the steps after step ``start`` up to step ``stop`` (jax.profiler)."""

  def __init__(self, start: int, stop: int, workdir: str):
    self.start, self.stop = start, stop
    self.dir = os.path.join(workdir, rundir.PROFILE)
    self.active = False

  def on_batch(self, run, step: int, batch: dict) -> dict:
    if step == self.start and not self.active:
      jax.block_until_ready(run.state)   # earlier steps stay out of the trace
      jax.profiler.start_trace(self.dir)
      self.active = True
    return batch

  def after_step(self, run, step: int) -> None:
    if self.active and step >= self.stop:
      self._stop(run)

  def _stop(self, run) -> None:
    jax.block_until_ready(run.state)
    jax.profiler.stop_trace()
    self.active = False
    logging.info("profile of steps %d..%d written to %s", self.start + 1, self.stop, self.dir)

  def after_validation(self, run, step, result) -> None:
    pass

  def after_checkpoint(self, run, step) -> None:
    pass

  def at_end(self, run, summary: dict) -> None:
    if self.active:   # the run ended inside the window
      self._stop(run)


def hooks_from_config(config, workdir: str) -> list:
  steps = parse_steps(config.train.get("profile_steps", ""))
  return [ProfileHook(steps[0], steps[1], workdir)] if steps else []
