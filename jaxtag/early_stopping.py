"""Early stopping on the validation metric the best checkpoint is chosen by (``train.best_metric``).

``train.early_stopping_patience = P`` (0 = off): the run ends after P validations in a row without a new best;
the best checkpoint (``best/``) is then the model to use. The counter lives in the host state that checkpoints
save, so a resumed run counts on exactly where it stopped.
"""
from __future__ import annotations

KEY = "evals_since_best"


def update(host: dict, improved: bool, patience: int) -> tuple[dict, bool]:
  """``(new host state, stop now)`` after one validation: the counter resets on a new best, else grows."""
  host = dict(host)
  host[KEY] = 0 if improved else int(host.get(KEY, 0)) + 1
  return host, bool(patience) and host[KEY] >= patience
