"""Output shards of a tagging run, each committed atomically, and the resume set they imply.

``OUTDIR/tags-pPPP-SSSSSS.jsonl`` (or ``.parquet``; one row per tagged file) is the commit point of shard ``SSSSSS`` of
process ``PPP``. Before it is renamed into place, the shard's sidecars are: ``.index/errors-*.jsonl`` (its
failed files), ``.index/keys-*.npy`` (uint64 path keys of every file it covers, tagged or failed) and
``.index/meta-*.json`` (its counts). Every file is written to a temporary name, fsynced, then renamed, so a
SIGKILL at any moment leaves each shard either committed whole or absent (its sidecars then are orphans,
ignored, and removed at the end of a completed run). A restart reads only the small key files of committed
shards and skips those files: at most the shards in flight are lost, and no file appears twice.

``OUTDIR`` may be a bucket (``gs://``): there every file is one object written whole (an object appears
complete or not at all, so no temporary name is needed), through ``etils.epath`` like every remote path.
"""
from __future__ import annotations

import collections
import io
import json
import os
import re
import time

import numpy as np
from etils import epath

from jaxtag.core import paths
from jaxtag.serving import tag_inputs as inputs

FORMATS = ("jsonl", "parquet")
_NAME = re.compile(r"tags-(p\d+-\d+)\.(jsonl|parquet)$")


def _atomic_write(path: str, data: bytes) -> None:
  if paths.is_remote(path):   # one object, written whole
    epath.Path(path).write_bytes(data)
    return
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def _join(*parts: str) -> str:
  return "/".join([str(parts[0]).rstrip("/"), *parts[1:]])


def _glob(folder: str, pattern: str) -> list[str]:
  """Paths in ``folder`` (local or remote) whose name matches ``pattern``; none if it does not exist."""
  folder = epath.Path(folder)
  return [str(p) for p in folder.glob(pattern)] if folder.exists() else []


def _tags_files(out: str) -> list[tuple[str, str, str]]:
  """``(shard id, format, path)`` of every committed tags file in ``out``, in shard order."""
  return sorted((m.group(1), m.group(2), p) for p in _glob(out, "tags-p*") if (m := _NAME.search(p)))


def committed(out: str) -> list[str]:
  """Shard ids (``pPPP-SSSSSS``) whose tags file is in place, sorted."""
  return [shard for shard, _, _ in _tags_files(out)]


def formats_in(out: str) -> set[str]:
  """The formats of the committed tags files in ``out``."""
  return {fmt for _, fmt, _ in _tags_files(out)}


def read_rows(out: str) -> list[dict]:
  """Every row of every committed shard, in shard order, as the JSONL rows read back (lists, not arrays)."""
  rows = []
  for _, fmt, p in _tags_files(out):
    if fmt == "jsonl":
      rows += [json.loads(line) for line in epath.Path(p).read_text().splitlines()]
    else:
      import pyarrow.parquet as pq
      table = pq.read_table(io.BytesIO(epath.Path(p).read_bytes()))
      rows += [{**r, "top": [[t["tag"], t["score"]] for t in r["top"]]} for r in table.to_pylist()]
  return rows


def _jsonl(rows: list[dict]) -> bytes:
  """One JSON object per line; scores to 6 decimals (a float32 score in [0, 1] moves by at most 5e-7)."""
  def plain(v):
    return np.round(np.asarray(v, np.float64), 6).tolist() if isinstance(v, np.ndarray) else v
  return "".join(json.dumps({k: plain(v) for k, v in r.items()}, separators=(",", ":")) + "\n"
                 for r in rows).encode()


def require_pyarrow() -> None:
  """Parquet needs pyarrow (the ``[parquet]`` extra): a clear line before any work, not an error at the first commit."""
  try:
    import pyarrow.parquet  # noqa: F401
  except ImportError:
    from jaxtag.core import choices
    raise choices.ConfigError("--format=parquet needs pyarrow: pip install 'jaxtag[parquet]'") from None


def _parquet(rows: list[dict]) -> bytes:
  """One Parquet table (pyarrow): scores, embeddings and taggrams as float32 lists (exact), ``top`` as a list
  of ``{tag, score}``."""
  import pyarrow as pa
  import pyarrow.parquet as pq
  f32 = pa.list_(pa.float32())
  fields = [("path", pa.string()), ("duration", pa.float64()), ("seconds", pa.float64()), ("chunks", pa.int32()),
            ("top", pa.list_(pa.struct([("tag", pa.string()), ("score", pa.float32())]))), ("scores", f32)]
  fields += [(k, t) for k, t in (("embedding", f32), ("taggram", pa.list_(f32))) if rows and k in rows[0]]
  columns = {}
  for k, _ in fields:
    col = [r[k] for r in rows]
    if k == "top":
      col = [[{"tag": t, "score": float(v)} for t, v in top] for top in col]
    elif k in ("scores", "embedding", "taggram"):
      col = [np.asarray(v, np.float32).tolist() for v in col]
    columns[k] = col
  table = pa.table(columns, schema=pa.schema(fields))
  sink = pa.BufferOutputStream()
  pq.write_table(table, sink, compression="zstd")
  return sink.getvalue().to_pybytes()


def _index(out: str, kind: str, shard: str, ext: str) -> str:
  return _join(out, ".index", f"{kind}-{shard}.{ext}")


def load_done(out: str) -> inputs.DoneSet:
  """Path keys of every file (tagged or failed) in a committed shard."""
  keys = [np.load(io.BytesIO(epath.Path(_index(out, "keys", s, "npy")).read_bytes())) for s in committed(out)]
  return inputs.DoneSet(np.concatenate(keys) if keys else np.zeros(0, np.uint64))


def next_sequence(out: str) -> int:
  """1 + the highest shard number anywhere in ``out`` (committed or orphaned), so names never collide."""
  names = _glob(out, "tags-p*") + _glob(_join(out, ".index"), "*")
  seqs = [int(m.group(1)) for p in names if (m := re.search(r"-p\d+-(\d+)\.", os.path.basename(p)))]
  return max(seqs, default=0) + 1


class ShardWriter:
  """Collects finished rows and failures; commits a shard every ``size`` files or ``seconds`` seconds."""

  def __init__(self, out: str, process_index: int, size: int = 256, seconds: float = 60.0, fmt: str = "jsonl"):
    if fmt not in FORMATS:
      raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    self.out, self.process, self.size, self.seconds, self.format = out, process_index, size, seconds, fmt
    epath.Path(_join(out, ".index")).mkdir(parents=True, exist_ok=True)
    self.seq = next_sequence(out)
    self._reset()
    self.shards_written = 0

  def _reset(self):
    self.rows, self.errors, self.keys = [], [], []
    self.tagged_seconds, self.failed = 0.0, collections.Counter()
    self.opened = time.monotonic()

  def add_row(self, path: str, row: dict) -> None:
    """``row``: path, duration, seconds, chunks, top (``[[tag, score], ...]``), scores, and optionally
    embedding and taggram (numpy arrays; the format decides their precision)."""
    self.rows.append(row)
    self.keys.append(inputs.path_key(path))
    self.tagged_seconds += row["seconds"]
    self._maybe_commit()

  def add_error(self, path: str | None, reason: str, detail: str = "", where: str = "") -> None:
    self.errors.append(json.dumps({"path": path, "reason": reason, "detail": detail, **({"where": where} if where else {})}))
    if path is not None:
      self.keys.append(inputs.path_key(path))
    self.failed[reason] += 1
    self._maybe_commit()

  def pending(self) -> int:
    return len(self.rows) + len(self.errors)

  def _maybe_commit(self):
    if self.pending() >= self.size or time.monotonic() - self.opened >= self.seconds:
      self.commit()

  def commit(self) -> None:
    """Sidecars first, the tags file last: its rename is the commit."""
    if not self.pending():
      return
    shard = f"p{self.process:03d}-{self.seq:06d}"
    text = lambda lines: "".join(s + "\n" for s in lines).encode()
    _atomic_write(_index(self.out, "errors", shard, "jsonl"), text(self.errors))
    keys = io.BytesIO()
    np.save(keys, np.asarray(self.keys, np.uint64))
    _atomic_write(_index(self.out, "keys", shard, "npy"), keys.getvalue())
    meta = {"shard": shard, "tagged": len(self.rows), "tagged_seconds": self.tagged_seconds,
            "failed": dict(self.failed)}
    _atomic_write(_index(self.out, "meta", shard, "json"), json.dumps(meta).encode())
    encode = _parquet if self.format == "parquet" else _jsonl
    _atomic_write(_join(self.out, f"tags-{shard}.{self.format}"), encode(self.rows))
    self.seq += 1
    self.shards_written += 1
    self._reset()


def finalize(out: str) -> dict:
  """After every process has finished: ``errors.jsonl`` (all committed failures), orphans removed, and the
  totals of the whole output (this run and earlier ones): tagged files, failures by reason, audio hours."""
  shards = committed(out)
  errors, tagged, seconds, failed = [], 0, 0.0, collections.Counter()
  for s in shards:
    errors.append(epath.Path(_index(out, "errors", s, "jsonl")).read_bytes())
    meta = json.loads(epath.Path(_index(out, "meta", s, "json")).read_text())
    tagged += meta["tagged"]
    seconds += meta["tagged_seconds"]
    failed.update(meta["failed"])
  _atomic_write(_join(out, "errors.jsonl"), b"".join(errors))
  keep = set(shards)
  for p in _glob(_join(out, ".index"), "*"):
    m = re.search(r"-(p\d+-\d+)\.", os.path.basename(p))
    if m and m.group(1) not in keep or ".tmp-" in p:
      epath.Path(p).unlink()
  for p in _glob(out, "*.tmp-*"):
    epath.Path(p).unlink()
  return {"tagged": tagged, "failed": sum(failed.values()), "failed_by_reason": dict(sorted(failed.items())),
          "audio_hours": seconds / 3600, "shards": len(shards)}
