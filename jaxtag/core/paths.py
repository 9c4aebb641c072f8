"""One helper for local and remote (``gs://``, any ``scheme://``) paths.

Workdirs, manifests and audio may live on a bucket. Orbax needs absolute local paths, relative manifest
rows resolve against the manifest's folder, and a remote object is read whole through ``etils.epath``:
all of those decisions start from ``is_remote``.
"""
from __future__ import annotations

import os

from etils import epath


def is_remote(path) -> bool:
  """``gs://bucket/x`` (any ``scheme://``) is remote; a plain path is local."""
  return "://" in str(path)


def absolute(path) -> epath.Path:
  """A local path made absolute (Orbax refuses relative ones); a remote path kept as it is."""
  path = str(path)
  return epath.Path(path if is_remote(path) else os.path.abspath(path))


def parent(path: str) -> str:
  """The folder of ``path``: by string for remote paths, absolute for local ones."""
  return path.rsplit("/", 1)[0] if is_remote(path) else os.path.dirname(os.path.abspath(path))


def join(base: str, path: str) -> str:
  """``path`` resolved against ``base`` unless it is already absolute or remote."""
  if is_remote(path) or not base or os.path.isabs(path):
    return path
  return f"{base.rstrip('/')}/{path}" if is_remote(base) else os.path.join(base, path)
