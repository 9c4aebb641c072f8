"""Published split lists read as data only: lists of strings or numbers, never code.

MTT's clean split ships as Lee's Python 2 pickles (``*_list_pub.cP``) and as ``.npy`` arrays, some of them
object arrays (which ``np.load`` only reads with ``allow_pickle=True``). A pickle can name any callable
(``os.system`` through ``__reduce__``) and ``pickle.load`` calls it. Here a pickle may only build
containers and scalars: the unpickler resolves no global except numpy's array reconstruction, so a file
that names anything else is refused before anything in it runs, and what it holds must be a flat list of
strings or numbers.
"""
from __future__ import annotations

import io
import numbers
import pickle

import numpy as np
from etils import epath

from jaxtag.core import errors

# The only globals a pickled numpy array of strings or numbers needs (numpy 1.x and 2.x module names).
_NUMPY_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})


class RefusedGlobal(pickle.UnpicklingError):
  pass


class _DataOnlyUnpickler(pickle.Unpickler):
  def find_class(self, module, name):
    if (module, name) in _NUMPY_GLOBALS:
      return super().find_class(module, name)
    raise RefusedGlobal(f"it names {module}.{name}")


def _entries(obj, path: str) -> list:
  """``obj`` as a list of str/number entries, or a UserError naming ``path``."""
  if isinstance(obj, np.ndarray):
    if obj.ndim != 1:
      raise errors.UserError(f"{path}: a split list must be one-dimensional, not shape {obj.shape}")
    obj = obj.tolist()
  if not isinstance(obj, (list, tuple)):
    raise errors.UserError(f"{path}: a split list must hold a list of strings or numbers, not {type(obj).__name__}")
  bad = next((e for e in obj if not isinstance(e, (str, bytes, numbers.Number)) or isinstance(e, bool)), None)
  if bad is not None:
    raise errors.UserError(f"{path}: a split list may only hold strings or numbers, not {type(bad).__name__}")
  return [e.decode("latin1") if isinstance(e, bytes) else e for e in obj]


def _unpickle(data: bytes, path: str):
  try:
    return _DataOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
  except RefusedGlobal as e:
    raise errors.UserError(f"{path}: refused, a split list may only hold strings or numbers ({e})") from None
  except Exception as e:   # truncated or not a pickle at all
    raise errors.UserError(f"{path}: not a readable split list ({type(e).__name__}: {e})") from None


def _read_npy(data: bytes, path: str):
  f = io.BytesIO(data)
  try:
    major, _ = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    _, _, dtype = read_header(f)
  except Exception as e:
    raise errors.UserError(f"{path}: not a readable .npy file ({e})") from None
  if dtype.hasobject:   # np.save pickles object arrays: read that pickle as data only
    return _unpickle(data[f.tell():], path)
  return np.load(io.BytesIO(data), allow_pickle=False)


def read_list(path: str) -> list:
  """The entries of a split list file: ``.npy`` (any array of strings or numbers), ``.cP``/``.pkl``
  (a pickled list), otherwise text lines. Anything else is a UserError naming the file."""
  data = epath.Path(path).read_bytes()
  if path.endswith(".npy"):
    return _entries(_read_npy(data, path), path)
  if path.endswith((".cP", ".pkl", ".pickle")):
    return _entries(_unpickle(data, path), path)
  return data.decode("utf-8").splitlines()
