"""The rendered corpus: SoundFont renderings of real and composed music, with a manifest.

``python -m jaxtag.data.render.corpus --out=DIR --n=2000 --seed=0`` writes the same layout as
``jaxtag.data.generate`` (``DIR/audio/NNN/renNNNNNN.flac``, ``manifest.jsonl`` with tags / targets /
clean_tags / artist / split, ``tags.txt``). An artist is one fixed choice of arrangement (a composed style's
GM programs and tempo, or a composer's pieces in one ensemble), soundfont and mix bus; splits are
artist-disjoint. A clip is a pure function of (seed, index, n, clip length, RENDER_VERSION).
"""
from __future__ import annotations

import concurrent.futures
import functools
import json
import multiprocessing
import os
import sys
import time

import numpy as np
import soundfile as sf

from jaxtag.data.generate import FORMATS, cache_path, cached_corpus, define_corpus_flags, write_manifest
from jaxtag.data.render import compose, label, mix, render, scores, voice

RENDER_VERSION = 2
SCORE_PRIOR = 0.22          # share of artists playing music21 pieces (the "classical" style)
COMPOSER_PRIOR = {"bach": 0.3, "palestrina": 0.2, "mozart": 0.2, "haydn": 0.15, "beethoven": 0.15}
SCORE_BPM = {"palestrina": (50, 80), "bach": (55, 90), "mozart": (70, 140), "haydn": (70, 140),
             "beethoven": (60, 140)}
PARALLEL_MIN_CLIPS = 40
LAST_STATS: dict = {}       # the last generate() call's timing: wall seconds, CPU seconds per clip, workers


@functools.lru_cache(maxsize=4)
def make_artists(n_clips: int, seed: int, n_soundfonts: int) -> tuple[dict, ...]:
  """About 4 clips per artist; each artist fixes its arrangement, soundfont and mix bus."""
  rng = np.random.default_rng([seed, 0xA57, RENDER_VERSION])
  styles = list(compose.STYLES)
  prior = np.array([compose.STYLES[s][0] for s in styles])
  prior = prior / prior.sum() * (1 - SCORE_PRIOR)
  composers = list(COMPOSER_PRIOR)
  artists = []
  for _ in range(max(3, n_clips // 4)):
    k = rng.choice(len(styles) + 1, p=np.append(prior, SCORE_PRIOR))
    if k < len(styles):
      a = compose.new_artist(rng, styles[k])
    else:
      c = composers[rng.choice(len(composers), p=np.array(list(COMPOSER_PRIOR.values())))]
      ensembles = scores.COMPOSERS[c][3]
      ens = ensembles[rng.integers(len(ensembles))]
      fams = scores.ENSEMBLES[ens]
      a = {"kind": "score", "style": "classical", "composer": c, "ensemble": ens,
           "programs": [int(rng.choice(compose.FAMILIES[f][1])) for f in fams],
           "bpm": float(rng.uniform(*SCORE_BPM[c]))}
    a["soundfont"] = int(rng.integers(n_soundfonts))
    a["bus"] = mix.new_bus(rng)
    if a["style"] == "ambient":   # a large, wet room
      a["bus"].update(room=float(rng.uniform(0.8, 0.98)), wet=float(rng.uniform(0.35, 0.6)))
    artists.append(a)
  return tuple(artists)


def _score_parts(art: dict, rng, seconds: float, cache_dir: str) -> tuple[list, dict]:
  pieces = scores.load(cache_dir)
  choices = scores.by_composer(pieces)[art["composer"]]
  piece = pieces[choices[rng.integers(len(choices))]]
  bpm = float(np.clip(art["bpm"] * rng.uniform(0.92, 1.08), 40, 180))
  fams = scores.ENSEMBLES[art["ensemble"]]
  parts: list[compose.Part] = []
  for j, notes in enumerate(scores.excerpt(piece, rng, seconds, bpm)):
    fam = fams[min(j, len(fams) - 1)]
    vel = int(rng.integers(70, 105))
    notes = [(p, s, e, vel) for p, s, e in notes]
    if len(fams) == 1 and parts:   # one instrument plays every voice: a single part (one render)
      parts[0].notes += notes
    else:
      parts.append(compose.Part(compose.FAMILIES[fam][0], art["programs"][min(j, len(fams) - 1)], notes))
  return parts, {"bpm": bpm, "mode": "", "piece": f"{piece['composer']}/{piece['path']}"}


def render_clip(index: int, n: int, seed: int, seconds: float, soundfonts: tuple[str, ...] = (),
                cache_dir: str = "") -> tuple[np.ndarray, dict]:
  """Composes (or excerpts), renders, mixes and labels clip ``index`` of ``n``: (16 kHz audio, row)."""
  soundfonts = soundfonts or render.default_soundfonts()
  artists = make_artists(n, seed, len(soundfonts))
  rng = np.random.default_rng([seed, index, RENDER_VERSION])
  a_id = int(rng.integers(len(artists)))
  art = artists[a_id]
  if art["kind"] == "score":
    parts, facts = _score_parts(art, rng, seconds, cache_dir)
    gains = rng.uniform(-6, 0, len(parts))
  else:
    parts, facts = compose.compose(art, rng, seconds)
    gains = rng.uniform(-20, 0, len(parts))
  keep = [k for k, p in enumerate(parts) if p.notes]
  if not keep:   # an excerpt window of rests: fall back to the first part's opening notes
    raise RuntimeError(f"clip {index}: no notes to render")
  parts, gains = [parts[k] for k in keep], gains[keep]
  sf2 = soundfonts[art["soundfont"]]
  sung = [k for k, p in enumerate(parts) if p.voice]
  gm = [k for k in range(len(parts)) if k not in sung]
  bed = (render.render_parts([parts[k] for k in gm], gains[gm], seconds, sf2) if gm
         else np.zeros(int(round(seconds * render.RENDER_SR)), np.float32))
  if sung:   # General MIDI has no singer: the lead vocal is the numpy generator's formant voice (vibrato)
    bed = voice.add_voice(bed, parts[sung[0]], gains[sung[0]], gains[gm].max() if gm else gains[sung[0]], rng)
  audio, rms_db = mix.master(bed, art["bus"], rng)
  level = label.levels(art["style"], parts, gains, facts["bpm"], facts["mode"], rms_db, art.get("composer", ""))
  tags, targets, clean = label.tags_and_targets(level, rng)
  row = {"id": f"ren{index:06d}", "artist": f"artist{a_id:04d}", "tags": tags, "targets": targets,
         "clean_tags": clean, "style": art["style"], "bpm": round(facts["bpm"], 1), "mode": facts["mode"]}
  if "piece" in facts:
    row["piece"] = facts["piece"]
  return audio, row


def _write_clip(args) -> tuple[dict, float]:
  """Renders and writes one clip; returns its row and the CPU seconds it took (the load-independent cost)."""
  index, n, seed, seconds, fmt, out, soundfonts, cache_dir, clip_fn = args
  cpu = time.process_time()
  audio, row = (clip_fn or render_clip)(index, n, seed, seconds, soundfonts, cache_dir)
  rel = os.path.join("audio", f"{index // 1000:03d}", f"{row['id']}.{fmt}")
  os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
  sf.write(os.path.join(out, rel), audio, mix.SR, format=FORMATS[fmt][0], subtype=FORMATS[fmt][1])
  return {**row, "path": rel}, time.process_time() - cpu


def generate(out: str, n: int, seed: int = 0, clip_seconds: float = 10.0, fmt: str = "flac",
             workers: int | None = None, soundfonts: tuple[str, ...] = (), cache_dir: str = "", clip_fn=None,
             tags=None, fractions=(0.8, 0.1, 0.1)) -> str:
  """Writes ``n`` clips, ``manifest.jsonl`` (artist-disjoint ``fractions`` train/valid/test) and ``tags.txt``;
  returns the manifest. ``clip_fn`` (a module-level function, default ``render_clip``) and ``tags`` make
  another corpus on the same machinery (``testbed``).

  Workers are spawned processes (the caller may hold jax threads); the output does not depend on their
  number. Default: every core from ``PARALLEL_MIN_CLIPS`` clips on, else in-process.
  """
  from jaxtag.core import choices, errors
  choices.check("generated_format", fmt, sorted(FORMATS))
  if n < 1 or clip_seconds <= 0:
    raise choices.ConfigError(f"a rendered corpus needs n >= 1 clips of clip_seconds > 0 (got n={n}, "
                              f"clip_seconds={clip_seconds})")
  if os.path.exists(out) and not os.path.isdir(out):
    raise choices.ConfigError(f"--out={out} is a file; give a directory for the corpus")
  soundfonts = tuple(soundfonts) or render.default_soundfonts()
  for path in soundfonts:
    errors.require(path, "soundfont", "give --soundfont=PATH.sf2 (or none, for the default TimGM6mb)")
  scores.load(cache_dir)   # build the score table once, before the workers read it
  jobs = [(i, n, seed, clip_seconds, fmt, out, soundfonts, cache_dir, clip_fn) for i in range(n)]
  if workers is None:
    workers = (os.cpu_count() or 1) if n >= PARALLEL_MIN_CLIPS else 1
  t0, rows, cpu = time.time(), [], 0.0
  pool = None
  if workers > 1:
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    it = pool.map(_write_clip, jobs, chunksize=max(1, min(16, n // (8 * workers))))
  else:
    it = map(_write_clip, jobs)
  try:
    for k, (row, c) in enumerate(it, 1):
      rows.append(row)
      cpu += c
      if k % 100 == 0 or k == n:
        rate = k / (time.time() - t0)
        print(f"render: {k}/{n} clips, {rate:.2f} clips/s, {cpu / k:.3f} CPU s/clip, ETA {(n - k) / rate:.0f} s",
              file=sys.stderr, flush=True)
  finally:
    if pool:
      pool.shutdown()
  path = write_manifest(out, rows, label.TAGS if tags is None else tags, seed, fractions)
  LAST_STATS.update(clips=n, wall_s=time.time() - t0, cpu_s_per_clip=cpu / max(n, 1), workers=workers)
  return path


def corpus_dir(n: int, seed: int, clip_seconds: float, fmt: str, cache_dir: str = "") -> str:
  return cache_path(f"rendered-v{RENDER_VERSION}", n, seed, clip_seconds, fmt, cache_dir)


def ensure_corpus(n: int, seed: int, clip_seconds: float, fmt: str, cache_dir: str = "") -> str:
  """The cached corpus's manifest, rendered first if needed (into a temp dir renamed into place)."""
  return cached_corpus(corpus_dir(n, seed, clip_seconds, fmt, cache_dir),
                       lambda tmp: generate(tmp, n, seed, clip_seconds, fmt, cache_dir=cache_dir))


def main(argv):
  if len(argv) > 1:
    from jaxtag.core import choices
    raise choices.ConfigError(f"unexpected arguments: {argv[1:]}")
  t0 = time.time()
  path = generate(FLAGS.out, FLAGS.n, FLAGS.seed, FLAGS.clip_seconds, FLAGS.format, FLAGS.workers,
                  tuple(FLAGS.soundfont or ()), FLAGS.cache_dir)
  dt = time.time() - t0
  print(json.dumps({"manifest": path, "clips": FLAGS.n, "clip_seconds": FLAGS.clip_seconds,
                    "seconds": round(dt, 2), "clips_per_s": round(FLAGS.n / dt, 2),
                    "cpu_s_per_clip": round(LAST_STATS["cpu_s_per_clip"], 4), "workers": LAST_STATS["workers"],
                    "cores": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}))


def define_flags():
  """Flags exist only when run as a program (spawned render workers re-import this module)."""
  from absl import flags
  define_corpus_flags("Render processes (default: every core from 40 clips on).")
  flags.DEFINE_multi_string("soundfont", None, "SoundFont (.sf2) paths; artists pick one (default TimGM6mb).")
  flags.DEFINE_string("cache_dir", "", "Where the music21 score table is cached (default ~/.cache/jaxtag).")


if __name__ == "__main__":
  from absl import flags
  from jaxtag.core import cli
  FLAGS = flags.FLAGS
  cli.run(main, define_flags, required=("out",))
