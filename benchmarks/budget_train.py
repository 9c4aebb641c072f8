"""``python -m jaxtag.main`` with a compute budget: train until the run has used ``--budget_cpu_s`` CPU seconds.

``python -m benchmarks.budget_train --config=C --workdir=W --budget_cpu_s=300 [--validations=6] [--config.*]``

Used by ``benchmarks/won_smoke.py`` to give models of very different step costs the same training time. The
budget is CPU time (user + system, of this process and its data-loader processes), counted from the end of the
first step (so XLA's compilation is not in it) and paused while validating, so each model gets the same
amount of training compute whatever else the shared machine is doing; on an idle machine it is proportional
to wall time. Validation runs every ``budget / validations`` CPU seconds of training and once more when the
budget is spent; the best validation keeps its checkpoint as usual (``train.best_metric``), and the stop saves
the last step (the loop's stop path, as SIGTERM). Set ``train.steps``, ``train.eval_every`` and
``train.checkpoint_every`` far beyond the budget so the loop's own schedule never fires.

Writes ``W/budget.json``: CPU and wall seconds of training and of validation, steps done, validations.
"""
from __future__ import annotations

import json
import os
import time

import psutil
from absl import flags

from jaxtag import main as jaxtag_main
from jaxtag.training import train

flags.DEFINE_float("budget_cpu_s", 300.0, "Training CPU seconds (after the first step, validation excluded).",
                   lower_bound=1.0)
flags.DEFINE_integer("validations", 6, "Validations spread over the budget (the last one at its end).",
                     lower_bound=1)
FLAGS = flags.FLAGS


def cpu_seconds(proc: psutil.Process) -> float:
  """User + system CPU seconds of ``proc`` and its live children (the data-loader workers)."""
  total = 0.0
  for p in [proc] + proc.children(recursive=True):
    try:
      t = p.cpu_times()
      total += t.user + t.system
    except psutil.Error:   # a worker that just exited
      pass
  return total


class Budget(train.Hook):
  """Stops the loop when the training CPU budget is spent, validating along the way and at the end."""

  def __init__(self, budget_s: float, validations: int):
    self.budget_s, self.every_s = budget_s, budget_s / validations
    self.proc = psutil.Process()
    self.cpu0 = self.wall0 = None
    self.val_cpu = self.val_wall = 0.0
    self.steps = 0
    self.next_val = self.every_s
    self.log = []
    self.spent = None

  def used(self) -> float:
    return cpu_seconds(self.proc) - self.cpu0 - self.val_cpu

  def after_step(self, run, step: int) -> None:
    if self.cpu0 is None:   # the first step has compiled
      self.cpu0, self.wall0, self.first_step = cpu_seconds(self.proc), time.time(), step
      return
    self.steps = step - self.first_step
    used = self.used()
    if used < self.next_val and used < self.budget_s:
      return
    c0, w0 = cpu_seconds(self.proc), time.time()
    train.validate_and_keep_best(run, step)
    self.val_cpu += cpu_seconds(self.proc) - c0
    self.val_wall += time.time() - w0
    self.log.append({"step": step, "train_cpu_s": round(used, 1), **run.last_val})
    self.next_val += self.every_s
    if used >= self.budget_s:
      self.spent = used
      run.stop.signal = "cpu_budget"   # the loop saves this step and returns

  def at_end(self, run, summary: dict) -> None:
    out = {"budget_cpu_s": self.budget_s, "train_cpu_s": round(self.spent if self.spent is not None else self.used(), 1)
           if self.cpu0 is not None else 0.0,
           "train_wall_s": round(time.time() - self.wall0 - self.val_wall, 1) if self.wall0 else 0.0,
           "val_cpu_s": round(self.val_cpu, 1), "val_wall_s": round(self.val_wall, 1),
           "first_step": getattr(self, "first_step", None), "steps_counted": self.steps,
           "last_step": summary["step"], "best_step": summary["best_step"], "best": summary["best"],
           "stopped_by": summary["stopped_by"], "validations": self.log}
    with open(os.path.join(run.workdir, "budget.json"), "w") as f:
      json.dump(out, f, indent=1)


def main(argv):
  if len(argv) > 1:
    from absl import app
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  jaxtag_main.run(hooks=[Budget(FLAGS.budget_cpu_s, FLAGS.validations)])


if __name__ == "__main__":   # grain workers re-import __main__
  from jaxtag.core import cli
  cli.run(main, jaxtag_main.define_flags, required=("config", "workdir"))
