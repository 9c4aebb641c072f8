"""The embedded generated corpus: seeded numpy/scipy music clips with MTAT-style tags and a manifest.

``python -m jaxtag.data.generate --out=DIR --n=2000 --seed=0`` writes ``DIR/audio/...`` and
``DIR/manifest.jsonl``. No dataset can be downloaded here, so this corpus is the default data of the smoke
run and the tests. It is made hard on purpose (the naive version was too easy, probe AUC 0.91):
- every style draws its parts from one shared instrument pool, only up-weighting its favourites;
- every part gets a random mix gain, and a part more than ``AUDIBLE_DB`` below the loudest loses its tag,
  as a quiet instrument goes unannotated by human taggers;
- artists fix a style, favourite instruments, tempo and voice, and splits are artist-disjoint;
- reverb, EQ, noise floor and loudness are random; labels are MTAT-like noisy (each true attribute is
  emitted with probability < 1, often through a synonym), with a strongly skewed tag popularity.
Each row also carries ``targets`` (graded, noise-free values in [0, 1], e.g. a part's mix level) and
``clean_tags``. A clip is a pure function of (seed, index, clip length, GENERATOR_VERSION).
"""
from __future__ import annotations

import concurrent.futures
import functools
import json
import multiprocessing
import os
import shutil
import tempfile
import time

import numpy as np
import soundfile as sf

from jaxtag.data import synth
from jaxtag.data.manifest import artist_split
from jaxtag.core import errors

GENERATOR_VERSION = 2
AUDIBLE_DB = 14.0
PARALLEL_MIN_CLIPS = 200
FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III")}

# style: (prior, bpm range, P(drums), P(vocal), P(minor), favourite instruments, drum pattern)
STYLES = {
  "rock": (0.24, (95, 150), 0.9, 0.6, 0.5, ("guitar", "bass", "organ", "piano"), "backbeat"),
  "classical": (0.22, (60, 130), 0.03, 0.1, 0.45,
                ("strings", "violin", "cello", "piano", "harpsichord", "flute", "harp"), None),
  "pop": (0.15, (90, 128), 0.8, 0.75, 0.3, ("piano", "synth", "guitar", "bass", "bells"), "backbeat"),
  "techno": (0.12, (120, 145), 0.97, 0.15, 0.6, ("synth", "bass", "bells"), "four"),
  "ambient": (0.10, (55, 90), 0.2, 0.2, 0.5, ("synth", "strings", "bells", "flute", "harp"), "half"),
  "country": (0.07, (85, 135), 0.7, 0.6, 0.15, ("guitar", "violin", "bass", "piano"), "backbeat"),
  "indian": (0.05, (70, 120), 0.8, 0.4, 0.6, ("sitar", "flute", "harp"), "tabla"),
  "metal": (0.05, (110, 180), 0.95, 0.5, 0.85, ("guitar", "bass"), "double"),
}
ROLE_POOLS = {
  "melody": ("piano", "guitar", "violin", "flute", "synth", "sitar", "organ", "harpsichord", "bells", "harp", "cello"),
  "chords": ("piano", "guitar", "strings", "organ", "synth", "harpsichord", "harp"),
  "bass": ("bass", "cello", "synth"),
}
RANGES = {"bass": (28, 52), "cello": (36, 64), "violin": (55, 91), "flute": (60, 93), "male": (45, 57),
          "female": (57, 72)}
# clean attribute -> (emission probability, surface tags; the first is canonical, synonyms are rarer)
ATTRIBUTES = {
  **{s: (0.8, (s,)) for s in STYLES},
  "classical": (0.8, ("classical", "classic")), "techno": (0.8, ("techno", "dance")),
  "ambient": (0.8, ("ambient", "new age")),
  **{i: (0.6, (i,)) for i in ("guitar", "piano", "harpsichord", "organ", "strings", "violin", "cello", "flute",
                              "synth", "sitar", "bass", "bells", "harp")},
  "drums": (0.9, ("drums", "beat", "beats")),
  "female": (0.6, ("female", "woman", "female vocal")), "male": (0.6, ("male", "man", "male vocal")),
  "vocal": (0.6, ("vocal", "vocals", "singing")), "no vocal": (0.75, ("no vocal", "no vocals")),
  "fast": (0.5, ("fast",)), "slow": (0.5, ("slow",)), "loud": (0.4, ("loud",)), "quiet": (0.4, ("quiet",)),
  "major": (0.35, ("major",)), "minor": (0.35, ("minor",)), "electronic": (0.5, ("electronic",)),
  "solo": (0.3, ("solo",)),
}
TAGS = tuple(dict.fromkeys(t for _, surfaces in ATTRIBUTES.values() for t in surfaces))
DEGREES = ("fast", "slow", "loud", "quiet")   # graded attributes: a clip carries the tag when its degree > 0.5
SYNONYM_RATE = 0.4
FALSE_TAG_RATE = 0.005
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (0, 0, 3, 4), (5, 3, 0, 4))
PATTERNS = {  # 16 steps per bar: instrument -> steps
  "backbeat": {"kick": (0, 8, 10), "snare": (4, 12), "hat": tuple(range(0, 16, 2))},
  "four": {"kick": (0, 4, 8, 12), "snare": (4, 12), "hat": (2, 6, 10, 14)},
  "half": {"kick": (0,), "snare": (8,), "hat": (0, 4, 8, 12)},
  "tabla": {"tom": (0, 3, 6, 8, 10, 11, 14), "kick": (0, 8)},
  "double": {"kick": tuple(range(16)), "snare": (4, 12), "hat": tuple(range(0, 16, 2))},
}


@functools.lru_cache(maxsize=4)
def make_artists(n_clips: int, seed: int) -> tuple[dict, ...]:
  """Artists tie clips together (style, favourite instruments, tempo, voice): what an artist split is for."""
  rng = np.random.default_rng([seed, 0xA57])
  names = list(STYLES)
  prior = np.array([STYLES[s][0] for s in names])
  pool = sorted(set(ROLE_POOLS["melody"] + ROLE_POOLS["chords"]))
  artists = []
  for _ in range(max(3, n_clips // 4)):
    style = names[rng.choice(len(names), p=prior / prior.sum())]
    lo, hi = STYLES[style][1]
    favs = list(rng.choice(STYLES[style][5], size=min(2, len(STYLES[style][5])), replace=False))
    favs.append(pool[rng.integers(len(pool))])
    voice = ("female", "male")[rng.integers(2)]
    artists.append({"style": style, "favs": favs, "bpm": rng.uniform(lo, hi), "voice": voice})
  return tuple(artists)


def _pick(rng, pool, favs) -> str:
  w = np.array([6.0 if p in favs else 0.5 for p in pool])
  return pool[rng.choice(len(pool), p=w / w.sum())]


def _fit(midi: float, kind: str) -> float:
  lo, hi = RANGES.get(kind, (40, 88))
  while midi < lo:
    midi += 12
  while midi > hi:
    midi -= 12
  return midi


def _hz(midi: float) -> float:
  return 440.0 * 2 ** ((midi - 69) / 12)


def _render_part(kind, role, seconds, beat, scale, root, prog, rng) -> np.ndarray:
  """Notes of one part (melody random walk, held or arpeggiated chords, bass roots), rendered and summed."""
  buf = np.zeros(int(seconds * synth.SR), np.float32)
  bar = 4 * beat
  if role == "chords":
    arp = rng.random() < 0.4
    for b in range(int(np.ceil(seconds / bar))):
      deg = prog[b % len(prog)]
      tones = [root + 12 + scale[(deg + j) % 7] + 12 * ((deg + j) // 7) for j in (0, 2, 4)]
      if arp:
        for s in range(8):
          synth.place(buf, synth.note(kind, _hz(_fit(tones[s % 3], kind)), beat / 2, rng), b * bar + s * beat / 2,
                      rng.uniform(0.6, 1.0))
      else:
        for m in tones:
          synth.place(buf, synth.note(kind, _hz(_fit(m, kind)), bar * 0.95, rng), b * bar + abs(rng.normal(0, 0.01)),
                      0.6)
  elif role == "bass":
    step = beat if rng.random() < 0.6 else 2 * beat
    for k in range(int(seconds / step) + 1):
      deg = prog[int(k * step / bar) % len(prog)]
      synth.place(buf, synth.note(kind, _hz(_fit(root - 12 + scale[deg % 7], kind)), step * 0.9, rng), k * step,
                  rng.uniform(0.7, 1.0))
  else:  # melody (instrument or voice): a random walk on the scale with mixed note lengths
    t, pos = 0.0, rng.integers(7, 14)
    lengths = np.array([0.5, 1.0, 2.0]) * beat * (1.6 if kind in ("female", "male") else 1.0)
    while t < seconds:
      dur = lengths[rng.choice(3, p=(0.4, 0.4, 0.2))]
      pos = int(np.clip(pos + rng.integers(-2, 3), 0, 20))
      if rng.random() > 0.12:
        m = root + 12 + scale[pos % 7] + 12 * (pos // 7)
        synth.place(buf, synth.note(kind, _hz(_fit(m, kind)), dur * 0.9, rng), t + abs(rng.normal(0, 0.008)),
                    rng.uniform(0.6, 1.0))
      t += dur
  return buf


def _render_drums(pattern, seconds, beat, electronic, rng) -> np.ndarray:
  kit = synth.drum_kit(rng, electronic)
  buf = np.zeros(int(seconds * synth.SR), np.float32)
  sixteenth = beat / 4
  for b in range(int(np.ceil(seconds / (16 * sixteenth)))):
    for name, steps in PATTERNS[pattern].items():
      for s in steps:
        if pattern == "tabla" and rng.random() < 0.3:
          continue
        at = (16 * b + s) * sixteenth + abs(rng.normal(0, 0.008))
        synth.place(buf, kit[name], at, rng.uniform(0.6, 1.0) * (0.5 if name == "hat" else 1.0))
  return buf


def shared_degrees(level: dict, bpm: float, rms_db: float, mode: str) -> None:
  """The clean degrees both generated corpora derive alike (in place, in this order: the order of ``level``
  fixes the order of the label-noise draws): vocal absence, tempo, loudness, mode, electronic."""
  level["no vocal"] = float(level["vocal"] == 0.0)
  level["fast"] = float(np.clip((bpm - 110) / 40, 0, 1))
  level["slow"] = float(np.clip((95 - bpm) / 35, 0, 1))
  level["loud"] = float(np.clip((rms_db + 20) / 8, 0, 1))
  level["quiet"] = float(np.clip((-26 - rms_db) / 8, 0, 1))
  level["major"], level["minor"] = float(mode == "major"), float(mode == "minor")
  level["electronic"] = max(level["techno"], level.get("synth", 0.0))


def render_clip(index: int, n: int, seed: int, seconds: float) -> tuple[np.ndarray, dict]:
  """Composes and renders clip ``index`` of ``n``; returns (audio at 16 kHz, its row without path/split)."""
  artists = make_artists(n, seed)
  rng = np.random.default_rng([seed, index])
  a_id = int(rng.integers(len(artists)))
  art = artists[a_id]
  style = art["style"]
  _, _, p_drums, p_vocal, p_minor, style_favs, pattern = STYLES[style]
  favs = set(style_favs) | set(art["favs"])
  bpm = float(np.clip(art["bpm"] * rng.uniform(0.9, 1.1), 50, 190))
  mode = "minor" if rng.random() < p_minor else "major"
  beat, root = 60.0 / bpm, int(rng.integers(45, 57))
  prog = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
  parts = []   # (instrument, role)
  if rng.random() < p_vocal:
    parts.append((art["voice"] if rng.random() < 0.85 else ("female", "male")[rng.integers(2)], "melody"))
  roles = ["melody", "chords", "bass", "chords", "melody"][: int(rng.integers(1, 5))]
  parts += [(_pick(rng, ROLE_POOLS[r], favs), r) for r in roles]
  if pattern and rng.random() < p_drums:
    parts.append(("drums", pattern))
  mix = np.zeros(int(seconds * synth.SR), np.float32)
  gains = rng.uniform(-20, 0, len(parts))
  for (kind, role), g in zip(parts, gains):
    y = (_render_drums(role, seconds, beat, style == "techno", rng) if kind == "drums"
         else _render_part(kind, role, seconds, beat, SCALES[mode], root, prog, rng))
    mix += y * (0.1 / (np.sqrt(np.mean(y**2)) + 1e-6)) * 10 ** (g / 20)
  if style == "metal" or (style == "rock" and rng.random() < 0.5):
    mix = np.tanh(mix * rng.uniform(3, 8))
  if rng.random() < 0.6:
    mix = synth.reverb(mix, rng)
  mix = synth.equalise(mix, rng)
  rms_db = rng.uniform(-34, -12)
  mix *= 10 ** (rms_db / 20) / (np.sqrt(np.mean(mix**2)) + 1e-9)
  mix += rng.normal(0, 10 ** (rng.uniform(-80, -45) / 20), len(mix)).astype(np.float32)
  mix = np.tanh(mix) if np.abs(mix).max() > 0.9 else mix
  level = {s: float(s == style) for s in STYLES}
  top = gains.max()
  for (kind, _), g in zip(parts, gains):   # audibility in [0, 1]; inaudible parts lose their tag
    level[kind] = max(level.get(kind, 0.0), float(np.clip((g - (top - AUDIBLE_DB)) / AUDIBLE_DB, 0, 1)))
  level["vocal"] = max(level.get("female", 0.0), level.get("male", 0.0))
  shared_degrees(level, bpm, rms_db, mode)
  level["solo"] = float(sum(1 for (_, _), g in zip(parts, gains) if g > top - AUDIBLE_DB) == 1)
  clean = [a for a, v in level.items() if a in ATTRIBUTES and (v > 0.5 or (v > 0 and a not in DEGREES))]
  tags = set()
  for a in clean:   # MTAT-style noisy view: attributes missed often, named through synonyms sometimes
    p, surfaces = ATTRIBUTES[a]
    tags.update(s for j, s in enumerate(surfaces) if rng.random() < p * (1.0 if j == 0 else SYNONYM_RATE))
  tags.update(t for t in TAGS if rng.random() < FALSE_TAG_RATE)
  targets = {s: round(v, 4) for a, v in level.items() if a in ATTRIBUTES and v > 0 for s in ATTRIBUTES[a][1]}
  row = {"id": f"gen{index:06d}", "artist": f"artist{a_id:04d}", "tags": sorted(tags, key=TAGS.index),
         "targets": targets, "clean_tags": sorted(clean), "style": style, "bpm": round(bpm, 1), "mode": mode}
  return mix.astype(np.float32), row


def _write_clip(args) -> dict:
  index, n, seed, seconds, fmt, out = args
  audio, row = render_clip(index, n, seed, seconds)
  rel = os.path.join("audio", f"{index // 1000:03d}", f"{row['id']}.{fmt}")
  os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
  sf.write(os.path.join(out, rel), audio, synth.SR, format=FORMATS[fmt][0], subtype=FORMATS[fmt][1])
  return {**row, "path": rel}


def generate(out: str, n: int, seed: int = 0, clip_seconds: float = 10.0, fmt: str = "flac",
             workers: int | None = None) -> str:
  """Writes ``n`` clips and ``manifest.jsonl`` (artist-disjoint 80/10/10 splits) into ``out``; returns its path.

  Clips are independent, so they are spread over ``workers`` spawned processes (spawn, not fork: the
  caller may already hold jax/grain threads); the output does not depend on the worker count. Default:
  2 processes from ``PARALLEL_MIN_CLIPS`` clips on, else in-process.
  """
  if fmt not in FORMATS:
    raise errors.UserError(f"unknown generated_format {fmt!r}; valid: {sorted(FORMATS)}")
  if n < 1 or clip_seconds <= 0:
    raise errors.UserError(f"a generated corpus needs n >= 1 clips of clip_seconds > 0 (got n={n}, "
                           f"clip_seconds={clip_seconds})")
  if os.path.exists(out) and not os.path.isdir(out):
    raise errors.UserError(f"--out={out} is a file; give a directory for the corpus")
  jobs = [(i, n, seed, clip_seconds, fmt, out) for i in range(n)]
  if workers is None:   # spawning costs ~1-2 s per worker (imports), ~50 clips' worth: not worth it below
    workers = min(os.cpu_count() or 1, 2) if n >= PARALLEL_MIN_CLIPS else 1
  if workers > 1:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
      rows = list(pool.map(_write_clip, jobs, chunksize=max(1, n // (8 * workers))))
  else:
    rows = [_write_clip(j) for j in jobs]
  return write_manifest(out, rows, TAGS, seed)


def write_manifest(out: str, rows: list[dict], tags, seed: int, fractions=(0.8, 0.1, 0.1)) -> str:
  """``out/manifest.jsonl`` (the rows with their artist-disjoint split) and ``out/tags.txt``: every corpus."""
  splits = artist_split([r["artist"] for r in rows], fractions, seed=seed)
  path = os.path.join(out, "manifest.jsonl")
  with open(path, "w") as f:
    for row, split in zip(rows, splits):
      f.write(json.dumps({**row, "split": split}) + "\n")
  with open(os.path.join(out, "tags.txt"), "w") as f:
    f.write("\n".join(tags) + "\n")
  return path


def cache_path(name: str, n: int, seed: int, clip_seconds: float, fmt: str, cache_dir: str = "") -> str:
  """Where a generated corpus ``name`` (with its version) of these settings is cached."""
  root = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "jaxtag")
  return os.path.join(root, f"{name}-n{n}-s{seed}-c{clip_seconds:g}-{fmt}")


def corpus_dir(n: int, seed: int, clip_seconds: float, fmt: str, cache_dir: str = "") -> str:
  return cache_path(f"generated-v{GENERATOR_VERSION}", n, seed, clip_seconds, fmt, cache_dir)


def ensure_corpus(n: int, seed: int, clip_seconds: float, fmt: str, cache_dir: str = "") -> str:
  """Returns the cached corpus's manifest, generating it first if needed."""
  return cached_corpus(corpus_dir(n, seed, clip_seconds, fmt, cache_dir),
                       lambda tmp: generate(tmp, n, seed, clip_seconds, fmt))


def cached_corpus(final: str, make) -> str:
  """``final/manifest.jsonl``, made first by ``make(tmp_dir)`` if the cache does not hold it (every corpus).

  Generation goes to a private temp dir renamed into place at the end, so a reader never sees a half
  corpus and two racing processes both end with the same complete directory (the loser discards its copy).
  """
  manifest = os.path.join(final, "manifest.jsonl")
  if os.path.exists(manifest):
    return manifest
  os.makedirs(os.path.dirname(final), exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=os.path.basename(final) + ".tmp-", dir=os.path.dirname(final))
  try:
    make(tmp)
    os.rename(tmp, final)
  except OSError:
    if not os.path.exists(manifest):
      raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return manifest


def define_corpus_flags(workers_help: str) -> None:
  """The flags a corpus-writing command shares (this one and ``jaxtag render``): where, how many, seed, length,
  format and worker processes."""
  from absl import flags
  flags.DEFINE_string("out", None, "Output directory.")
  flags.DEFINE_integer("n", 2000, "Number of clips.", lower_bound=1)
  flags.DEFINE_integer("seed", 0, "Corpus seed.")
  flags.DEFINE_float("clip_seconds", 10.0, "Clip length in seconds.")
  flags.register_validator("clip_seconds", lambda v: v > 0, "--clip_seconds must be > 0")
  flags.DEFINE_enum("format", "flac", sorted(FORMATS), "Audio format.")
  flags.DEFINE_integer("workers", None, workers_help, lower_bound=0)


def define_flags():
  """Flags exist only when run as a program, so that tools can be imported together (tests)."""
  define_corpus_flags("Generation processes (default: 2 from 200 clips on, else 1).")


def main(argv):
  if len(argv) > 1:
    raise errors.UserError(f"unexpected arguments: {argv[1:]}")
  from absl import flags
  FLAGS = flags.FLAGS
  t0 = time.time()
  path = generate(FLAGS.out, FLAGS.n, FLAGS.seed, FLAGS.clip_seconds, FLAGS.format, FLAGS.workers)
  dt = time.time() - t0
  print(json.dumps({"manifest": path, "clips": FLAGS.n, "seconds": round(dt, 2),
                    "clips_per_s": round(FLAGS.n / dt, 2)}))


if __name__ == "__main__":   # spawned generation workers re-import __main__
  from jaxtag.core import cli
  cli.run(main, define_flags, required=("out",))
