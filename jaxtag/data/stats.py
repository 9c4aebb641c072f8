"""``python -m jaxtag.data.summary --config=CONFIG``: a dataset's split sizes, tags and tag prevalence as JSON.

Built from the index alone (never opens audio), so it checks a config's label files before a long run.
For the generated dataset it generates (and caches) the corpus first, as training would.
"""
from __future__ import annotations

import json

import numpy as np
from absl import flags
from ml_collections import config_flags

from jaxtag.core import choices
from jaxtag.data import index as index_lib

def define_flags():
  """Flags exist only when run as a program, so that tools can be imported together (tests)."""
  config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/mtt.py.", lock_config=True)


FLAGS = flags.FLAGS


def summarize(data_cfg) -> dict:
  idx = index_lib.load_songs(data_cfg)
  if hasattr(idx.songs, "split_codes"):   # a columnar manifest index: no Song objects needed
    from jaxtag.data import columns
    y, codes = idx.songs.targets, idx.songs.split_codes
    splits = {name: codes == columns.SPLIT_CODES[name] for name in ("train", "valid", "test")}
  else:
    y = np.stack([s.targets for s in idx.songs]) if idx.songs else np.zeros((0, len(idx.tags)), np.float32)
    splits = {name: np.array([s.split == name for s in idx.songs], bool) for name in ("train", "valid", "test")}
  prevalence = (y >= choices.POSITIVE_THRESHOLD).mean(axis=0) if len(y) else np.zeros(len(idx.tags))
  return {
    "dataset": data_cfg.dataset,
    "songs": idx.counts(),
    "train_pool": idx.train_pool,
    "excluded": idx.excluded,
    "graded": idx.graded,
    "n_tags": len(idx.tags),
    "tags": idx.tags,
    "prevalence": {t: round(float(p), 4) for t, p in zip(idx.tags, prevalence)},
    "prevalence_per_split": {name: {t: round(float(p), 4) for t, p in zip(idx.tags, (y[m] >= choices.POSITIVE_THRESHOLD).mean(axis=0))}
                             for name, m in splits.items() if m.any()},
    "songs_without_tags": int((y.sum(axis=1) == 0).sum()),
  }


def main(argv):
  del argv
  from jaxtag.core import cli
  print(json.dumps(summarize(cli.loaded_config(FLAGS).data), indent=1))


if __name__ == "__main__":
  from jaxtag.core import cli
  cli.run(main, define_flags, required=("config",))
