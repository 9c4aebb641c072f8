"""TensorFlow checkpoints read without TensorFlow: the V2 tensor bundle that TF1 ``Saver`` and TF2 write.

A checkpoint ``PREFIX`` is two kinds of file:
- ``PREFIX.index``: a LevelDB-format table (SSTable) mapping each tensor name to a ``BundleEntryProto`` (dtype,
  shape, data shard, offset, size); the empty key holds the ``BundleHeaderProto`` (number of shards);
- ``PREFIX.data-SSSSS-of-NNNNN``: the tensors' raw little-endian bytes.

Only what a weights import needs is read: uncompressed tables (TF writes them so), numeric dtypes, whole (not
sliced) tensors. Anything else is refused by name. Kept small because TensorFlow itself is a 1.5 GB install
that the import of a few MB of musicnn weights should not need.
"""
from __future__ import annotations

import os
import re
import struct

import numpy as np

from jaxtag.core import errors

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48            # two block handles (varints, padded to 40 bytes) + the 8-byte magic
_TRAILER = 5            # after each block: compression type (1 byte) + masked crc32c (4 bytes)
# tensorflow/core/framework/types.proto -> numpy (little-endian, as the bundle stores them)
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 17: "<u2", 19: "<f2",
           22: "<u4", 23: "<u8"}
_DT_BFLOAT16 = 14


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
  value = shift = 0
  while True:
    b = buf[pos]
    pos += 1
    value |= (b & 0x7F) << shift
    if b < 0x80:
      return value, pos
    shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
  """``(field number, value)`` of a protobuf message: varints as int, length-delimited as bytes."""
  out, pos = [], 0
  while pos < len(buf):
    key, pos = _varint(buf, pos)
    number, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _varint(buf, pos)
    elif wire == 2:
      n, pos = _varint(buf, pos)
      value, pos = buf[pos:pos + n], pos + n
    elif wire == 5:
      value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
    elif wire == 1:
      value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
    else:
      raise ValueError(f"unsupported protobuf wire type {wire}")
    out.append((number, value))
  return out


def _block(data: bytes, offset: int, size: int, path: str) -> list[tuple[bytes, bytes]]:
  """The ``(key, value)`` entries of one table block (prefix-compressed keys, restart array at the end)."""
  if data[offset + size] != 0:
    raise errors.UserError(f"{path}: compressed checkpoint index blocks are not supported")
  block = data[offset:offset + size]
  (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
  end, pos, key, out = len(block) - 4 - 4 * restarts, 0, b"", []
  while pos < end:
    shared, pos = _varint(block, pos)
    unshared, pos = _varint(block, pos)
    length, pos = _varint(block, pos)
    key = key[:shared] + block[pos:pos + unshared]
    pos += unshared
    out.append((key, block[pos:pos + length]))
    pos += length
  return out


def _handle(buf: bytes, pos: int) -> tuple[int, int, int]:
  offset, pos = _varint(buf, pos)
  size, pos = _varint(buf, pos)
  return offset, size, pos


def read_index(path: str) -> dict[bytes, bytes]:
  """Every key -> value of an SSTable ``.index`` file."""
  with open(path, "rb") as f:
    data = f.read()
  if len(data) < _FOOTER or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
    raise errors.UserError(f"{path}: not a TensorFlow checkpoint index (no table magic)")
  _, _, pos = _handle(data, len(data) - _FOOTER)            # the metaindex block (unused)
  index_offset, index_size, _ = _handle(data, pos)
  entries = {}
  for _, handle in _block(data, index_offset, index_size, path):
    offset, size, _ = _handle(handle, 0)
    entries.update(_block(data, offset, size, path))
  return entries


def _shape(buf: bytes) -> tuple[int, ...]:
  dims = []
  for number, value in _fields(buf):
    if number == 2:   # TensorShapeProto.dim
      dims.append(next((v for n, v in _fields(value) if n == 1), 0))
  return tuple(dims)


def resolve_prefix(path: str) -> str:
  """A checkpoint prefix from a prefix, a ``.index`` file, or a directory: its ``checkpoint`` file's newest
  entry (also looked for inside the directory, since that file may hold the absolute path of the machine that
  wrote it), else the directory itself as an empty prefix (the musicnn package ships ``MTT_musicnn/.index``)."""
  if path.endswith(".index"):
    return path[:-len(".index")]
  if not os.path.isdir(path):
    return path
  candidates = []
  state = os.path.join(path, "checkpoint")
  if os.path.exists(state):
    with open(state) as f:
      m = re.search(r'^model_checkpoint_path:\s*"(.*)"', f.read(), re.M)
    if m:
      named = m.group(1)
      candidates += [named if os.path.isabs(named) else os.path.join(path, named),
                     os.path.join(path, os.path.basename(named.rstrip("/")) if not named.endswith("/") else "")]
  candidates.append(os.path.join(path, ""))
  return next((c for c in candidates if os.path.exists(c + ".index")), candidates[-1])


def read_checkpoint(path: str) -> dict[str, np.ndarray]:
  """Tensor name -> array of every numeric tensor in the checkpoint at ``path`` (prefix, .index or directory).
  String tensors (a TF2 checkpoint's object graph) are skipped; any other unsupported entry is a UserError."""
  prefix = resolve_prefix(path)
  if not os.path.exists(prefix + ".index"):
    raise errors.MissingInput(f"{path}: no TensorFlow checkpoint ({prefix}.index not found)")
  entries = read_index(prefix + ".index")
  header = dict(_fields(entries.pop(b"", b"")))
  shards = header.get(1, 1)
  if header.get(2, 0) != 0:
    raise errors.UserError(f"{path}: a big-endian checkpoint is not supported")
  data = {}
  out = {}
  for key, value in sorted(entries.items()):
    name = key.decode("utf-8")
    entry = {}
    for number, v in _fields(value):
      entry.setdefault(number, v)
    dtype, shard, offset, size = entry.get(1, 0), entry.get(3, 0), entry.get(4, 0), entry.get(5, 0)
    if 7 in entry:
      raise errors.UserError(f"{path}: tensor {name!r} is saved in slices (partitioned variable): not supported")
    if dtype == 7:   # DT_STRING
      continue
    if dtype not in _DTYPES and dtype != _DT_BFLOAT16:
      raise errors.UserError(f"{path}: tensor {name!r} has TensorFlow dtype {dtype}, which is not supported")
    if shard not in data:
      with open(f"{prefix}.data-{shard:05d}-of-{shards:05d}", "rb") as f:
        data[shard] = f.read()
    raw = data[shard][offset:offset + size]
    shape = _shape(entry.get(2, b""))
    if dtype == _DT_BFLOAT16:   # the upper half of a float32
      array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    else:
      array = np.frombuffer(raw, _DTYPES[dtype])
    if len(raw) != size or array.size != int(np.prod(shape, dtype=np.int64)):
      raise errors.UserError(f"{path}: tensor {name!r} is truncated ({len(raw)} of {size} bytes for shape {shape})")
    out[name] = array.reshape(shape).copy()
  return out
