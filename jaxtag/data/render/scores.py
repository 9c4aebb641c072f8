"""Real compositions: note tables of pieces from the music21 corpus, tagged with composer and period.

music21 ships scores (MusicXML, Humdrum), not MIDI, and parsing one takes 0.2-3 s, so the pieces below are
parsed once into a JSON note table (``scores-v{SCORES_VERSION}.json`` in the cache dir, built in parallel)
and every clip reads excerpts from it. A clip is an excerpt of one piece at the artist's tempo, each score
part played by the artist's chosen GM instrument (see ``ENSEMBLES``).
"""
from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import sys
import tempfile
import time

SCORES_VERSION = 1
# composer: (period, corpus path filter, number of pieces, ensembles an artist may use)
COMPOSERS = {
  "palestrina": ("renaissance", (".krn",), 24, ("choir", "strings", "organ")),
  "bach": ("baroque", ("bwv",), 40, ("choir", "organ", "strings", "harpsichord")),
  "mozart": ("classical period", (".mxl",), 8, ("quartet", "piano")),
  "haydn": ("classical period", (".mxl",), 8, ("quartet", "piano")),
  "beethoven": ("classical period", ("movement",), 8, ("quartet", "piano")),
}
# ensemble: GM families for the score's parts, top voice first (the last entry repeats for extra parts)
ENSEMBLES = {
  "choir": ("choir",),
  "organ": ("organ",),
  "strings": ("violin", "viola", "cello", "cello"),
  "quartet": ("violin", "violin", "viola", "cello"),
  "harpsichord": ("harpsichord",),
  "piano": ("piano",),
}


def piece_paths(count: int = 0) -> list[tuple[str, str]]:
  """(composer, corpus path) of every piece used, in a fixed order (the corpus list is sorted first);
  ``count`` > 0 keeps that many per composer (tests build a small table)."""
  from music21 import corpus
  out = []
  for composer, (_, filt, n, _) in COMPOSERS.items():
    keep = count or n
    paths = sorted(str(p) for p in corpus.getComposer(composer))
    paths = [p for p in paths if any(f in os.path.basename(p) for f in filt) and not p.endswith(".rntxt")]
    out += [(composer, p) for p in paths[:keep]]
  return out


def _extract(job) -> dict | None:
  """Parses one score into parts of (midi pitch, offset, duration) in quarter notes; None if unusable."""
  composer, path = job
  from music21 import converter
  try:
    score = converter.parse(path)
  except Exception as e:  # noqa: BLE001 - a corpus file music21 cannot read is skipped with its reason
    print(f"scores: skipped {path}: {type(e).__name__}: {e}", file=sys.stderr)
    return None
  parts = []
  for part in score.parts:
    notes = []
    for n in part.flatten().notes:
      for p in n.pitches:
        if n.quarterLength > 0:
          notes.append((int(p.midi), round(float(n.offset), 4), round(float(n.quarterLength), 4)))
    if notes:
      parts.append(sorted(notes, key=lambda x: (x[1], x[0])))
  if not parts:
    return None
  length = max(o + d for part in parts for _, o, d in part)
  return {"composer": composer, "path": os.path.basename(path), "length": length, "parts": parts}


def build(path: str, workers: int = 2, count: int = 0) -> list[dict]:
  """Parses the pieces (in ``workers`` spawned processes) and writes the note table to ``path``."""
  jobs = piece_paths(count)
  t0, pieces = time.time(), []
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
    for k, piece in enumerate(pool.map(_extract, jobs) if workers > 1 else map(_extract, jobs), 1):
      if piece:
        pieces.append(piece)
      if k % 20 == 0 or k == len(jobs):
        rate = k / (time.time() - t0)
        print(f"scores: {k}/{len(jobs)} parsed, {rate:.1f}/s, ETA {(len(jobs) - k) / rate:.0f} s", file=sys.stderr)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
  with os.fdopen(fd, "w") as f:
    json.dump(pieces, f)
  os.chmod(tmp, 0o644)
  os.replace(tmp, path)
  return pieces


_PIECES: dict[str, list[dict]] = {}


def table_path(cache_dir: str = "") -> str:
  root = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "jaxtag")
  return os.path.join(root, f"scores-v{SCORES_VERSION}.json")


def load(cache_dir: str = "") -> list[dict]:
  """The note table, built on first use and cached (per process in memory, per machine on disk)."""
  path = table_path(cache_dir)
  if path not in _PIECES:
    if os.path.exists(path):
      with open(path) as f:
        _PIECES[path] = json.load(f)
    else:
      _PIECES[path] = build(path)
  return _PIECES[path]


def by_composer(pieces: list[dict]) -> dict[str, list[int]]:
  out: dict[str, list[int]] = {c: [] for c in COMPOSERS}
  for i, p in enumerate(pieces):
    out[p["composer"]].append(i)
  return out


def excerpt(piece: dict, rng, seconds: float, bpm: float) -> list[list]:
  """Notes of every part in a random window of ``seconds`` at ``bpm``: [(pitch, start s, end s)] per part."""
  spb = 60.0 / bpm
  window = seconds / spb
  onsets = sorted({o for part in piece["parts"] for _, o, _ in part if o <= piece["length"] - window})
  start = float(onsets[rng.integers(len(onsets))]) if onsets else 0.0   # starts on a note, never in a rest
  out = []
  for part in piece["parts"]:
    notes = [(p, (o - start) * spb, (o - start + d) * spb) for p, o, d in part if start <= o < start + window]
    out.append(notes)
  return out
