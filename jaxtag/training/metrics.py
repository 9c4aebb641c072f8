"""Metrics out of the loop: ``metrics.jsonl`` always, TensorBoard events, and a human progress line.

clu's ``metric_writers`` import TensorFlow unconditionally (jax_stack brief §4.5), so jaxtag keeps clu's
method names (``write_scalars``, ``write_hparams``, ``flush``, ``close``) on a small writer of its own:
JSON lines (big_vision style) plus TensorBoard event files through tensorboardX, which needs no TensorFlow.
Only process 0 writes; other processes get a writer that only logs.
"""
from __future__ import annotations

import json
import math
import time

from absl import logging
from etils import epath

from jaxtag.core import paths, rundir


def _jsonable(value):
  try:
    value = float(value)
  except (TypeError, ValueError):
    return value
  return value if math.isfinite(value) else str(value)


class MetricWriter:
  """Writes scalars to ``workdir/metrics.jsonl`` and TensorBoard (``workdir/tensorboard``)."""

  def __init__(self, workdir: str, *, is_writer: bool = True, tensorboard: bool = True):
    self._is_writer = is_writer
    self._jsonl = self._tb = None
    if not is_writer:
      return
    workdir = epath.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    self._jsonl = _open_jsonl(rundir.path(workdir, rundir.METRICS), remote=paths.is_remote(workdir))
    if tensorboard:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(str(rundir.path(workdir, rundir.TENSORBOARD)), flush_secs=30)

  def write_scalars(self, step: int, scalars: dict) -> None:
    if not self._is_writer:
      return
    record = {"step": int(step), "time": round(time.time(), 3)}
    record.update({k: _jsonable(v) for k, v in scalars.items()})
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in scalars.items():
        if isinstance(record[k], float):
          self._tb.add_scalar(k, record[k], int(step))

  def write_hparams(self, hparams: dict) -> None:
    if self._tb is not None:
      flat = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
      self._tb.add_text("config", "\n".join(f"    {k} = {v}" for k, v in sorted(flat.items())), 0)

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()
    self._jsonl = self._tb = None


class _RewrittenJsonl:
  """Append-only JSON lines on object stores (gs://), which cannot append to an object: the lines are kept
  in memory and the whole object is rewritten at most every ``every_s`` seconds and on ``close``."""

  def __init__(self, path: epath.Path, every_s: float = 60.0):
    self._path, self._every_s, self._last = path, every_s, time.monotonic()
    self._text = path.read_text() if path.exists() else ""   # a resumed run continues the same file

  def write(self, text: str) -> None:
    self._text += text

  def flush(self, force: bool = False) -> None:
    if force or time.monotonic() - self._last >= self._every_s:
      self._path.write_text(self._text)
      self._last = time.monotonic()

  def close(self) -> None:
    self.flush(force=True)


def _open_jsonl(path: epath.Path, remote: bool):
  return _RewrittenJsonl(path) if remote else path.open("a")


def read_jsonl(path) -> list[dict]:
  """All records of a ``metrics.jsonl`` (tests and analysis read runs back with this)."""
  path = epath.Path(path)
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Progress:
  """Steps/s, chunks/s and ETA between two calls; formats the one-line progress report."""

  def __init__(self, total_steps: int, global_batch: int, first_step: int):
    self.total_steps, self.global_batch = total_steps, global_batch
    self._t0, self._s0 = time.perf_counter(), first_step

  def rates(self, step: int) -> dict:
    now = time.perf_counter()
    steps_per_s = (step - self._s0) / max(now - self._t0, 1e-9)
    self._t0, self._s0 = now, step
    return {"steps_per_s": steps_per_s, "chunks_per_s": steps_per_s * self.global_batch}

  def line(self, step: int, loss: float, rates: dict) -> str:
    remaining = (self.total_steps - step) / max(rates["steps_per_s"], 1e-9)
    eta = time.strftime("%H:%M:%S", time.gmtime(remaining)) if remaining < 86400 else f"{remaining / 86400:.1f}d"
    return (f"step {step}/{self.total_steps}  loss {loss:.4f}  {rates['steps_per_s']:.2f} steps/s  "
            f"{rates['chunks_per_s']:.0f} chunks/s  ETA {eta}")


def log_parameter_overview(params) -> int:
  """Logs clu's per-parameter table and returns the parameter count."""
  from clu import parameter_overview
  import jax
  pure = params.to_pure_dict() if hasattr(params, "to_pure_dict") else params
  logging.info("parameters:\n%s", parameter_overview.get_parameter_overview(pure, include_stats=False))
  return sum(int(x.size) for x in jax.tree.leaves(pure))
