"""Test-only entry point: ``python -m tests.faults [--nan_at=N] [--stall_after_save=N] <jaxtag.main flags>``.

The faults the robustness tests need (a NaN in the batch, a run that hangs right after a checkpoint so it can
be killed there) are loop hooks installed from here, so nothing of them lives in the package or its config.
"""
import time

import jax
import numpy as np
from absl import app, flags

from jaxtag import main as jaxtag_main
from jaxtag.training import train

flags.DEFINE_integer("nan_at", -1, "Put one NaN sample into the batch of this step (0-based).")
flags.DEFINE_integer("stall_after_save", -1, "Hang after the checkpoint of this step was queued (if trained here).")
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  hooks = []
  if FLAGS.nan_at >= 0:
    hooks.append(NanBatch(FLAGS.nan_at))
  if FLAGS.stall_after_save >= 0:
    hooks.append(StallAfterSave(FLAGS.stall_after_save))
  jaxtag_main.run(hooks)


if __name__ == "__main__":   # grain workers re-import __main__
  from jaxtag.core import cli
  jaxtag_main.define_flags()
  cli.run(main, required=("config", "workdir"))
