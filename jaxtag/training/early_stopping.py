"""Early stopping on the validation metric the best checkpoint is chosen by (``train.best_metric``).

``train.early_stopping_patience = P`` (0 = off): the run ends, saving its last step, after P validations in a
row without a new best; ``best/`` then holds the model to use. The counter lives in the host state that
checkpoints save, so a resumed run counts on from where it stopped. Pure functions, beside ``schedule``.
"""
from __future__ import annotations

KEY = "evals_since_best"


def update(host: dict, improved: bool) -> dict:
  """The host state after one validation: the counter resets on a new best, else grows by one."""
  return {**host, KEY: 0 if improved else int(host.get(KEY, 0)) + 1}


def due(host: dict, patience: int) -> bool:
  """Whether the run should stop now (never with ``patience`` 0)."""
  return patience > 0 and int(host.get(KEY, 0)) >= patience
