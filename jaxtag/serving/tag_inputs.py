"""What to tag: a directory, a list of paths (one a line) or a JSONL manifest, streamed, never listed whole.

A 1M-file library must not become a 1M-entry Python list, so every source is a generator: the directory walk
sorts one directory at a time, list and manifest files are read line by line. The order is deterministic,
which is what splits a run over processes (entry ``i`` goes to process ``i % process_count``). Rows that name
no file (a manifest line that is not JSON or has no ``path``) come out as ``Entry(path=None, error=...)`` so
the caller counts them instead of stopping.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import os
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from etils import epath

from jaxtag.core import errors, paths


class Entry(NamedTuple):
  path: str | None
  error: str | None = None   # a reason when the input row itself is unusable
  where: str = ""            # "list.txt:12" for such rows
  detail: str = ""


AUDIO_LIST_SUFFIXES = (".txt", ".lst", ".list")


def check_readable(spec: str) -> None:
  """A directory, or a file whose start reads as UTF-8 text: otherwise one line (``errors.UserError``) before
  any work starts, rather than a decode error half-way through the library. A ``gs://`` input is checked for
  existence only (the bucket's permissions show at the first read)."""
  if paths.is_remote(spec):
    if not epath.Path(spec).exists():
      raise errors.MissingInput(f"--input={spec}: no such directory or file")
    return
  if os.path.isdir(spec):
    if not os.access(spec, os.R_OK | os.X_OK):
      raise errors.UserError(f"--input={spec}: the directory cannot be read (permissions)")
    return
  if not os.path.isfile(spec):
    raise errors.MissingInput(f"--input={spec}: no such directory or file; give a directory of audio, a text "
                              "file of paths or a JSONL manifest")
  try:
    with open(spec, "rb") as f:
      codecs.getincrementaldecoder("utf-8")().decode(f.read(1 << 16), final=False)
  except OSError as e:
    raise errors.UserError(f"--input={spec}: cannot read it ({e.strerror or e})") from e
  except UnicodeDecodeError as e:
    raise errors.UserError(f"--input={spec} is not a text list of paths (not UTF-8 text: {e.reason} at byte "
                           f"{e.start}); give a directory, a text file of paths or a JSONL manifest") from e


def iter_entries(spec: str) -> Iterator[Entry]:
  """Entries of ``spec``: a directory (every non-hidden file below it, sorted, hidden directories skipped),
  a ``.jsonl`` manifest (``{"path": ...}`` per line, other keys ignored) or a text list (one path a line,
  blank lines and ``#`` comments skipped). Relative paths in lists and manifests are relative to the list's
  directory, as in the data layer's manifests."""
  if paths.is_remote(spec) and epath.Path(spec).is_dir():
    yield from _walk_remote(spec)
    return
  if os.path.isdir(spec):
    yield from _walk(spec)
    return
  check_readable(spec)
  base = paths.parent(spec)
  manifest = spec.endswith((".jsonl", ".json"))
  with epath.Path(spec).open("r") as f:
    for n, line in enumerate(f, 1):
      line = line.strip()
      if not line or line.startswith("#"):
        continue
      where = f"{spec}:{n}"
      if manifest:
        try:
          path = json.loads(line)["path"]
          if not isinstance(path, str) or not path:
            raise TypeError("path is not a non-empty string")
        except (ValueError, KeyError, TypeError) as e:
          yield Entry(None, "bad_input_row", where, f"{type(e).__name__}: {e}")
          continue
      else:
        path = line
      yield Entry(paths.join(base, path), None, where)


def _walk(root: str) -> Iterator[Entry]:
  """``os.walk`` one directory at a time (sorted in place), so memory is one directory's listing."""
  for d, dirs, files in os.walk(root):
    dirs[:] = sorted(x for x in dirs if not x.startswith("."))
    for name in sorted(files):
      if not name.startswith("."):
        yield Entry(os.path.join(d, name))


def _walk_remote(root: str) -> Iterator[Entry]:
  """Every object below a ``gs://`` folder, sorted, hidden names (a ``.``-prefixed part) skipped."""
  root = str(root).rstrip("/")
  found = (str(p) for p in epath.Path(root).rglob("*"))
  for p in sorted(found):
    if not any(part.startswith(".") for part in p[len(root) + 1:].split("/")) and epath.Path(p).is_file():
      yield Entry(p)


def my_share(entries, process_index: int, process_count: int):
  """Every ``process_count``-th entry, starting at ``process_index``: a fixed split without a listing."""
  for i, e in enumerate(entries):
    if i % process_count == process_index:
      yield e


def path_key(path: str) -> int:
  """64-bit key of a path: the resume set holds 8 bytes per done file (8 MB for 1M files), not the strings.
  Two paths collide with probability ~n^2 / 2^65 (3e-8 for 1M files)."""
  return int.from_bytes(hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "little")


class DoneSet:
  """Sorted uint64 path keys of every file in a committed shard; ``in`` is a binary search."""

  def __init__(self, keys: np.ndarray):
    self.keys = np.unique(np.asarray(keys, np.uint64))

  def __len__(self) -> int:
    return len(self.keys)

  def __contains__(self, path: str) -> bool:
    k = np.uint64(path_key(path))
    i = np.searchsorted(self.keys, k)
    return bool(i < len(self.keys) and self.keys[i] == k)
