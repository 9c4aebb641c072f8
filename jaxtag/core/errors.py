"""Errors that are the user's to fix, and a failed checkpoint save: one line on stderr through ``cli.run``.

``UserError`` is ``choices.ConfigError`` (the one class ``cli.run`` prints as one line, exit 2;
``--traceback`` shows the trace): a config key misspelt, a ``train_size`` larger than the pool, a missing
manifest, a checkpoint directory with nothing readable left. ``CheckpointSaveError``: a save failed (disk
full); earlier checkpoints are intact. Everything else (a bug) keeps its traceback.
"""
from __future__ import annotations

from jaxtag.core.choices import ConfigError

EXIT_USER_ERROR = 2
UserError = ConfigError


class MissingInput(ConfigError, FileNotFoundError):
  """A file the config names does not exist (a manifest, annotations, split lists)."""


def require(path: str, what: str, fix: str = "") -> str:
  """``path`` if it exists (local or ``gs://``), else ``MissingInput`` naming ``what`` it is and ``fix``.

  Called where a path the user gave is first opened, so a typo is one line while a file jaxtag itself
  should have written, and did not, keeps its traceback (a bug)."""
  from etils import epath
  if not path or not epath.Path(path).exists():
    raise MissingInput(f"{what} {path!r} not found" + (f"; {fix}" if fix else ""))
  return path


class CheckpointSaveError(RuntimeError):
  """A checkpoint save failed (disk full, quota, permissions); earlier checkpoints are intact."""
