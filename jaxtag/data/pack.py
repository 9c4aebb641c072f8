"""``python -m jaxtag.data.pack --config=CONFIG --out=DIR [--split=train]``: decode a split once into ArrayRecord shards.

Then ``--config.data.packed_dir=DIR`` makes the loaders read ``DIR/<split>/`` instead of decoding audio files,
with identical chunks for identical seeds (default ``--encoding=auto``; see ``packed.py`` for the format).
The whole train pool is packed (``data.train_size`` ignored), so the 100k/500k/1M subsets share one pack.

Parallel and resumable: the split is cut into fixed shards of ``--songs_per_shard`` songs in index order;
each shard is decoded by one worker process into temporary files renamed into place when complete, so a
killed pack leaves only whole shards, and running the same command again packs the missing ones. A shard's
bytes depend only on its songs and the encoding, so an interrupted-and-restarted pack equals an
uninterrupted one. Bad files are kept as payload-free records with their ``decode.BAD_REASONS`` reason
(the loader then skips and counts them exactly as it does for files), and counted in ``pack.json``.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time

import ml_collections
import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from jaxtag.core import choices
from jaxtag.data import index as index_lib
from jaxtag.data import packed
from jaxtag.data.decode import BAD_REASONS, DecodeError, load_audio

FORMAT_VERSION = 1


def shard_name(k: int, total: int) -> str:
  return f"shard-{k:05d}-of-{total:05d}.array_record"


def _plan(songs, sample_rate: int, encoding: str, songs_per_shard: int) -> dict:
  ids = hashlib.sha1("\n".join(s.id for s in songs).encode()).hexdigest()
  return {"version": FORMAT_VERSION, "sample_rate": sample_rate, "encoding": encoding,
          "songs_per_shard": songs_per_shard, "songs": len(songs), "ids_sha1": ids}


def pack_shard(out: str, name: str, rows: list[tuple[str, str, np.ndarray]], sample_rate: int,
               encoding: str) -> None:
  """Decodes ``rows`` (id, path, targets) into ``out/name`` and its ``.npz`` table, both renamed into place."""
  from array_record.python import array_record_module
  tmp = os.path.join(out, f".{name}.tmp")
  writer = array_record_module.ArrayRecordWriter(tmp, packed.WRITER_OPTIONS)
  lengths, reasons, encodings = [], [], []
  try:
    for song_id, path, targets in rows:
      try:
        audio, reason = load_audio(path, sample_rate), -1
      except DecodeError as e:
        audio, reason = None, BAD_REASONS.index(e.reason)
        logging.warning("bad audio (%s): %s %s", e.reason, path, e.detail)
      record, enc = packed.encode(song_id, targets, audio, encoding, sample_rate)
      writer.write(record)
      lengths.append(0 if audio is None else len(audio))
      reasons.append(reason)
      encodings.append(packed.ENCODINGS.index(enc))
  finally:
    writer.close()
  table = os.path.join(out, f".{name}.npz.tmp")
  with open(table, "wb") as f:
    np.savez(f, id=np.asarray([r[0] for r in rows]), length=np.asarray(lengths, np.int64),
             reason=np.asarray(reasons, np.int8), encoding=np.asarray(encodings, np.int8))
  os.replace(table, os.path.join(out, name + ".npz"))   # the table first: a shard file means both are complete
  os.replace(tmp, os.path.join(out, name))


def _pack_shard_star(args) -> str:
  pack_shard(*args)
  return args[1]


def pack_split(data_cfg, songs, out: str, *, encoding: str = "auto", workers: int = 0,
               songs_per_shard: int = 512) -> dict:
  """Packs ``songs`` into ``out`` (one split); resumes a partial pack of the same plan. Returns ``pack.json``."""
  if encoding not in packed.PACK_ENCODINGS:
    raise ValueError(f"unknown encoding {encoding!r}; valid: {list(packed.PACK_ENCODINGS)}")
  if not songs:
    raise ValueError("no songs to pack")
  os.makedirs(out, exist_ok=True)
  plan = _plan(songs, data_cfg.sample_rate, encoding, songs_per_shard)
  plan_path = os.path.join(out, "plan.json")
  if os.path.exists(plan_path):
    old = json.loads(open(plan_path).read())
    if old != plan:
      raise ValueError(f"{out} holds a different pack ({old}); this one is {plan}: use another --out")
  else:
    with open(plan_path + ".tmp", "w") as f:
      json.dump(plan, f, indent=1)
    os.replace(plan_path + ".tmp", plan_path)
  total = -(-len(songs) // songs_per_shard)
  names = [shard_name(k, total) for k in range(total)]
  todo = [(out, names[k], [(s.id, s.path, s.targets) for s in songs[k * songs_per_shard:(k + 1) * songs_per_shard]],
           data_cfg.sample_rate, encoding) for k in range(total) if not os.path.exists(os.path.join(out, names[k]))]
  workers = workers or os.cpu_count() or 1
  t0 = time.time()
  logging.info("packing %d songs into %d shards (%d to do) with %d workers", len(songs), total, len(todo), workers)
  if workers == 1 or len(todo) <= 1:
    for args in todo:
      _pack_shard_star(args)
  else:
    with multiprocessing.get_context("spawn").Pool(min(workers, len(todo))) as pool:
      for done, name in enumerate(pool.imap_unordered(_pack_shard_star, todo), 1):
        logging.info("packed %s (%d/%d)", name, done, len(todo))
  return _finish(out, names, plan, time.time() - t0)


def _finish(out: str, names: list[str], plan: dict, seconds: float) -> dict:
  """Merges the shard tables into ``songs.npz`` and writes ``pack.json`` last (it marks a complete pack)."""
  tables = [np.load(os.path.join(out, n + ".npz")) for n in names]
  cols = {k: np.concatenate([t[k] for t in tables]) for k in ("id", "length", "reason", "encoding")}
  with open(os.path.join(out, ".songs.npz.tmp"), "wb") as f:
    np.savez(f, **cols)
  os.replace(os.path.join(out, ".songs.npz.tmp"), os.path.join(out, "songs.npz"))
  meta = dict(plan)
  meta["shards"] = [{"file": n, "records": len(t["id"]), "bytes": os.path.getsize(os.path.join(out, n))}
                    for n, t in zip(names, tables)]
  meta["bytes"] = sum(s["bytes"] for s in meta["shards"])
  meta["hours"] = round(float(cols["length"].sum()) / plan["sample_rate"] / 3600, 4)
  meta["bad"] = {r: int((cols["reason"] == k).sum()) for k, r in enumerate(BAD_REASONS)}
  meta["encodings"] = {e: int((cols["encoding"] == k).sum()) for k, e in enumerate(packed.ENCODINGS)}
  meta["last_run_s"] = round(seconds, 1)
  with open(os.path.join(out, ".pack.json.tmp"), "w") as f:
    json.dump(meta, f, indent=1)
  os.replace(os.path.join(out, ".pack.json.tmp"), os.path.join(out, "pack.json"))
  return meta


def pack_config(data_cfg, out: str, split: str, **kwargs) -> dict:
  """Packs ``split`` of the dataset ``data_cfg`` names into ``out/<split>`` (whole train pool)."""
  cfg = ml_collections.ConfigDict(data_cfg.to_dict())
  cfg.train_size = 0
  songs = index_lib.load_songs(cfg).split(split)
  return pack_split(cfg, songs, packed.split_dir(out, split), **kwargs)


def define_flags():
  """Flags exist only when run as a program, so that tools can be imported together (tests)."""
  config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/mtt.py.", lock_config=True)
  flags.DEFINE_string("out", None, "Output directory; each split goes to OUT/<split>/.")
  flags.DEFINE_list("split", ["train"], "Splits to pack (train, valid, test).")
  flags.register_validator("split", lambda v: bool(v) and set(v) <= set(choices.SPLITS),
                           f"--split lists splits among {', '.join(choices.SPLITS)}")
  flags.DEFINE_enum("encoding", "auto", list(packed.PACK_ENCODINGS), "Audio encoding (see jaxtag/data/packed.py).")
  flags.DEFINE_integer("workers", 0, "Decoding processes (0 = one per CPU).", lower_bound=0)
  flags.DEFINE_integer("songs_per_shard", 512, "Songs per ArrayRecord shard (fixes the shard layout of a pack).",
                       lower_bound=1)


FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise choices.ConfigError(f"unexpected arguments: {argv[1:]}")
  if os.path.exists(FLAGS.out) and not os.path.isdir(FLAGS.out):
    raise choices.ConfigError(f"--out={FLAGS.out} is a file; give a directory (each split goes to OUT/<split>/)")
  logging.set_verbosity(logging.INFO)
  from jaxtag.core import cli
  data_cfg = cli.loaded_config(FLAGS).data   # checked against the config schema before any decoding
  for split in FLAGS.split:
    meta = pack_config(data_cfg, FLAGS.out, split, encoding=FLAGS.encoding, workers=FLAGS.workers,
                       songs_per_shard=FLAGS.songs_per_shard)
    print(json.dumps({"split": split, **{k: v for k, v in meta.items() if k != "shards"},
                      "shards": len(meta["shards"])}))


if __name__ == "__main__":   # required: spawned pack workers re-import __main__
  from jaxtag.core import cli
  cli.run(main, define_flags, required=("config", "out"))
