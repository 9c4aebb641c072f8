"""Errors that are the user's to fix: ``jaxtag.main`` prints them as one line and exits 2, no traceback.

A config key misspelt, a ``train_size`` larger than the pool, a missing manifest, a checkpoint directory
with nothing readable left: the message says what is wrong and what to do, and a 40-line traceback would
only bury it. ``--traceback`` shows the full trace. Raised by config/data validation and the checkpoint
policy; everything else (a bug) keeps its traceback.
"""
from __future__ import annotations

EXIT_USER_ERROR = 2


class UserError(ValueError):
  """A mistake in the config, the data or the run directory; ``str(e)`` is the whole message.

  A ``ValueError`` so callers (and tests) that expect a ``ValueError`` from validation keep working."""


class CheckpointSaveError(RuntimeError):
  """A checkpoint save failed (disk full, quota, permissions); earlier checkpoints are intact."""


class MissingInput(UserError, FileNotFoundError):
  """A file the config names does not exist (a manifest, annotations, split lists)."""
