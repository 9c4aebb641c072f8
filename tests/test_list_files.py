"""Split lists read as data only: the published forms load, and a pickle that carries a callable is refused
before it runs (the side effect it would have caused is checked)."""
import os
import pickle

import numpy as np
import pytest

from jaxtag.core import errors
from jaxtag.data import list_files

PATHS = ["f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3",
         "c/lisa_debenedictis-fruitless_search-07-sayonara-117-146.mp3", "d/tilopa-by_the_way-03-ai_no_ai-0-29.mp3"]


class RunsAShellCommand:
  """What a malicious pickle looks like: unpickling calls os.system(command)."""

  def __init__(self, command):
    self.command = command

  def __reduce__(self):
    return os.system, (self.command,)


def py2_pickle(entries, protocol):
  """Lee's ``*_list_pub.cP`` as Python 2's cPickle wrote it: py2 ``str`` entries (no globals at all)."""
  if protocol == 0:
    body = b"".join(b"S'" + e.encode() + b"'\np%d\na" % (i + 2) for i, e in enumerate(entries))
    return b"(lp1\n" + body + b"."
  body = b"".join(b"U" + bytes([len(e)]) + e.encode() for e in entries)
  return b"\x80\x02]q\x00(" + body + b"e."


@pytest.mark.parametrize("protocol", [0, 2])
def test_lee_python2_pickles_load(tmp_path, protocol):
  path = tmp_path / "test_list_pub.cP"
  path.write_bytes(py2_pickle(PATHS, protocol))
  assert pickle.loads(path.read_bytes(), encoding="latin1") == PATHS   # the handmade bytes are a real py2 pickle
  assert list_files.read_list(str(path)) == PATHS


def test_npy_arrays_of_strings_and_numbers_load(tmp_path):
  rows = [f"{i}\t{p}" for i, p in enumerate(PATHS)]
  np.save(tmp_path / "unicode.npy", np.array(rows))
  np.save(tmp_path / "object.npy", np.array(rows, dtype=object))   # needs pickle: read as data only
  np.save(tmp_path / "ints.npy", np.arange(3))
  assert list_files.read_list(str(tmp_path / "unicode.npy")) == rows
  assert list_files.read_list(str(tmp_path / "object.npy")) == rows
  assert list_files.read_list(str(tmp_path / "ints.npy")) == [0, 1, 2]


@pytest.mark.parametrize("form", ["cP", "npy"])
def test_a_pickle_carrying_a_callable_is_refused_and_never_runs(tmp_path, form):
  marker = tmp_path / "pwned"
  payload = [PATHS[0], RunsAShellCommand(f"touch {marker}")]
  path = tmp_path / f"train.{form}"
  if form == "cP":
    path.write_bytes(pickle.dumps(payload, protocol=2))
  else:
    np.save(path, np.array(payload, dtype=object), allow_pickle=True)
  with pytest.raises(errors.UserError, match=r"refused.*posix\.system|refused.*os\.system") as e:
    list_files.read_list(str(path))
  assert str(path) in str(e.value) and "\n" not in str(e.value)
  assert not marker.exists()
  pickle.loads(pickle.dumps(payload))   # the same payload through pickle.load does run the command
  assert marker.exists()


def test_anything_but_a_flat_list_of_strings_or_numbers_is_refused(tmp_path):
  (tmp_path / "dict.cP").write_bytes(pickle.dumps({"train": PATHS}, protocol=2))
  (tmp_path / "nested.cP").write_bytes(pickle.dumps([PATHS], protocol=2))
  np.save(tmp_path / "matrix.npy", np.zeros((2, 2)))
  (tmp_path / "junk.cP").write_bytes(b"not a pickle")
  for name, message in [("dict.cP", "not dict"), ("nested.cP", "not list"), ("matrix.npy", r"shape \(2, 2\)"),
                        ("junk.cP", "not a readable split list")]:
    with pytest.raises(errors.UserError, match=message):
      list_files.read_list(str(tmp_path / name))
