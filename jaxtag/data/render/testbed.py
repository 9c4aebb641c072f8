"""The testbed corpus: rendered music whose tags live where only one front-end can look.

``python -m jaxtag.data.render.testbed --out=DIR --n=2400`` (or ``data.dataset='testbed'``, made on first
use like ``rendered``). Each clip is a clip of the rendered corpus (``corpus.render_clip``: SoundFont
instruments, real and composed pieces, artists, mix bus) with the three layers of ``evidence`` added after
mastering. Its tags are clean by construction (the generator's own facts, no emission noise or synonyms):

- log-mel-visible families: instrumentation, style, tempo, loudness, voice (``VISIBLE``);
- log-mel-invisible families: phase, timing, fine pitch (``evidence.TAGS``), each state drawn with
  probability 1/2 independently of the music, at the same magnitude statistics.

The rendered corpus's noisy MTT-like tags stay on every row as ``noisy_tags`` (the smoke run keeps using the
``rendered`` corpus itself). Splits are artist-disjoint 60/10/30 (2,400 clips: 1,440 train pool, 240 valid,
720 test). ``families.json`` beside the manifest maps tag -> family and family -> kind. A clip is a pure
function of (seed, index, n, clip length, RENDER_VERSION, TESTBED_VERSION).
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from jaxtag.data.generate import cache_path, cached_corpus
from jaxtag.data.render import compose, corpus, evidence, label

TESTBED_VERSION = 1
FRACTIONS = (0.6, 0.1, 0.3)   # train pool / valid / test: the study needs a large, artist-rich test split
VISIBLE = {
  "instrumentation": (*label.INSTRUMENTS, "drums", "choir"),
  "style": (*compose.STYLES, "classical"),
  "tempo": ("fast", "slow"),
  "loudness": ("loud", "quiet"),
  "voice": ("vocal", "no vocal", "female", "male"),
}
INVISIBLE = {f: tuple(t for t in evidence.TAGS if evidence.FAMILY[t] == f) for f in dict.fromkeys(evidence.FAMILY.values())}
FAMILIES = {**VISIBLE, **INVISIBLE}
KIND = {**{f: "visible" for f in VISIBLE}, **{f: "invisible" for f in INVISIBLE}}
FAMILY_OF = {t: f for f, tags in FAMILIES.items() for t in tags}
TAGS = tuple(FAMILY_OF)


def render_clip(index: int, n: int, seed: int, seconds: float, soundfonts: tuple[str, ...] = (),
                cache_dir: str = "") -> tuple[np.ndarray, dict]:
  """The rendered clip ``index`` plus the evidence layers; its row carries the clean testbed tags."""
  music, row = corpus.render_clip(index, n, seed, seconds, soundfonts, cache_dir)
  rng = np.random.default_rng([seed, index, TESTBED_VERSION, 0x7E57])
  states = evidence.draw_states(rng)
  audio, facts = evidence.add(music, rng, states)
  clean = set(row["clean_tags"])
  tags = [t for t in TAGS if t in clean or states.get(t, False)]
  return audio, {**row, "tags": tags, "targets": {t: 1.0 for t in tags}, "noisy_tags": row["tags"],
                 "noisy_targets": row["targets"], "evidence": facts}


def families_json() -> dict:
  return {"families": FAMILY_OF, "kinds": KIND}


def generate(out: str, n: int, seed: int = 0, clip_seconds: float = 6.0, fmt: str = "flac",
             workers: int | None = None, cache_dir: str = "") -> str:
  """Writes the corpus (``corpus.generate`` with this clip function and tag list) and ``families.json``."""
  path = corpus.generate(out, n, seed, clip_seconds, fmt, workers, cache_dir=cache_dir, clip_fn=render_clip,
                         tags=TAGS, fractions=FRACTIONS)
  with open(os.path.join(out, "families.json"), "w") as f:
    json.dump(families_json(), f, indent=1)
  return path


def corpus_dir(n: int, seed: int, clip_seconds: float, fmt: str, cache_dir: str = "") -> str:
  return cache_path(f"testbed-v{TESTBED_VERSION}r{corpus.RENDER_VERSION}", n, seed, clip_seconds, fmt, cache_dir)


def ensure_corpus(n: int, seed: int, clip_seconds: float, fmt: str, cache_dir: str = "", workers=None) -> str:
  """The cached testbed's manifest, generated first if needed (into a temp dir renamed into place)."""
  return cached_corpus(corpus_dir(n, seed, clip_seconds, fmt, cache_dir),
                       lambda tmp: generate(tmp, n, seed, clip_seconds, fmt, workers, cache_dir))


def main(argv):
  del argv
  t0 = time.time()
  path = generate(FLAGS.out, FLAGS.n, FLAGS.seed, FLAGS.clip_seconds, FLAGS.format, FLAGS.workers, FLAGS.cache_dir)
  dt = time.time() - t0
  print(json.dumps({"manifest": path, "clips": FLAGS.n, "clip_seconds": FLAGS.clip_seconds, "seconds": round(dt, 2),
                    "clips_per_s": round(FLAGS.n / dt, 3), "cpu_s_per_clip": round(corpus.LAST_STATS["cpu_s_per_clip"], 4),
                    "workers": corpus.LAST_STATS["workers"], "cores": os.cpu_count(),
                    "load_avg_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
  from absl import app, flags
  from jaxtag.data.generate import FORMATS
  flags.DEFINE_string("out", None, "Output directory.", required=True)
  flags.DEFINE_integer("n", 2400, "Number of clips.")
  flags.DEFINE_integer("seed", 0, "Corpus seed.")
  flags.DEFINE_float("clip_seconds", 6.0, "Clip length in seconds.")
  flags.DEFINE_enum("format", "flac", sorted(FORMATS), "Audio format.")
  flags.DEFINE_integer("workers", None, "Render processes (default: every core from 40 clips on).")
  flags.DEFINE_string("cache_dir", "", "Where the music21 score table is cached (default ~/.cache/jaxtag).")
  FLAGS = flags.FLAGS
  app.run(main)
