"""The host-side schedule: when periodic actions are due, the plateau learning rate, and best-keeping.

Pure functions over a small JSON-able dict (``host``) that is checkpointed with the train state, so a resumed
run continues with the same learning rate, plateau count and best score. Nothing here touches devices or files.
"""
from __future__ import annotations

import math

from absl import logging

def itstime(step: int, every: int, total: int, *, force: bool = False) -> bool:
  """Whether a periodic action is due after ``step``: every ``every`` steps (0 = never), at the last step,
  or when ``force`` (a stop was requested). The loop's one periodic test (big_vision's ``itstime``)."""
  return force or step == total or (every > 0 and step % every == 0)


def warmup_lr(lr: float, step: int, warmup_steps: int) -> float:
  """The learning rate applied at 0-based ``step``: ``lr`` (the plateau schedule's, from ``host``) times a
  linear warm-up ``(step + 1) / warmup_steps`` over the first ``warmup_steps`` steps (0 = none).

  A function of the step and the checkpointed ``host["lr"]`` only, so a run resumed mid-warm-up applies the
  same sequence as an uninterrupted one; a plateau decay during the warm-up scales what remains of it."""
  if warmup_steps <= 0 or step >= warmup_steps:
    return float(lr)
  return float(lr) * (step + 1) / warmup_steps


def initial(learning_rate: float, bad_reasons) -> dict:
  """The schedule at step 0."""
  return {"lr": float(learning_rate), "best_val_loss": math.inf, "plateau_count": 0, "best": None,
          "best_step": None, "bad": {r: 0 for r in bad_reasons}}


def plateau_update(host: dict, val_loss: float, patience: int, factor: float) -> dict:
  """The authors' schedule: count evaluations whose loss is not below the best so far (the count is not reset
  by an improvement); at ``patience`` such evaluations, multiply the learning rate by ``factor``, reset."""
  host = dict(host)
  if val_loss < host["best_val_loss"]:
    host["best_val_loss"] = val_loss
  else:
    host["plateau_count"] += 1
  if host["plateau_count"] >= patience:
    host["lr"] *= factor
    host["plateau_count"] = 0
    logging.info("validation plateau: learning rate -> %g", host["lr"])
  return host


def is_better(value: float, best, metric: str) -> bool:
  """``value`` beats ``best`` (None: nothing yet) for ``metric`` (one of ``choices.BEST_METRICS``): lower loss,
  higher AUC."""
  if best is None:
    return True
  return value < best if metric == "loss" else value > best


def keep_best(host: dict, result: dict, metric: str, step: int) -> tuple[dict, bool]:
  """``(host, improved)`` after a validation ``result``; ``improved`` means: save this step as best."""
  if not is_better(result[metric], host["best"], metric):
    return host, False
  return {**host, "best": result[metric], "best_step": step}, True


def add_counts(totals: dict, counts, reasons) -> dict:
  """Running totals of bad files by reason (``counts`` already summed over processes)."""
  return {r: int(totals.get(r, 0)) + int(c) for r, c in zip(reasons, counts)}
