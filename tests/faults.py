"""Test-only entry point: ``python -m tests.faults [--nan_at=N] [--stall_after_save=N] [--hold_at=N]
[--record_batches=FILE] <jaxtag.main flags>``.

The faults the robustness tests need (a NaN in the batch, a run that hangs right after a checkpoint so it can
be killed there) are loop hooks installed from here, so nothing of them lives in the package or its config.
"""
import hashlib
import time

import jax
import numpy as np
from absl import app, flags

from jaxtag import main as jaxtag_main
from jaxtag.training import train

flags.DEFINE_integer("nan_at", -1, "Put one NaN sample into the batch of this step (0-based).")
flags.DEFINE_integer("stall_after_save", -1, "Hang after the checkpoint of this step was queued (if trained here).")
flags.DEFINE_integer("hold_at", -1, "Before training this step, wait (up to 5 min) for a stop signal; "
                     "FILE.held (of --record_batches) tells the test when to send it.")
flags.DEFINE_string("record_batches", "", "Append 'step sha256' of every batch trained to this local file.")
FLAGS = flags.FLAGS


class NanBatch(train.Hook):
  """One NaN sample in the audio of step ``at``'s batch, same sharding: the NaN guard must stop the run."""

  def __init__(self, at: int):
    self.at = at

  def on_batch(self, run, step, batch):
    if step != self.at:
      return batch
    audio = batch["audio"]
    return {**batch, "audio": jax.device_put(audio.at[0, 0].set(np.nan), audio.sharding)}


class StallAfterSave(train.Hook):
  """Hangs once step ``at`` is checkpointed (and was trained in this process), so a test can kill -9 there."""

  def __init__(self, at: int):
    self.at = at

  def after_checkpoint(self, run, step):
    if step == self.at and step > run.start:
      run.ckpts.wait()
      while True:
        time.sleep(1)


class RecordBatches(train.Hook):
  """``step sha256(audio, targets)`` per trained step, one line each: a resumed run's batches are compared
  with an uninterrupted run's."""

  def __init__(self, path: str):
    self.path = path

  def on_batch(self, run, step, batch):
    digest = hashlib.sha256(np.asarray(batch["audio"]).tobytes() + np.asarray(batch["targets"]).tobytes())
    with open(self.path, "a") as f:
      f.write(f"{step} {digest.hexdigest()}\n")
    return batch


class HoldAt(train.Hook):
  """Waits before step ``at`` until a stop signal arrives, so the run is stopped at a known step (``at + 1``)."""

  def __init__(self, at: int, marker: str):
    self.at, self.marker = at, marker

  def on_batch(self, run, step, batch):
    if step == self.at:
      open(self.marker, "w").close()
      deadline = time.monotonic() + 300
      while run.stop.signal is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return batch


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  hooks = []
  if FLAGS.nan_at >= 0:
    hooks.append(NanBatch(FLAGS.nan_at))
  if FLAGS.stall_after_save >= 0:
    hooks.append(StallAfterSave(FLAGS.stall_after_save))
  if FLAGS.record_batches:
    hooks.append(RecordBatches(FLAGS.record_batches))
  if FLAGS.hold_at >= 0:
    hooks.append(HoldAt(FLAGS.hold_at, FLAGS.record_batches + ".held"))   # the test passes both
  jaxtag_main.run(hooks)


if __name__ == "__main__":   # grain workers re-import __main__
  from jaxtag.core import cli
  jaxtag_main.define_flags()
  cli.run(main, required=("config", "workdir"))
